"""Training XRD models on the database (SQLite and PostgreSQL): metrics, registry rows, determinism, errors."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.ml.test_model_support import SPLIT
from xtalbase.cli import app
from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.ml.training import parse_params, train_xrd
from xtalbase.schema import Model, Run, RunLink

runner = CliRunner()


def test_crystal_system_models_beat_majority_and_are_registered(trained_db):
    db = trained_db
    for algorithm in ("extratrees", "xgboost"):
        report = train_xrd(db, target="crystal_system", split=SPLIT, algorithm=algorithm, seed=0, params={"n_estimators": 60})
        test, val = report.metrics["test"], report.metrics["val"]
        assert test["n"] > 50 and val["n"] > 50 and report.metrics["train"]["n"] + test["n"] + val["n"] == 350
        assert test["accuracy"] > 0.4 and test["accuracy"] > 2.5 * test["majority_accuracy"], test
        assert len(test["confusion_matrix"]) == len(test["confusion_labels"])
        assert sum(map(sum, test["confusion_matrix"])) == test["n"]
        with db.session() as s:
            row = s.get(Model, report.model_id)
            assert row.task == "classification" and row.algorithm == algorithm and row.seed == 0
            assert row.split_id is not None and row.fold == "train" and row.xrd_recipe_id is not None
            assert row.feature_recipe == {"kind": "peaks11", "n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0}
            assert row.artifact_format == ("skops" if algorithm == "extratrees" else "xgboost-ubj")
            assert len(row.artifact_sha256) == 64 and row.artifact
            assert {"scikit-learn", "xgboost", "numpy", "python"} <= set(row.library_versions)
            assert row.code_version and row.training_set_hash
            run = s.get(Run, row.run_id)
            assert run.kind == "train" and run.status == "succeeded"
            links = {(l.direction, l.kind) for l in s.scalars(select(RunLink).where(RunLink.run_id == run.id))}
            assert {("input", "split"), ("input", "xrd_recipe"), ("input", "training_set"), ("output", "model")} <= links


def test_same_inputs_and_seed_give_identical_metrics_and_artifact(trained_db):
    for algorithm in ("extratrees", "xgboost"):
        first = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm=algorithm, seed=11,
                          params={"n_estimators": 40})
        second = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm=algorithm, seed=11,
                           params={"n_estimators": 40})
        assert first.model_id != second.model_id
        assert first.metrics == second.metrics
        assert first.artifact_sha256 == second.artifact_sha256
    other = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm="extratrees", seed=12, params={"n_estimators": 40})
    assert other.artifact_sha256 != first.artifact_sha256 or other.metrics != first.metrics


def test_space_group_top5_and_lattice_regression(trained_db):
    sg = train_xrd(trained_db, target="space_group", split=SPLIT, algorithm="extratrees", params={"n_estimators": 30})
    test = sg.metrics["test"]
    assert test["top5_accuracy"] >= test["accuracy"] and test["top5_accuracy"] > 0.3
    assert "confusion_matrix" not in test  # 230 classes: not stored
    lat = train_xrd(trained_db, target="lattice", split=SPLIT, algorithm="extratrees", params={"n_estimators": 30})
    t = lat.metrics["test"]
    assert {"r2_a", "mae_a", "r2_b", "r2_c", "mae_c"} <= set(t)
    assert 0 < t["mae_a"] < 3.0  # Å, conventional cell
    cubic = train_xrd(trained_db, target="cubic_a", split=SPLIT, algorithm="extratrees", params={"n_estimators": 30})
    assert cubic.metrics["train"]["n"] < 50 and "r2_a" in cubic.metrics["test"]


def test_threshold_is_part_of_the_recipe_and_changes_the_features(trained_db):
    few = {"n_estimators": 20}
    every = train_xrd(trained_db, target="crystal_system", split=SPLIT, seed=0, params=few)
    strict = train_xrd(trained_db, target="crystal_system", split=SPLIT, seed=0, params=few, feature_options={"min_intensity": 5.0})
    with trained_db.session() as s:
        assert s.get(Model, strict.model_id).feature_recipe["min_intensity"] == 5.0
    assert strict.artifact_sha256 != every.artifact_sha256


def test_train_cli_prints_metrics_and_json(trained_db, tmp_path):
    result = runner.invoke(app, ["train", "xrd", "--db", trained_db.url, "--split", SPLIT, "--algorithm", "xgboost",
                                 "--param", "n_estimators=30", "--param", "max_depth=4", "--plots", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "confusion matrix" in result.output and "test" in result.output
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) == 3 and [n.endswith(e) for n, e in zip(pngs, ("_confusion.png", "_importances.png", "_surrogate_peak3_npeaks.png"))] == [True] * 3
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in tmp_path.glob("*.png"))
    result = runner.invoke(app, ["train", "xrd", "--db", trained_db.url, "--split", SPLIT, "--json", "--min-intensity", "1",
                                 "--param", "n_estimators=30"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["metrics"]["test"]["accuracy"] > 0.3 and len(data["artifact_sha256"]) == 64
    listed = runner.invoke(app, ["models", "list", "--db", trained_db.url, "--json"])
    assert any(m["id"] == data["model_id"] and m["feature_recipe"]["min_intensity"] == 1.0 for m in json.loads(listed.output))
    shown = runner.invoke(app, ["models", "show", str(data["model_id"]), "--db", trained_db.url])
    assert shown.exit_code == 0 and data["artifact_sha256"] in shown.output


def test_bad_requests_fail_with_clear_errors(trained_db):
    with pytest.raises(XtalbaseError, match="unknown target"):
        train_xrd(trained_db, target="band_gap", split=SPLIT)
    with pytest.raises(NotFound, match="no split named 'nope'.*models"):
        train_xrd(trained_db, split="nope")
    with pytest.raises(XtalbaseError, match="unknown xgboost parameter"):
        train_xrd(trained_db, split=SPLIT, algorithm="xgboost", params={"n_trees": 3})
    with pytest.raises(XtalbaseError, match="exactly one of"):
        train_xrd(trained_db)
    with pytest.raises(NotFound, match="no XRD recipe"):
        train_xrd(trained_db, split=SPLIT, recipe="no-such-recipe")
    with pytest.raises(XtalbaseError, match="key=value"):
        parse_params(["n_estimators"])
    assert parse_params(["a=1", "b=0.5", "c=None", "d=true", "e=sqrt"]) == {"a": 1, "b": 0.5, "c": None, "d": True, "e": "sqrt"}
    with trained_db.session() as s:
        failed = s.scalars(select(Run).where(Run.kind == "train", Run.status == "failed")).all()
    assert failed == []  # validation happens before any run is opened


def test_structures_without_patterns_are_reported(trained_db):
    from xtalbase.schema import XrdRecipe

    with trained_db.session() as s:
        ids = list(s.scalars(select(XrdRecipe.id)))
    assert len(ids) == 1
    with pytest.raises(XtalbaseError, match="have no computed XRD pattern for recipe"):
        from xtalbase.xrd.builder import compute_missing

        other = compute_missing(trained_db, {"radiation": "MoKa"}, structure_ids=[1])
        train_xrd(trained_db, split=SPLIT, recipe=str(other["recipe_id"]))


def test_train_cli_error_is_one_line(trained_db, capsys):
    from xtalbase.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--db", trained_db.url, "train", "xrd", "--split", "missing-split"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and err.startswith("error: no split named 'missing-split'")
    assert len(err.splitlines()) == 1
