"""Key-motif data expansion end to end: oracles, the labelling folder, dataset lineage with reasons, the loop.

The data are made here with ASE's EMT (Al, Ni, Pt): a training set of rattled fcc Al, Ni, Pt and L1₂ Ni₃Al
cells, a target of Ni₃Al doubled along a with one Pt, and a hold-out of other supercells with Pt on other
sites. The ``files`` oracle round trip ingests a real VASP vasprun.xml from the shared data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from tests.conftest import shared
from tests.mlip.conftest import cli

#: Small training options: the loop trains (1 + strategies x N) potentials per seed.
EPOCHS = 8


def _rattled(atoms, count, seed):
    out = []
    for k in range(count):
        a = atoms.copy()
        a.rattle(0.05, seed=seed + k)
        out.append(a)
    return out


def _emt_sets(folder: Path) -> dict[str, Path]:
    import ase.io

    from xtalbase.mlip import oracles

    host = bulk("Ni", "fcc", a=3.56, cubic=True)
    host[0].symbol = "Al"
    train = [a for el, lat in (("Al", 4.05), ("Ni", 3.52), ("Pt", 3.92))
             for a in _rattled(bulk(el, "fcc", a=lat, cubic=True), 3, 1)] + _rattled(host, 4, 10)
    target = host.repeat((2, 1, 1))
    target[1].symbol = "Pt"
    holdout = []
    for k, (rep, site) in enumerate((((1, 2, 1), 2), ((1, 1, 2), 0))):
        cell = host.repeat(rep)
        cell[site].symbol = "Pt"
        holdout += _rattled(cell, 2, 30 + 10 * k)
    paths = {}
    for name, items in (("train", train), ("target", _rattled(target, 2, 20)), ("holdout", holdout)):
        paths[name] = folder / f"{name}.extxyz"
        ase.io.write(paths[name], oracles.label("emt", items), format="extxyz")
    return paths


@pytest.fixture
def emt_db(db, tmp_path):
    """``db`` holding the EMT sets as datasets ``train``, ``target`` and ``holdout``."""
    from xtalbase.mlip.labelling import structures_of_file

    for name, path in _emt_sets(tmp_path).items():
        db.ingest([str(path)])
        ids = structures_of_file(db, path)
        db.splits.create(name, strategy="random", fractions=(1.0,), ids=ids)
        db.datasets.create(name, split=name, fold="train")
    return db


def test_oracle_labels_carry_their_name_and_version_and_refuse_unknown_elements():
    from xtalbase.mlip import oracles

    cell = bulk("Cu", "fcc", a=3.6)
    out = oracles.label("emt", [cell])[0]
    assert out.info["code"] == "emt" and out.info["code_version"] == oracles.get_oracle("emt").version()
    from ase.calculators.emt import EMT

    ref = cell.copy()
    ref.calc = EMT()
    assert out.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-12)
    assert np.allclose(out.get_forces(), ref.get_forces())
    with pytest.raises(oracles.OracleError, match="Fe"):
        oracles.label("emt", [bulk("Fe", "bcc", a=2.87)])
    with pytest.raises(oracles.OracleError, match="unknown oracle 'dft'"):
        oracles.get_oracle("dft")
    frames = oracles.relax("emt", _rattled(bulk("Cu", "fcc", a=3.6, cubic=True), 1, 0)[0], fmax=0.01)
    assert len(frames) > 1 and [f.info["relax_step"] for f in frames] == list(range(len(frames)))
    assert np.abs(frames[-1].get_forces()).max() < 0.01 < np.abs(frames[0].get_forces()).max()


def test_files_oracle_round_trip_ingests_vasprun_and_extxyz_into_labelled_members(emt_db, tmp_path):
    import ase.io

    from xtalbase.mlip import expansion, oracles
    from xtalbase.mlip.labelling import LabellingError

    vasprun = shared("vasp", "scan_metal", "vasprun.xml")
    report = expansion.gap_report(emt_db, train="train", target="target")
    result = expansion.expand(emt_db, train="train", target="target", strategy="gap", n=3, oracle="files",
                              out=tmp_path / "label", name="train+files", report=report,
                              candidate_options={"a_values": [3.5, 4.0], "displacements": (0.0,)})
    assert result.dataset is None and len(result.selected) == 3
    manifest = json.loads((tmp_path / "label" / "manifest.json").read_text())
    keys = [c["key"] for c in manifest["candidates"]]
    assert all((tmp_path / "label" / k / "POSCAR").is_file() for k in keys)
    # the "DFT": a real VASP run in the first folder, EMT written as extxyz in the second, nothing in the third
    shutil.copy(vasprun, tmp_path / "label" / keys[0] / "vasprun.xml")
    poscar = ase.io.read(tmp_path / "label" / keys[1] / "POSCAR")
    ase.io.write(tmp_path / "label" / keys[1] / "result.extxyz", oracles.label("emt", [poscar]), format="extxyz")
    with pytest.raises(LabellingError, match=f"{keys[2]}: no output"):
        expansion.finish(emt_db, tmp_path / "label")
    assert "train+files" not in emt_db.datasets
    handle = expansion.finish(emt_db, tmp_path / "label", partial=True)
    added = [m for m in handle.members() if not m["inherited"]]
    assert len(added) == 2 and handle.parent == "train"
    assert all(m["reason"].startswith("gap: score") and "generator" in m["reason"] for m in added)
    assert keys[2] in handle.description
    with emt_db.session() as s:
        from xtalbase.platform.repositories.structures import calculations_of

        calcs = calculations_of(s, [m["structure_id"] for m in added])
    assert sorted(c.code.lower() for c in calcs.values()) == ["emt", "vasp"]
    lineage = emt_db.datasets.lineage("train+files")
    assert [row["name"] for row in lineage] == ["train+files", "train"] and lineage[0]["added"] == 2


def test_expand_with_emt_stores_a_child_dataset_each_member_with_its_reason(emt_db, tmp_path):
    from xtalbase.mlip import expansion
    from xtalbase.mlip.potentials import train_potential
    from xtalbase.mlip.training import TrainOptions

    parent = train_potential(emt_db, dataset="train", options=TrainOptions(epochs=EPOCHS), name="parent")
    report = expansion.gap_report(emt_db, train="train", target="target", model_id=parent.model_id)
    info = report.to_dict(5)
    # every target atom sits in an environment outside the training ranges (Pt next to Ni3Al), and the count
    # is the extrapolation count of `potential evaluate`
    from xtalbase.mlip.potentials import evaluate_potential

    assert info["n_outlier_atoms"] == evaluate_potential(emt_db, parent.model_id, dataset="target").extrapolating_atoms > 0
    assert info["top_motifs"] and all(m["score"] > 0 for m in info["top_motifs"])
    loose = expansion.gap_report(emt_db, train="train", target="target", model_id=parent.model_id, quantile=0.2)
    assert loose.to_dict()["n_outlier_atoms"] >= info["n_outlier_atoms"]   # a narrower range flags at least as many
    result = expansion.expand(emt_db, train="train", target="target", strategy="key-motif", n=2, oracle="emt",
                              out=tmp_path / "km", name="train+km", model_id=parent.model_id, report=report,
                              prototypes=["fcc", "L1_2", "L1_0", "cscl"])
    added = [m for m in result.dataset.members() if not m["inherited"]]
    assert len(added) == 2 and all(m["reason"].startswith("key-motif: score") and "labelled by emt" in m["reason"]
                                   for m in added)
    assert sorted(result.structure_ids.values()) == sorted(m["structure_id"] for m in added)
    import ase

    from xtalbase.platform.repositories.structures import calculations_of

    with emt_db.session() as s:
        calcs = calculations_of(s, [m["structure_id"] for m in added])
    # oracle labels say which oracle made them, and never pass for DFT
    assert {(c.code, c.code_version) for c in calcs.values()} == {("emt", ase.__version__)}
    with pytest.raises(expansion.ExpansionError, match="already exists"):
        expansion.expand(emt_db, train="train", target="target", strategy="gap", n=1, oracle="emt",
                         out=tmp_path / "again", name="train+km", report=report)
    child = train_potential(emt_db, dataset="train+km", options=TrainOptions(epochs=EPOCHS))
    from xtalbase.schema import Model

    with emt_db.session() as s:
        assert s.get(Model, child.model_id).parent_model_id == parent.model_id


def test_small_loop_with_emt_on_al_ni_pt_compares_strategies_on_the_holdout(emt_db, tmp_path):
    if emt_db.backend != "sqlite":
        pytest.skip("the loop stores through expand and train (tested on every backend); its ~25 s of training is done once, on SQLite")
    from xtalbase.mlip.loop import run_loop
    from xtalbase.mlip.training import TrainOptions

    result = run_loop(emt_db, train="train", target="target", holdout="holdout", out=tmp_path / "loop", prefix="t",
                      strategies=["key-motif", "random"], n_values=[1, 2], seeds=[0, 1], oracle="emt",
                      options=TrainOptions(epochs=EPOCHS), prototypes=["fcc", "L1_2", "L1_0", "cscl"])
    assert len(result.rows) == 2 * (1 + 2 * 2)
    table = {(r["strategy"], r["n"]): r for r in result.table}
    assert set(table) == {("none", 0), ("key-motif", 1), ("key-motif", 2), ("random", 1), ("random", 2)}
    assert all(r["seeds"] == 2 and r["energy_rmse_mev_mean"] > 0 and r["energy_rmse_mev_std"] >= 0 for r in result.table)
    # selections are nested: the N = 1 dataset's addition is the first of the N = 2 dataset's
    n1 = {m["structure_id"] for m in emt_db.datasets.get("t-key-motif-s0-n1").members() if not m["inherited"]}
    n2 = {m["structure_id"] for m in emt_db.datasets.get("t-key-motif-s0-n2").members() if not m["inherited"]}
    assert len(n1) == 1 and n1 < n2
    assert {p.name for p in result.files} == {"results.json", "results.csv", "results.md", "error_vs_n.png"}
    stored = json.loads((tmp_path / "loop" / "results.json").read_text())
    assert stored["table"] == json.loads(json.dumps(result.table))
    with emt_db.session() as s:
        from xtalbase.schema import Run

        assert s.get(Run, result.run_id).summary["table"] == stored["table"]


def test_mlip_cli_gap_expand_and_label(emt_db, tmp_path):
    url = emt_db.url
    out = cli("mlip", "gap", "--train", "train", "--target", "target", "--plots", str(tmp_path / "plots"),
              "--db", url, "--json")
    info = json.loads(out.output)
    assert info["model_id"] is None and info["strategy"] == "gap" and info["top_motifs"]
    assert all(Path(p).is_file() for p in info["plots"])
    out = cli("mlip", "expand", "--train", "train", "--target", "target", "--name", "train+gap", "--out",
              str(tmp_path / "exp"), "--strategy", "gap", "--n", "2", "--oracle", "emt", "--prototype", "fcc",
              "--prototype", "L1_2", "--db", url, "--json")
    info = json.loads(out.output)
    assert info["dataset"]["name"] == "train+gap" and len(info["selected"]) == 2
    out = cli("dataset", "lineage", "train+gap", "--db", url, "--json")
    assert "train" in out.output


def test_diverse_selection_zeroes_the_motifs_of_each_pick(emt_db):
    from xtalbase.mlip import expansion, surrogates

    report = expansion.gap_report(emt_db, train="train", target="target")
    pool = [c.to_ase() for c in expansion.dataset_configurations(emt_db, "holdout", labelled=True)]
    pool += [c.build() for c in surrogates.enumerate_candidates(["Al", "Ni", "Pt"], prototypes=["L1_2", "L1_0"],
                                                                a_values=[3.6, 3.9], strains=[(0,) * 6],
                                                                displacements=(0.0125,))]
    top = expansion.design(report, "gap", 3, pool=pool)
    diverse = expansion.design(report, "gap", 3, pool=pool, diverse=True)
    assert top[0].score == diverse[0].score and len(diverse) == 3
    table = surrogates.pool_table(pool, report.histograms, report.rc, report.rc_angle)
    scores = report.scores("gap")
    first = table.counts[next(k for k, a in enumerate(pool) if a is diverse[0].atoms)]
    covered = {key: np.where(first.get(key, 0) > 0, 0.0, s) for key, s in scores.items()}
    second = next(k for k, a in enumerate(pool) if a is diverse[1].atoms)
    # the second pick is the best under the scores with the first pick's motifs removed, and it is scored so
    assert diverse[1].score == pytest.approx(table.scores(covered)[second])
    assert table.scores(covered)[second] == pytest.approx(max(v for k, v in enumerate(table.scores(covered))
                                                              if pool[k] is not diverse[0].atoms))
    cands = expansion.design(report, "gap", 2, prototypes=["L1_2", "L1_0"], diverse=True,
                             candidate_options={"a_values": [3.6, 3.9, 4.2], "displacements": (0.0,)})
    assert len(cands) == 2 and cands[0].label != cands[1].label


def test_selection_keeps_one_of_each_crystal_whatever_generator_built_it():
    from xtalbase.mlip.expansion import _first_distinct
    from xtalbase.mlip.surrogates import Candidate

    cands = [Candidate("bcc", ("Al",), 3.25), Candidate("cscl", ("Al", "Al"), 3.25),
             Candidate("heusler", ("Al", "Al", "Al"), 6.5),       # the same bcc crystal in a 16-atom cell
             Candidate("heusler", ("Al", "Pt", "Ni"), 6.0), Candidate("heusler", ("Al", "Ni", "Pt"), 6.0),  # Y, Z swap
             Candidate("bcc", ("Al",), 3.5)]
    kept = _first_distinct(list(range(len(cands))), cands, 10)
    assert kept == [0, 3, 5]


def test_chgnet_oracle_without_its_extra_says_how_to_install_it(monkeypatch):
    import sys

    from xtalbase.mlip import oracles

    monkeypatch.setitem(sys.modules, "chgnet.model", None)    # as if the optional extra were not installed
    with pytest.raises(oracles.OracleError, match=r"pip install 'xtalbase\[oracle\]'"):
        oracles.get_oracle("chgnet").calculator()
    assert not oracles.get_oracle("files").is_calculator and oracles.get_oracle("files").version() is None
