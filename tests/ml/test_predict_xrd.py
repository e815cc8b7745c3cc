"""Predictions from registered models: split folds, filters and measured scans, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.ml.test_model_support import SCANS, SPLIT
from xtalbase.cli import app
from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.ml.predict import predict_structures, structures_of_split
from xtalbase.ml.training import train_xrd
from xtalbase.schema import Prediction, RunLink, XrdPattern

runner = CliRunner()


@pytest.fixture(scope="module")
def models(trained_db):
    """A crystal-system model and a lattice model on the split ``models``."""
    cs = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm="xgboost", params={"n_estimators": 60})
    lat = train_xrd(trained_db, target="lattice", split=SPLIT, algorithm="extratrees", params={"n_estimators": 30})
    return cs, lat


def test_test_fold_predictions_reproduce_the_stored_metrics(trained_db, models):
    cs, _ = models
    ids = structures_of_split(trained_db, SPLIT, "test")
    report = predict_structures(trained_db, cs.model_id, ids, source="split/test")
    assert len(report.prediction_ids) == len(ids) == cs.metrics["test"]["n"]
    # the same model on the same features must give exactly the accuracy recorded at training time
    assert report.summary["accuracy_vs_stored"] == pytest.approx(cs.metrics["test"]["accuracy"])
    with trained_db.session() as s:
        rows = s.scalars(select(Prediction).where(Prediction.run_id == report.run_id)).all()
        assert {r.structure_id for r in rows} == set(ids)
        for r in rows[:20]:
            top = r.payload["top_k"]
            assert len(top) == 5 and top[0][0] == r.label and r.target == "crystal_system"
            probs = [p for _, p in top]
            assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
        link = s.scalars(select(RunLink).where(RunLink.run_id == report.run_id, RunLink.kind == "model")).one()
        assert link.ref == str(cs.model_id) and link.sha256 == cs.artifact_sha256


def test_lattice_predictions_store_values(trained_db, models):
    _, lat = models
    ids = structures_of_split(trained_db, SPLIT, "val")[:10]
    report = predict_structures(trained_db, lat.model_id, ids)
    with trained_db.session() as s:
        rows = s.scalars(select(Prediction).where(Prediction.run_id == report.run_id)).all()
    assert len(rows) == 10
    for r in rows:
        assert r.label is None and 1.0 < r.value < 40.0 and set(r.payload["values"]) == {"a", "b", "c"}
        assert r.value == pytest.approx(r.payload["values"]["a"])
    assert "mae_vs_stored" in report.summary


def test_predict_cli_by_split_and_by_filter(trained_db, models):
    cs, _ = models
    result = runner.invoke(app, ["predict", str(cs.model_id), "--db", trained_db.url, "--split", SPLIT, "--fold", "val"])
    assert result.exit_code == 0, result.output
    assert "stored" in result.output and "accuracy against stored labels" in result.output
    flt = 'elements HAS "O" AND nelements = 2'
    expected = trained_db.query(flt).count()
    assert expected > 0
    result = runner.invoke(app, ["predict", str(cs.model_id), "--db", trained_db.url, "--filter", flt, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["predictions"]) == expected
    assert all(p["label"] in cs.metrics["test"]["confusion_labels"] or p["label"] for p in data["predictions"])


def test_predict_measured_patterns_through_peak_picking(trained_db, models):
    cs, _ = models
    scans = [SCANS / "MnO.xy", SCANS / "TiO2.xy"]
    args = ["predict", str(cs.model_id), "--db", trained_db.url, "--json"]
    for scan in scans:
        args += ["--pattern", str(scan)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [p["name"] for p in data["predictions"]] == ["MnO", "TiO2"]
    assert all(p["npeaks_used"] >= 3 and len(p["top_k"]) == 5 for p in data["predictions"])
    with trained_db.session() as s:
        patterns = s.scalars(select(XrdPattern).where(XrdPattern.kind == "measured")).all()
        assert {p.name for p in patterns} == {"MnO", "TiO2"}
        n_pred = s.scalar(select(func.count()).select_from(Prediction).where(Prediction.pattern_id.is_not(None)))
    assert n_pred == 2
    # importing the same scan again reuses the stored pattern
    again = json.loads(runner.invoke(app, args).output)
    assert [p["pattern_id"] for p in again["predictions"]] == [p["pattern_id"] for p in data["predictions"]]


def test_measured_peaks_are_moved_to_the_recipe_wavelength(trained_db):
    from xtalbase.ml.predict import peaks_for_recipe
    from xtalbase.schema import XrdRecipe
    from xtalbase.schema.arrays import pack

    with trained_db.session() as s:
        recipe = s.scalars(select(XrdRecipe)).first()
    d = np.array([3.0, 2.0, 1.0])
    pattern = XrdPattern(two_theta=pack(np.degrees(2 * np.arcsin(0.7093 / (2 * d)))), intensity=pack([10.0, 100.0, 50.0]),
                         d_spacing=pack(d))
    tt, inten = peaks_for_recipe(pattern, recipe)  # Mo Kα peaks seen through the Cu Kα recipe
    expected = np.degrees(2 * np.arcsin(recipe.wavelength / (2 * d)))  # d = 1 Å lies at 100.9°: outside 0-90°
    assert np.allclose(tt, expected[:2]) and list(inten) == [10.0, 100.0]


def test_predict_errors(trained_db, models):
    cs, _ = models
    with pytest.raises(NotFound, match="no model '99999'"):
        predict_structures(trained_db, 99999, [1])
    with pytest.raises(XtalbaseError, match="selection is empty"):
        predict_structures(trained_db, cs.model_id, [])
    result = runner.invoke(app, ["predict", str(cs.model_id), "--db", trained_db.url])
    assert result.exit_code != 0 and "exactly one of" in str(result.exception)


@pytest.mark.parametrize("recipe", [{"kind": "peaks11"}, {"kind": "peaks11", "min_intensity": 5.0, "merge_tol": 0.1},
                                    {"kind": "profile", "step": 1.0, "fwhm": 0.5}])
def test_training_and_prediction_features_of_the_same_peaks_are_identical(trained_db, recipe):
    from xtalbase.ml.features import FeatureRecipe
    from xtalbase.ml.predict import peaks_for_recipe
    from xtalbase.ml.xrd_inputs import load_fold
    from xtalbase.schema import XrdRecipe

    stored = FeatureRecipe.make(**recipe).to_dict()  # what a model row holds
    ids = structures_of_split(trained_db, SPLIT, "test")[:25]
    with trained_db.session() as s:
        xrd = s.scalars(select(XrdRecipe)).first()
        train = load_fold(s, ids, "crystal_system", xrd.id, FeatureRecipe.make(**recipe))
        patterns = {p.structure_id: p for p in s.scalars(select(XrdPattern).where(XrdPattern.structure_id.in_(ids),
                                                                                    XrdPattern.recipe_id == xrd.id))}
        # the prediction path of a pattern: peaks through the model's XRD recipe, then the stored feature recipe
        peaks = [peaks_for_recipe(patterns[int(i)], xrd) for i in train.ids]
    predicted = FeatureRecipe.from_dict(stored).transform(peaks)
    assert predicted.dtype == train.X.dtype == np.float32 and predicted.shape == train.X.shape
    np.testing.assert_array_equal(predicted, train.X)
