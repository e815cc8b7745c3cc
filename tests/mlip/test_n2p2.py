"""The n2p2 importer: the published mlearn Mo and Si potentials reproduce their published test errors through the
database and the command line, their functions line up with ``scaling.data``, and broken model folders are
refused with a message naming the file and the problem.

Published test errors (Zuo et al. 2020, reproduced by the importer): Si energy MAE 5.63 meV/atom and force MAE
0.109 eV/Å; Mo energy RMSE 5.43 meV/atom and force RMSE 0.204 eV/Å.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.mlip.conftest import cli_json, mlearn, runner
from xtalbase.mlip import acsf
from xtalbase.mlip.n2p2 import BOHR, N2p2Error, load_model

SUMMARY_KEYS = ["n_structures", "n_atoms", "energy_rmse_mev", "energy_mae_mev", "force_rmse", "force_mae",
                "extrapolating_atoms"]


#: Per element: the published test set's size (configurations, atoms) and the errors it must reproduce.
PUBLISHED = {"Si": ((25, 1525), {"energy_mae_mev": (5.63, 0.05), "force_mae": (0.109, 0.002)}),
             "Mo": ((23, 1189), {"energy_rmse_mev": (5.43, 0.05), "force_rmse": (0.204, 0.002)})}


@pytest.mark.parametrize("element", list(PUBLISHED))
def test_mlearn_potential_reproduces_its_published_test_errors(n2p2_db, element):
    result = cli_json("--db", n2p2_db.db.url, "potential", "evaluate", str(n2p2_db.made[element]), "--split",
                      element.lower(), "--fold", "test")
    assert list(result) == SUMMARY_KEYS
    entries = json.loads(mlearn(element, "test.json").read_text())
    size, errors = PUBLISHED[element]
    assert (result["n_structures"], result["n_atoms"]) == (len(entries), sum(e["num_atoms"] for e in entries)) == size
    for key, (value, tolerance) in errors.items():
        assert result[key] == pytest.approx(value, abs=tolerance), key
    # a few test atoms lie beyond the training range (n2p2 warns of extrapolation on them too)
    assert 0 <= result["extrapolating_atoms"] < 0.01 * result["n_atoms"]


def test_the_import_records_its_files_and_converts_to_angstrom_and_ev(n2p2_db):
    import hashlib

    from xtalbase.mlip.recipe import preset

    chain = cli_json("--db", n2p2_db.db.url, "provenance", "model", str(n2p2_db.made["Mo"]))
    assert chain["model"]["task"] == "potential" and chain["model"]["algorithm"] == "hdnnp-n2p2"
    inputs = {Path(link["path"]).name: link for link in chain["train_run"]["inputs"]}
    assert set(inputs) == {"input.nn", "scaling.data", "weights.042.data"}
    for name, link in inputs.items():
        assert link["sha256"] == hashlib.sha256((mlearn("Mo", "nnp") / name).read_bytes()).hexdigest()
    assert chain["calculations"]["count"] == 0 and chain["calculations"]["source_files"] == []  # trained elsewhere
    recipe = chain["model"]["feature_recipe"]
    # the vendored input.nn (the mlearn-Mo preset) is the published one
    assert recipe["hash"] == preset("mlearn-Mo").hash()
    rc = {f["rc"] for f in recipe["functions"]}
    assert len(rc) == 1 and rc.pop() == pytest.approx(9.8265759 * BOHR, rel=1e-12) == pytest.approx(5.2, abs=1e-6)  # Å
    etas = sorted({f["eta"] for f in recipe["functions"]})
    assert etas == pytest.approx([e / BOHR ** 2 for e in (0.01, 0.02, 0.05)])  # 1/bohr² -> 1/Å²


def test_predicted_stress_of_strained_cells_agrees_with_the_dft_stress(n2p2_db):
    # the mlearn potential was fitted to energies and forces only, yet the stress of a strained cell is a
    # derivative of the energy: the virial stress must follow the DFT stress (read from kBar, sign flipped to
    # ASE's), in sign and roughly in size; a sign or unit slip on either side would show here
    from xtalbase.mlip.evaluation import predict_configurations
    from xtalbase.mlip.potentials import load_potential, selected_configurations

    configs, _ = selected_configurations(n2p2_db.db, split="mo", fold="test")
    strained = [c for c in configs if c.group == "Elastic"]
    assert len(strained) == 6
    predicted = predict_configurations(load_potential(n2p2_db.db, n2p2_db.made["Mo"]), strained)
    dft = np.concatenate([c.stress.ravel() for c in strained])  # eV/Å³
    ours = np.concatenate([p.stress.ravel() for p in predicted])
    assert np.corrcoef(dft, ours)[0, 1] > 0.95
    large = np.abs(dft) > 0.05
    assert large.sum() >= 6 and (np.sign(dft[large]) == np.sign(ours[large])).all()
    assert np.abs(dft - ours).max() < 0.1


def test_functions_line_up_with_the_rows_of_scaling_data():
    # the rows of scaling.data are n2p2's (min, max, mean, sigma) of each function over the training set, in
    # n2p2's order: our columns, computed on training configurations, must fall inside the row of the same index
    # (neighbouring rows differ by factors: ζ = 1 vs 2, λ = -1 vs +1, shifted vs unshifted radial functions)
    from pymatgen.core import Structure

    model = load_model(mlearn("Mo", "nnp"))
    rows = np.loadtxt(mlearn("Mo", "nnp") / "scaling.data", comments="#")
    entries = json.loads(mlearn("Mo", "training.json").read_text())
    lo, hi = rows[:, 2].copy(), rows[:, 3].copy()
    for k in (3, 100, 135, 192):
        st = Structure.from_dict(entries[k]["structure"])
        values = acsf.compute(model.recipe, np.array(st.atomic_numbers), st.cart_coords, st.lattice.matrix, True,
                              jacobian=False).blocks["Mo"].values.numpy()
        slack = 1e-6 * (hi - lo)
        assert ((values >= lo - slack) & (values <= hi + slack)).all(), k
    swapped = np.arange(len(lo))
    swapped[[15, 16]] = swapped[[16, 15]]  # ζ=1 λ=-1 and ζ=1 λ=+1 exchanged: the check would notice
    assert not ((values >= lo[swapped]) & (values <= hi[swapped])).all()


# --------------------------------------------------------------------------- broken model folders


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "nnp"
    shutil.copytree(mlearn("Mo", "nnp"), folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _drop_line(path: Path, index: int) -> None:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    dropped = lines[index]
    path.write_text(path.read_text().replace(dropped + "\n", "", 1))


BROKEN = {
    "missing weights": (lambda f: (f / "weights.042.data").unlink(), r"no weights\.042\.data for Mo"),
    "missing scaling": (lambda f: (f / "scaling.data").unlink(), r"no scaling\.data"),
    "missing input.nn": (lambda f: (f / "input.nn").unlink(), r"no input\.nn"),
    "scaling row count": (lambda f: _drop_line(f / "scaling.data", 5),
                          r"scaling\.data: element Mo has 38 scaling rows; input\.nn defines 39 functions"),
    "normalize_nodes": (lambda f: _edit(f / "input.nn", "use_short_forces", "use_short_forces\nnormalize_nodes"),
                        r"input\.nn: uses normalize_nodes, which xtalbase's n2p2 reader does not implement"),
    "mixed activations": (lambda f: _edit(f / "input.nn", "t t l", "t s l"), r"activations t s l"),
    "unknown activation": (lambda f: _edit(f / "input.nn", "t t l", "q q l"), r"activations q q l"),
    "non-linear output": (lambda f: _edit(f / "input.nn", "t t l", "t t t"), r"activations t t t"),
    "function type": (lambda f: _edit(f / "input.nn", "Mo  2 Mo    0.0100000    0.0000000",
                                      "Mo  12 Mo    0.0100000    0.0000000"), r"type 12 is not implemented"),
    "weight line": (lambda f: _drop_line(f / "weights.042.data", 7), r"weights\.042\.data: 1 weights missing for a network 39-16-16-1"),
    "weight text": (lambda f: _edit(f / "weights.042.data", " a ", " z "), r"weights\.042\.data:\d+: malformed weight line"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_model_folder_is_refused_with_a_clear_message(tmp_path, case):
    breakage, message = BROKEN[case]
    folder = _copy(tmp_path)
    breakage(folder)
    with pytest.raises(N2p2Error, match=message):
        load_model(folder)


def test_a_broken_folder_registers_nothing_through_the_cli(n2p2_db, tmp_path):
    from xtalbase.cli import app

    folder = _copy(tmp_path)
    (folder / "weights.042.data").unlink()
    before = cli_json("--db", n2p2_db.db.url, "models", "list")
    result = runner.invoke(app, ["--db", n2p2_db.db.url, "potential", "import-n2p2", str(folder), "--name", "broken"])
    assert result.exit_code != 0 and "no weights.042.data for Mo" in str(result.exception)
    assert cli_json("--db", n2p2_db.db.url, "models", "list") == before
    bad_units = runner.invoke(app, ["--db", n2p2_db.db.url, "potential", "import-n2p2", str(mlearn("Mo", "nnp")),
                                    "--name", "x", "--units", "furlongs"])
    assert bad_units.exit_code != 0 and "units 'furlongs'" in str(bad_units.exception)
