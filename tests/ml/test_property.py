"""Property models: the torch MLP regressor (estimator checks, transfer, artifacts) and ``train property`` on a
small Perov-5 database (the 220 fixture rows, split ``p5`` grouped by formula), per backend."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Iterator

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import TEST_DATA
from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.ml import artifacts, registry
from xtalbase.ml.property import load_property_fold, regression_report, train_property
from xtalbase.ml.property_net import MLPPropertyRegressor, from_bytes, to_bytes
from xtalbase.schema import Model, RunLink

PEROV5 = TEST_DATA / "splits" / "perov5_220.csv"
SPLIT = "p5"
FAST = {"hidden_layer_sizes": "32,16", "max_epochs": 40, "patience": 10}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: more threads only contend with the other workers
    yield
    torch.set_num_threads(before)


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).normal(size=(n, 6))
    return X, np.sin(X[:, 0]) + X[:, 1] * X[:, 2] - 0.5 * X[:, 3]


# ----------------------------------------------------------------------------------------- the estimator
# float64: float32 matrix products may differ in the last bit between a batch and its subset
@parametrize_with_checks([MLPPropertyRegressor(hidden_layer_sizes=(32,), max_epochs=60, dtype="float64")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_same_seed_same_bytes_and_caller_rng_untouched():
    import torch

    X, y = _data()
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    first = MLPPropertyRegressor(**FAST, random_state=3).fit(X, y)
    assert torch.equal(torch.rand(1), expected)  # fit seeded its own generator state, not the caller's
    second = MLPPropertyRegressor(**FAST, random_state=3).fit(X, y)
    other = MLPPropertyRegressor(**FAST, random_state=4).fit(X, y)
    assert to_bytes(first) == to_bytes(second) != to_bytes(other)
    assert first.n_iter_ == len(first.history_) and 1 <= first.best_epoch_ <= first.n_iter_
    assert {"epoch", "train_loss", "val_loss"} <= set(first.history_[0])


def test_artifact_and_pickle_round_trips_without_pickled_modules():
    X, y = _data()
    model = MLPPropertyRegressor(**FAST).fit(X, y)
    back = from_bytes(to_bytes(model))
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert back.get_params()["hidden_layer_sizes"] == [32, 16]
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="not an MLP property artifact"):
        from_bytes(b"not a zip")


def test_fine_tune_frozen_body_and_kept_head():
    X, y = _data(400)
    source = MLPPropertyRegressor(**FAST).fit(X, y)
    blob = to_bytes(source)
    body = {k: v.clone() for k, v in source.network_.body.state_dict().items()}

    frozen = MLPPropertyRegressor(init_from=blob, freeze="body", max_epochs=15).fit(X[:60], 2 * y[:60] + 1)
    for k, v in frozen.network_.body.state_dict().items():
        assert np.array_equal(v.numpy(), body[k].numpy()), k  # a frozen body keeps the source's weights
    np.testing.assert_allclose(frozen.embed(X[:5]), source.embed(X[:5]), rtol=1e-6)
    np.testing.assert_array_equal(frozen.x_mean_, source.x_mean_)  # the body's input scaling travels with it
    assert frozen.architecture_["hidden"] == [32, 16] and frozen.y_mean_ != source.y_mean_

    tuned = MLPPropertyRegressor(init_from=blob, max_epochs=15).fit(X[:60], 2 * y[:60] + 1)
    assert any(not np.array_equal(v.numpy(), body[k].numpy()) for k, v in tuned.network_.body.state_dict().items())

    kept = MLPPropertyRegressor(init_from=blob, reset_head=False, max_epochs=1, learning_rate=1e-12).fit(X[:60], y[:60])
    np.testing.assert_allclose(kept.predict(X[:20]), source.predict(X[:20]), rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match="takes 6 features"):
        MLPPropertyRegressor(init_from=blob).fit(X[:, :4], y)
    with pytest.raises(ValueError, match="task must be 'regression'"):
        MLPPropertyRegressor(task="classification").fit(X, y)


def test_eval_set_early_stopping_and_metrics():
    X, y = _data(300)
    model = MLPPropertyRegressor(**FAST).fit(X[:200], y[:200], eval_set=(X[200:], y[200:]))
    assert len(model.history_) == model.n_iter_ and "val_loss" in model.history_[-1]
    report = regression_report(y[200:], model.predict(X[200:]), y[:200])
    assert report["mae"] < report["baseline_mean_mae"] and report["rmse"] >= report["mae"]
    assert set(report) >= {"n", "r2", "baseline_mean_rmse", "baseline_median_mae", "baseline_median_r2"}


# ----------------------------------------------------------------------------------------- the database (p5db: tests/conftest.py)
def test_xgboost_and_mlp_models_are_registered_with_provenance(p5db):
    xgb = train_property(p5db, target="heat_ref", split=SPLIT, algorithm="xgboost", params={"n_estimators": 50})
    mlp = train_property(p5db, target="heat_ref", split=SPLIT, algorithm="mlp", params=FAST, name="heat-mlp")
    for report in (xgb, mlp):
        test, val, train = report.metrics["test"], report.metrics["val"], report.metrics["train"]
        assert train["n"] + val["n"] + test["n"] == 220 and test["n_without_target"] == 0
        assert {"mae", "rmse", "r2", "baseline_mean_mae", "baseline_median_mae"} <= set(test)
        with p5db.session() as s:
            row = s.get(Model, report.model_id)
            assert (row.task, row.target, row.algorithm) == ("regression", "heat_ref", report.algorithm)
            assert row.feature_recipe["descriptor"] == "magpie" and row.feature_recipe["n_features"] == 132
            assert row.artifact_format == ("xgboost-ubj" if report.algorithm == "xgboost" else "torch-mlp")
            assert row.training_set_hash and row.split_id and row.xrd_recipe_id is None
            links = {(link.direction, link.kind) for link in s.scalars(select(RunLink).where(RunLink.run_id == row.run_id))}
            assert {("input", "split"), ("input", "training_set"), ("output", "model")} <= links
            estimator = registry.load_estimator(row)
            from xtalbase.ml.provenance import model_chain

            assert model_chain(s, row.id)["training_structures"]["matches_recorded"] is True
        assert hasattr(estimator, "predict")
    assert mlp.metrics["val"]["used_for_early_stopping"] and "best_epoch" in mlp.metrics["train"]
    assert "torch" in registry.list_models(p5db, target="heat_ref")[0]["library_versions"]
    again = train_property(p5db, target="heat_ref", split=SPLIT, algorithm="mlp", params=FAST)
    assert again.artifact_sha256 == mlp.artifact_sha256 and again.metrics == mlp.metrics


def test_transfer_from_a_registered_network(p5db):
    source = train_property(p5db, target="heat_ref", split=SPLIT, algorithm="mlp", params=FAST, name="heat-source")
    frozen = train_property(p5db, target="dir_gap", split=SPLIT, algorithm="mlp", init_from="heat-source",
                            params={"freeze": "body", "max_epochs": 10})
    assert frozen.parent_model_id == source.model_id
    with p5db.session() as s:
        row = s.get(Model, frozen.model_id)
        assert row.parent_model_id == source.model_id and row.hyperparameters["init_from_model"] == source.model_id
        assert row.hyperparameters["freeze"] == "body" and [m.id for m in registry.lineage(s, row)] == [row.id, source.model_id]
        links = {(link.kind, link.model_id) for link in s.scalars(select(RunLink).where(RunLink.run_id == row.run_id))}
        assert ("model", source.model_id) in links
        src_est, est = registry.load_estimator(s.get(Model, source.model_id)), registry.load_estimator(row)
    X = np.zeros((2, 132))
    np.testing.assert_allclose(est.embed(X), src_est.embed(X), rtol=1e-6)  # the frozen body is the source's
    with pytest.raises(XtalbaseError, match="needs --algorithm mlp"):
        train_property(p5db, target="dir_gap", split=SPLIT, algorithm="xgboost", init_from=source.model_id)
    with pytest.raises(XtalbaseError, match="trained on descriptor 'magpie' .*not 'xenonpy'"):
        train_property(p5db, target="dir_gap", split=SPLIT, algorithm="mlp", descriptor="xenonpy", init_from=source.model_id)


def test_targets_and_features_come_from_the_database(p5db):
    import csv

    from xtalbase.descriptors.compositional import composition_preset
    from xtalbase.ml.xrd_inputs import get_split, split_fold_ids
    from xtalbase.schema import Source

    csv.field_size_limit(1 << 30)
    with open(PEROV5, newline="") as fh:
        rows = {r["material_id"]: r for r in csv.DictReader(fh)}
    with p5db.session() as s:
        test_ids = split_fold_ids(s, get_split(s, SPLIT), "test")
        external = dict(s.execute(select(Source.structure_id, Source.external_id).where(Source.structure_id.in_(test_ids))).all())
    fold, recipe, missing = load_property_fold(p5db, test_ids, "dir_gap", "magpie")
    assert missing == 0 and recipe["n_features"] == 132 and fold.X.shape == (len(test_ids), 132)
    assert len(recipe["recipe_hash"]) == 64 and recipe["recipe_kind"] == "composition"
    truth = [rows[external[int(i)]] for i in fold.ids]
    np.testing.assert_array_equal(fold.y, [float(r["dir_gap"]) for r in truth])
    np.testing.assert_allclose(fold.X, composition_preset("magpie").transform([r["formula"] for r in truth]), rtol=1e-9, atol=1e-9)
    assert fold.exact_hashes == sorted(fold.exact_hashes)  # rows in exact-hash order, as the XRD models
    with pytest.raises(XtalbaseError, match="no structure of the selection has a source property 'band_gap'"):
        train_property(p5db, target="band_gap", split=SPLIT)
    with pytest.raises(XtalbaseError, match="is text, not a number"):
        train_property(p5db, target="formula", split=SPLIT)
    with pytest.raises(XtalbaseError, match="cannot train a property model"):
        train_property(p5db, target="heat_ref", split=SPLIT, algorithm="svm")


def test_cli_train_property(p5db):
    args = ["train", "property", "--target", "heat_ref", "--split", SPLIT, "--algorithm", "xgboost", "--param", "n_estimators=30",
            "--seed", "2", "--db", str(p5db.url)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads(result.output)
    assert out["metrics"]["test"]["n"] > 0 and len(out["artifact_sha256"]) == 64
    with p5db.session() as s:
        assert artifacts.sha256(bytes(s.get(Model, out["model_id"]).artifact)) == out["artifact_sha256"]
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "mean-baseline" in table.output, table.output
    refused = CliRunner().invoke(app, [*args, "--freeze"])
    assert refused.exit_code != 0 and "--init-from" in str(refused.exception)


def test_structures_without_the_property_are_left_out_and_counted(db):
    from xtalbase.platform.query import Query

    assert db.ingest([TEST_DATA / "ingest" / "cif" / "CaO.cif", TEST_DATA / "ingest" / "cif" / "CaTiO3.cif"]).inserted == 2
    bare = Query(db, None).ids()
    assert db.ingest([TEST_DATA / "ingest" / "perov5_head.csv"]).inserted > 10
    everything = Query(db, None).ids()
    fold, _, missing = load_property_fold(db, everything, "heat_ref", "magpie")
    assert missing == len(bare) == 2 and len(fold) == len(everything) - 2 and not set(bare) & set(fold.ids.tolist())
    with pytest.raises(XtalbaseError, match="none of the 2 structures has a value|no structure of the selection"):
        load_property_fold(db, bare, "heat_ref", "magpie")


def test_structures_without_the_target_are_left_out_and_the_provenance_check_knows_it(p5db, tmp_path):
    from pymatgen.core import Lattice, Structure

    from xtalbase.ml.provenance import model_chain

    for a, b, x in ((5.6, "Na", "Cl"), (6.3, "K", "Cl"), (4.0, "Li", "F")):  # rock salts without any source property
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [b, x], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
            filename=str(tmp_path / f"{b}{x}.cif"))
    assert p5db.ingest([tmp_path]).inserted == 3
    p5db.splits.create("all-random", strategy="random", fractions=(0.6, 0.2, 0.2), seed=1)
    report = train_property(p5db, target="heat_ref", split="all-random", algorithm="xgboost", params={"n_estimators": 20})
    missing = sum(report.metrics[f]["n_without_target"] for f in ("train", "val", "test"))
    assert missing == 3 and sum(report.metrics[f]["n"] for f in ("train", "val", "test")) == 220
    assert report.metrics["train"]["n_without_target"] >= 1  # else the check below could not fail
    with p5db.session() as s:
        chain = model_chain(s, report.model_id)["training_structures"]
    assert chain["matches_recorded"] is True and chain["count"] == report.metrics["train"]["n"]


def test_an_algorithm_is_refused_up_front_for_a_task_it_cannot_learn():
    from xtalbase.ml.algorithms import make_estimator

    with pytest.raises(ValueError, match="'mlp' learns regression targets only, not classification"):
        make_estimator("mlp", "classification")
    assert make_estimator("extratrees", "classification") is not None


def test_a_property_model_predicts_stored_structures_and_refuses_patterns(p5db):
    from xtalbase.ml.predict import predict_patterns, predict_structures

    report = train_property(p5db, target="heat_ref", split=SPLIT, algorithm="xgboost", params={"n_estimators": 30})
    test_ids = p5db.splits.get(SPLIT).ids("test")
    out = predict_structures(p5db, report.model_id, test_ids, source="split test")
    assert len(out.prediction_ids) == len(test_ids) == report.metrics["test"]["n"]
    # the stored predictions reproduce the test metrics recorded at training time
    assert out.summary["mae_vs_stored"] == pytest.approx(report.metrics["test"]["mae"], rel=1e-6)
    with pytest.raises(XtalbaseError, match="not from XRD patterns"):
        predict_patterns(p5db, report.model_id, [1])
