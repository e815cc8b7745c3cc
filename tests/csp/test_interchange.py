"""Import of each predictions format onto the Perov-5 split, refusals with the record and the reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xtalbase.csp.interchange import FORMAT, PredictionsError, read_predictions, write_json
from xtalbase.csp.tasks import load_task


@pytest.fixture(scope="module")
def task(p5db):
    return load_task(p5db, p5db.splits.get("p5"), "test")


def _expected(task, k=2):
    """Sample i of a target: its reference with the cell scaled by (1 + 0.01 i), coordinates as they are."""
    return {(t.structure_id, i): t.reference._replace(cell=t.reference.cell * (1 + 0.01 * i)) for t in task.targets for i in range(k)}


def _same(got, want):
    assert set(got) == set(want)
    for key, s in want.items():
        g = got[key]
        assert np.allclose(g.cell, s.cell, atol=1e-5) and sorted(g.numbers) == sorted(s.numbers)
        for z, f in zip(g.numbers, g.frac_coords):  # every atom has a partner of its element at the same periodic place
            d = (s.frac_coords - f + 0.5) % 1 - 0.5
            assert (np.abs(d).max(1)[s.numbers == z] < 1e-5).any()


def _material_id(target):
    return target.name.split("|")[0]


def test_json_round_trip_and_npz(task, tmp_path):
    want = _expected(task)
    names = {t.structure_id: _material_id(t) for t in task.targets}
    write_json(want, names, tmp_path / "s.json")
    _same(read_predictions(tmp_path / "s.json", task), want)
    keys = sorted(want)
    np.savez(tmp_path / "s.npz", material_id=np.array([names[s] for s, _ in keys]), sample=np.array([i for _, i in keys]),
             num_atoms=np.array([len(want[k].numbers) for k in keys]), lattice=np.array([want[k].cell for k in keys]),
             atomic_numbers=np.concatenate([want[k].numbers for k in keys]), frac_coords=np.concatenate([want[k].frac_coords for k in keys]))
    _same(read_predictions(tmp_path / "s.npz", task), want)


def test_folder_of_cif_poscar_extxyz_and_csv(task, tmp_path):
    import ase
    import ase.io

    want = _expected(task)
    folder = tmp_path / "files"
    folder.mkdir()
    rows = []
    for n, ((sid, i), s) in enumerate(sorted(want.items())):
        mid = next(_material_id(t) for t in task.targets if t.structure_id == sid)
        atoms = ase.Atoms(numbers=s.numbers, scaled_positions=s.frac_coords, cell=s.cell, pbc=True)
        ext, fmt = (("cif", "cif"), ("vasp", "vasp"), ("extxyz", "extxyz"))[n % 3]
        ase.io.write(folder / f"{mid}__{i}.{ext}", atoms, format=fmt)
        from pymatgen.io.ase import AseAtomsAdaptor

        rows.append({"material_id": mid, "sample": i, "cif": AseAtomsAdaptor.get_structure(atoms).to(fmt="cif")})
    _same(read_predictions(folder, task), want)
    import csv

    with open(tmp_path / "s.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["material_id", "sample", "cif"])
        writer.writeheader()
        writer.writerows(rows)
    _same(read_predictions(tmp_path / "s.csv", task), want)


def _pt(task, path, order, *, lattices: bool):
    import torch
    from pymatgen.core import Lattice

    want = _expected(task, k=2)
    targets = [next(t for t in task.targets if _material_id(t) == m) for m in order]
    frac, types, counts, cells = [], [], [], []
    for i in range(2):
        frac.append(np.concatenate([want[(t.structure_id, i)].frac_coords for t in targets]))
        types.append(np.concatenate([want[(t.structure_id, i)].numbers for t in targets]))
        counts.append([len(t.numbers) for t in targets])
        cells.append([want[(t.structure_id, i)].cell for t in targets])
    data = {"frac_coords": torch.tensor(np.array(frac)), "atom_types": torch.tensor(np.array(types)),
            "num_atoms": torch.tensor(np.array(counts))}
    if lattices:
        data["lattices"] = torch.tensor(np.array(cells))
    else:
        params = [[Lattice(c).parameters for c in per] for per in cells]
        data["lengths"] = torch.tensor(np.array(params)[..., :3])
        data["angles"] = torch.tensor(np.array(params)[..., 3:])
    torch.save(data, path)
    return want


def test_pt_needs_trust_and_maps_by_position_with_a_formula_check(task, tmp_path):
    order = [_material_id(t) for t in task.targets][::-1]  # the test CSV's order is not the structure-id order
    want = _pt(task, tmp_path / "eval_diff.pt", order, lattices=True)
    with pytest.raises(PredictionsError, match="pickle"):
        read_predictions(tmp_path / "eval_diff.pt", task, order=order)
    with pytest.warns(UserWarning, match="pickle"):
        got = read_predictions(tmp_path / "eval_diff.pt", task, trust_pickle=True, order=order)
    # DiffCSP's lattices give the cells; CDVAE's lengths/angles give the same lattice up to its orientation
    _same(got, want)
    _pt(task, tmp_path / "eval_recon.pt", order, lattices=False)
    with pytest.warns(UserWarning):
        got = read_predictions(tmp_path / "eval_recon.pt", task, trust_pickle=True, order=order)
    for key, s in want.items():
        assert abs(abs(np.linalg.det(got[key].cell)) - abs(np.linalg.det(s.cell))) < 1e-6
    # misaligned: read with the structure-id order instead of the CSV's, the atoms disagree on some row
    with pytest.warns(UserWarning), pytest.raises(PredictionsError, match="not aligned with this fold, nothing was imported"):
        read_predictions(tmp_path / "eval_diff.pt", task, trust_pickle=True)


def test_refusals_name_the_record(task, tmp_path):
    t = task.targets[0]
    doc = {"format": FORMAT, "samples": [{"material_id": "no-such-id", "sample": 0, "lattice": np.eye(3).tolist(),
                                          "species": [8], "frac_coords": [[0, 0, 0]]}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(PredictionsError, match=r"samples\[0\]: material_id 'no-such-id' is not a structure of the fold"):
        read_predictions(tmp_path / "a.json", task)
    doc["samples"][0]["material_id"] = _material_id(t)
    (tmp_path / "b.json").write_text(json.dumps(doc))
    with pytest.raises(PredictionsError, match=r"samples\[0\]: atoms O1 differ from the target's"):
        read_predictions(tmp_path / "b.json", task)
    good = {"material_id": _material_id(t), "sample": 0, "lattice": t.reference.cell.tolist(), "species": t.numbers.tolist(),
            "frac_coords": t.reference.frac_coords.tolist()}
    (tmp_path / "c.json").write_text(json.dumps({"format": FORMAT, "samples": [good, good]}))
    with pytest.raises(PredictionsError, match=r"samples\[1\]: sample 0 of .* given twice"):
        read_predictions(tmp_path / "c.json", task)
    (tmp_path / "d.json").write_text(json.dumps({"samples": []}))
    with pytest.raises(PredictionsError, match="'format' must be"):
        read_predictions(tmp_path / "d.json", task)
    (tmp_path / "e.pkl").write_text("x")
    with pytest.raises(PredictionsError, match="unknown predictions format"):
        read_predictions(tmp_path / "e.pkl", task)
