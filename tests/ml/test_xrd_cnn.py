"""The XRD profile CNN: scikit-learn's estimator checks, seeds and artifacts, and ``train xrd --algorithm cnn`` end to end."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Iterator

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks
from typer.testing import CliRunner

from tests.ml.test_model_support import SCANS, SPLIT
from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.ml import artifacts, registry
from xtalbase.ml.algorithms import make_estimator
from xtalbase.ml.xrd_cnn import ProfileCNNClassifier, from_bytes, to_bytes

runner = CliRunner()
FAST = {"channels": (4, 8), "max_epochs": 15, "patience": 5}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: more threads only contend with the other workers
    yield
    torch.set_num_threads(before)


def _data(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Profiles on 64 points with one peak: the class is where the peak sits (left, middle, right)."""
    rng = np.random.default_rng(seed)
    where = rng.integers(0, 3, n)
    centre = 10 + 20 * where + rng.normal(0, 2, n)
    grid = np.arange(64)
    X = np.exp(-0.5 * ((grid[None, :] - centre[:, None]) / 2.0) ** 2) + rng.normal(0, 0.05, (n, 64))
    return X, np.array(["left", "middle", "right"])[where]


# float64: float32 convolutions may differ in the last bit between a batch and its subset
@parametrize_with_checks([ProfileCNNClassifier(channels=(8,), max_epochs=60, patience=60, dropout=0.0, dtype="float64")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_learns_peak_positions_with_the_same_bytes_per_seed():
    import torch

    X, y = _data()
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    first = ProfileCNNClassifier(**FAST, random_state=3).fit(X, y)
    assert torch.equal(torch.rand(1), expected)  # fit seeded its own generator state, not the caller's
    second = ProfileCNNClassifier(**FAST, random_state=3).fit(X, y)
    other = ProfileCNNClassifier(**FAST, random_state=4).fit(X, y)
    assert to_bytes(first) == to_bytes(second) != to_bytes(other)
    X_test, y_test = _data(120, seed=1)
    assert first.score(X_test, y_test) > 0.9
    assert first.n_iter_ == len(first.history_) and 1 <= first.best_epoch_ <= first.n_iter_
    assert {"epoch", "train_loss", "val_loss", "val_accuracy"} <= set(first.history_[0])


def test_eval_set_drives_early_stopping():
    X, y = _data()
    X_val, y_val = _data(60, seed=2)
    model = ProfileCNNClassifier(**{**FAST, "max_epochs": 40, "patience": 2}).fit(X, y, eval_set=(X_val, y_val))
    assert model.n_iter_ < 40 and model.stop_reason_.startswith("no lower validation loss")
    assert model.best_epoch_ == min(range(len(model.history_)), key=lambda i: model.history_[i]["val_loss"]) + 1


def test_artifact_and_pickle_round_trips_without_pickled_modules():
    X, y = _data()
    model = ProfileCNNClassifier(**FAST).fit(X, y)
    back = from_bytes(to_bytes(model))
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    assert back.classes_.tolist() == ["left", "middle", "right"] and back.get_params()["channels"] == [4, 8]
    numbers = ProfileCNNClassifier(**FAST).fit(X, np.searchsorted(["left", "middle", "right"], y) + 225)
    assert from_bytes(to_bytes(numbers)).classes_.tolist() == [225, 226, 227]  # space-group labels stay numbers
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    blob, fmt = artifacts.dump(model)
    assert fmt == "torch-cnn" and blob == to_bytes(model)
    with pytest.raises(ValueError, match="not an XRD CNN artifact"):
        from_bytes(b"not a zip")


def test_registry_builds_it_for_classification_only():
    model = make_estimator("cnn", "classification", {"channels": "4,8"}, seed=5)
    assert isinstance(model, ProfileCNNClassifier) and model.random_state == 5 and model.channels == "4,8"
    with pytest.raises(ValueError, match="classification targets only"):
        make_estimator("cnn", "regression")


def test_train_xrd_cnn_on_augmented_profiles_and_predict_a_measured_scan(trained_db):
    from xtalbase.ml.training import train_xrd
    from xtalbase.schema import Model

    report = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm="cnn", features="profile_aug",
                       feature_options={"n_augment": 1}, params={"channels": "4,8", "max_epochs": 4}, seed=1)
    val = report.metrics["val"]
    assert val["used_for_early_stopping"] is True and "used_for_early_stopping" not in report.metrics["test"]
    assert report.metrics["train"]["n_rows"] == 2 * report.n_train
    with trained_db.session() as s:
        row = s.get(Model, report.model_id)
        assert row.algorithm == "cnn" and row.artifact_format == "torch-cnn" and row.feature_recipe["kind"] == "profile_aug"
        model = registry.load_estimator(row)
    assert isinstance(model, ProfileCNNClassifier) and model.n_features_in_ == 801
    result = runner.invoke(app, ["predict", str(report.model_id), "--db", trained_db.url, "--pattern", str(SCANS / "TiO2.xy"), "--json"])
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.output)["predictions"]
    assert prediction["name"] == "TiO2" and len(prediction["top_k"]) == 5
    with pytest.raises(XtalbaseError, match="classification targets only"):
        train_xrd(trained_db, target="lattice", split=SPLIT, algorithm="cnn", features="profile_aug")
