"""``xtalbase demo`` end to end on the vendored data: a fresh SQLite database, models, predictions, plots, SQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

import xtalbase
from xtalbase.cli import app
from xtalbase.schema import Model, Prediction, Run, Source, XrdPattern

runner = CliRunner()
PACKAGE_DATA = (Path(xtalbase.__file__).resolve().parent / "data").resolve()


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory) -> dict:
    """One demo run (the slowest test of the suite: keep it to one)."""
    folder = tmp_path_factory.mktemp("demo") / "run"
    result = runner.invoke(app, ["demo", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_demo_trains_and_imports_potentials(demo_result):
    pot = demo_result["potentials"]
    published, trained, baseline = pot["published"]["test"], pot["trained"]["test"], pot["trained"]["baseline_test"]
    # the imported n2p2 model reproduces its published accuracy on the mlearn Mo test set
    assert published["n_structures"] == 23 and abs(published["energy_rmse_mev"] - 5.43) < 0.05
    assert abs(published["force_rmse"] - 0.204) < 0.002
    # a potential trained on a third of the training set still beats the mean-energy baseline by far
    assert trained["energy_rmse_mev"] < 0.2 * baseline["energy_rmse_mev"]
    assert trained["force_rmse"] < 0.5 * baseline["force_rmse"]
    assert pot["test_predictions"] == 23
    # the key-motif analysis ran on the stored train/test datasets: outlier atoms counted per element
    gap = pot["gap"]
    assert set(gap["outliers"]) == {"Mo"} and 0 <= gap["n_outlier_atoms"] <= gap["outliers"]["Mo"]["atoms"]
    assert gap["top_motifs"] and all(m.startswith("Mo") for m in gap["top_motifs"])


def test_demo_ranks_the_csp_baselines(demo_result):
    csp = demo_result["csp"]
    assert sum(csp["counts"].values()) == 600
    rows = {(r["model"], r["k"]): r for r in csp["rows"]}
    assert set(rows) == {(m, k) for m in ("random", "template", "cspml") for k in (1, 5)}
    assert all(r["n_test"] == csp["counts"]["test"] for r in rows.values())
    # substituted templates beat random coordinates, and five samples beat one
    assert rows[("template", 1)]["match_rate"] > rows[("random", 1)]["match_rate"]
    assert rows[("template", 1)]["rmse"] < rows[("random", 1)]["rmse"]
    assert rows[("template", 5)]["match_rate"] >= rows[("template", 1)]["match_rate"]
    # every tied-site assignment is a cspml candidate: at k = 5 it matches at least what the nearest template does
    assert rows[("cspml", 5)]["match_rate"] >= rows[("template", 5)]["match_rate"] > rows[("random", 5)]["match_rate"]


def test_demo_trains_a_property_model_on_cached_descriptors(demo_result):
    prop = demo_result["properties"]
    assert prop["described"] == demo_result["ingest"]["inserted"]
    test = prop["metrics"]["test"]
    # composition alone predicts MP formation energy far better than the training mean (MAE in eV/atom)
    assert test["n"] > 50 and test["mae"] < 0.5 * test["baseline_mean_mae"]


def test_demo_runs_the_whole_pipeline(demo_result):
    out = demo_result
    assert out["ingest"]["inserted"] == 406 and out["ingest"]["quarantined"] == 0
    assert out["xrd_patterns"] == 406 and out["measured_patterns"] == 8
    assert sum(out["split"]["counts"].values()) == 406
    assert [(m["algorithm"], m["features"]) for m in out["models"]] == [("extratrees", "peaks11"), ("xgboost", "peaks11"),
                                                                         ("cnn", "profile_aug")]
    for m in out["models"]:
        test = m["metrics"]["test"]
        assert test["accuracy"] > 2 * test["majority_accuracy"], test
        assert m["test_predictions"] == test["n"] and len(m["scan_predictions"]) == 8
    # confusion, importances and surrogate per tree model; the CNN has no importances and no peaks11 surrogate
    assert len(out["plots"]) == 7 and all(Path(p).stat().st_size > 5000 for p in out["plots"])
    assert [len(q["rows"]) > 0 for q in out["queries"]] == [True, True, True]
    assert out["seconds"] < 180

    db = xtalbase.connect(out["url"])
    with db.session() as s:
        # 3 crystal-system, 1 property, 2 potentials, 3 CSP, 1 phase identification
        assert s.scalar(select(func.count()).select_from(Model)) == 10
        assert list(s.scalars(select(Model.algorithm).where(Model.task == "phase_identification"))) == ["xrd-profile-search"]
        assert sorted(s.scalars(select(Model.algorithm).where(Model.task == "csp"))) == ["cspml", "random", "template"]
        assert list(s.scalars(select(Model.target).where(Model.task == "regression"))) == ["formation_energy_per_atom"]
        assert sorted(s.scalars(select(Model.task).where(Model.task == "potential"))) == ["potential", "potential"]
        n_pred = s.scalar(select(func.count()).select_from(Prediction))
        assert n_pred == sum(m["test_predictions"] + 8 for m in out["models"]) + out["potentials"]["test_predictions"] + 8
        assert s.scalar(select(func.count()).select_from(XrdPattern).where(XrdPattern.kind == "measured")) == 8
        # the demo reads only the data shipped inside the package, never ../shared
        paths = [Path(p).resolve() for p in s.scalars(select(Source.file_path))]
        paths += [Path(p).resolve() for p in s.scalars(select(XrdPattern.file_path).where(XrdPattern.file_path.is_not(None)))]
        assert paths and all(PACKAGE_DATA in p.parents for p in paths)
        assert {r.status for r in s.scalars(select(Run))} == {"succeeded"}
        kinds = set(s.scalars(select(Run.kind)))
    assert {"ingest", "train", "predict", "import"} <= kinds
    # SQL answers agree with the stored predictions
    acc = {row[0]: row[3] for row in out["queries"][1]["rows"]}
    for m in out["models"]:
        assert abs(acc[m["model_id"]] - m["metrics"]["test"]["accuracy"]) < 1e-3
    db.close()


def test_demo_prints_tables_and_where_things_are(demo_result, capsys, monkeypatch):
    from xtalbase.commands.demo import report

    monkeypatch.setenv("COLUMNS", "200")
    report(demo_result)
    printed = capsys.readouterr().out
    for needle in ("crystal system from XRD", "measured scans", "Structures per crystal system", "SELECT",
                   f"database: {demo_result['database']}", "provenance prediction", "plots:", ".png", "extratrees", "xgboost"):
        assert needle in printed, needle
    # the provenance command the demo suggests works on the demo database
    pid = demo_result["models"][0]["example_prediction_id"]
    chain = runner.invoke(app, ["provenance", "prediction", str(pid), "--db", demo_result["url"], "--json"])
    assert chain.exit_code == 0 and json.loads(chain.stdout)["model_chain"]["training_structures"]["matches_recorded"]


def test_demo_identifies_every_phase_named_by_the_scans(demo_result):
    """The phase search over the vendored structures, each scan with its sample-table elements: every phase in a
    scan's file name is among the phases returned, and every result is stored as a prediction."""
    import re

    from pymatgen.core import Composition

    phases = {r["scan"]: r for r in demo_result["phases"]}
    assert len(phases) == 8
    for scan, result in phases.items():
        named = {Composition(part).reduced_formula for part in re.split(r"[+]", scan)}
        returned = {Composition(p["formula"]).reduced_formula for p in result["phases"]}
        assert named <= returned, (scan, result["phases"])
        assert result["prediction_id"] is not None
