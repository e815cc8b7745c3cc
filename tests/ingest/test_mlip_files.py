"""Training-set files as MLIP and MP users write them: one bad frame or entry among good ones, model predictions
beside DFT labels, JSON written with sorted keys or as lists, monty-encoded arrays, CSV header variants.

Built from the real fixtures in ``tests/data/ingest`` (SiC extxyz frames, mlearn Mo entries, CaTiO3 CIF).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.ingest.helpers import CIF, DATA
from xtalbase.ingest import detect_format, read_structures

SIC = DATA / "extxyz" / "sic_dft.xyz"
MO = DATA / "mlip" / "mlearn_Mo_test_first3.json"


def _frames(path) -> list[list[str]]:
    lines = path.read_text().splitlines(keepends=True)
    out, i = [], 0
    while i < len(lines):
        n = int(lines[i])
        out.append(lines[i:i + n + 2])
        i += n + 2
    return out


def _reasons(records) -> list[str]:
    return [getattr(r, "reason", "ok") for r in records]


def test_one_bad_extxyz_frame_is_quarantined_alone(tmp_path):
    frames = _frames(SIC)[:5]
    frames[2][2] = frames[2][2].replace("Si", "Xx", 1)  # a species ASE cannot look up
    path = tmp_path / "train.xyz"
    path.write_text("".join(line for frame in frames for line in frame))
    records = list(read_structures(path))
    assert _reasons(records) == ["ok", "ok", "unknown_element", "ok", "ok"]  # frames after the bad one are kept
    assert records[2].locator == "frame=2" and "Xx" in records[2].message
    assert [r.locator for r in records] == [f"frame={i}" for i in range(5)]


def test_extxyz_frame_cut_short_is_truncated_and_the_frames_before_it_are_kept(tmp_path):
    frames = _frames(SIC)[:3]
    path = tmp_path / "cut.xyz"
    path.write_text("".join(line for frame in frames for line in frame)[:-200])
    assert _reasons(read_structures(path)) == ["ok", "ok", "truncated_file"]


def test_reference_labels_win_over_model_predictions_in_one_frame(tmp_path):
    # a MACE/NequIP evaluation file: DFT labels under REF_*, the model's under plain names and MACE_forces
    frame = _frames(SIC)[0]
    n = len(frame) - 2
    header = frame[1].replace("forces:R:3", "REF_forces:R:3:MACE_forces:R:3").replace("energy=", "REF_energy=")
    header = header.replace("stress=", "REF_stress=").rstrip("\n") + ' energy=-1.0 stress="0 0 0 0 0 0 0 0 0"\n'
    body = [line.rstrip("\n") + " 9.0 9.0 9.0\n" for line in frame[2:]]
    path = tmp_path / "eval.xyz"
    path.write_text(f"{n}\n" + header + "".join(body))
    (record,) = read_structures(path)
    (reference,) = list(read_structures(SIC))[:1]
    calc, ref = record.calculation, reference.calculation
    assert calc.energy == pytest.approx(ref.energy)
    assert np.allclose(calc.forces, ref.forces) and np.allclose(calc.stress, ref.stress)


def test_one_bad_mlip_entry_is_quarantined_alone(tmp_path):
    entries = json.loads(MO.read_text())
    entries[1]["outputs"]["energy"] = "not a number"
    entries[2]["outputs"]["forces"] = []  # "no forces", as the SNAP README's own template writes it
    path = tmp_path / "training.json"
    path.write_text(json.dumps(entries))
    records = list(read_structures(path, "mlip_json"))
    assert _reasons(records) == ["ok", "parse_error", "ok"]
    assert "index=1" in records[1].message
    assert records[2].calculation.forces is None and records[2].calculation.energy is not None


def test_mlip_stress_as_3x3_and_monty_arrays_are_read(tmp_path):
    entries = json.loads(MO.read_text())[:1]
    (reference,) = list(read_structures(MO, "mlip_json"))[:1]
    entries[0]["outputs"]["virial_stress"] = reference.calculation.stress.tolist()
    forces = entries[0]["outputs"]["forces"]
    entries[0]["outputs"]["forces"] = {"@module": "numpy", "@class": "array", "dtype": "float64", "data": forces}
    path = tmp_path / "entries.json"
    path.write_text(json.dumps(entries))
    (record,) = read_structures(path, "mlip_json")
    assert np.allclose(record.calculation.stress, reference.calculation.stress)
    assert np.allclose(record.calculation.forces, reference.calculation.forces)


def test_json_is_recognised_by_its_content_when_its_first_bytes_do_not_say(tmp_path):
    from pymatgen.io.cif import CifParser

    structure = CifParser(CIF / "CaTiO3.cif").parse_structures(primitive=False)[0]
    document = {"origins": [{"name": "structure", "task_id": f"mp-{i}"} for i in range(200)], "material_id": "mp-4019",
                "band_gap": 2.3, "structure": structure.as_dict()}
    sorted_doc = tmp_path / "doc.json"
    sorted_doc.write_text(json.dumps(document, sort_keys=True, indent=2))  # "lattice" far beyond the first 4 kB
    assert detect_format(sorted_doc) == "pmg_json"
    (record,) = read_structures(sorted_doc)
    assert record.external_id == "mp-4019" and record.database == "MP" and record.properties["band_gap"] == 2.3
    listed = tmp_path / "structures.json"
    listed.write_text(json.dumps([structure.as_dict(), structure.as_dict()]))
    assert detect_format(listed) == "pmg_json"
    assert [r.locator for r in read_structures(listed)] == ["index=0", "index=1"]
    entries = tmp_path / "snap.json"
    entries.write_text(json.dumps(json.loads(MO.read_text()), sort_keys=True, indent=2))  # "outputs" first
    assert detect_format(entries) == "mlip_json"


def test_dummy_species_in_structure_json_is_an_unknown_element(db, tmp_path):
    from pymatgen.core import Lattice, Structure

    path = tmp_path / "dummy.json"
    path.write_text(Structure(Lattice.cubic(4.0), ["X", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to_json())
    report = db.ingest(path)
    assert report.quarantined_by_reason == {"unknown_element": 1}


def test_csv_cif_column_in_any_case_and_empty_cells_are_no_property(tmp_path):
    import csv

    with open(DATA / "perov5_head.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[0] = [" CIF " if c == "cif" else c for c in rows[0]]
    rows[1][rows[0].index("dir_gap")] = ""
    path = tmp_path / "perov.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert detect_format(path) == "cdvae_csv"
    records = list(read_structures(path))
    assert len(records) == len(rows) - 1 and all(getattr(r, "reason", None) is None for r in records)
    assert "dir_gap" not in records[0].properties and "dir_gap" in records[1].properties


def test_slab_structure_json_is_refused_like_a_slab_extxyz_frame(tmp_path):
    from pymatgen.core import Lattice, Structure

    slab = Structure(Lattice(np.diag([4.0, 4.0, 20.0]), pbc=(True, True, False)), ["Na", "Cl"],
                     [[0, 0, 0.5], [0.5, 0.5, 0.5]])
    path = tmp_path / "slab.json"
    path.write_text(slab.to_json())
    (error,) = read_structures(path)
    assert error.reason == "missing_cell" and "pbc T T F" in error.message
