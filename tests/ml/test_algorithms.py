"""The algorithm registry: built-in entries, and a new algorithm as one registry entry (a random forest)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.ml.test_model_support import SPLIT
from xtalbase.cli import app
from xtalbase.ml import artifacts, registry
from xtalbase.ml.algorithms import (
    ALGORITHMS,
    AlgorithmSpec,
    ArtifactError,
    dump_skops,
    get_algorithm,
    load_skops,
    make_estimator,
    register_algorithm,
)
from xtalbase.ml.estimators import ExtraTreesModel
from xtalbase.ml.training import train_xrd
from xtalbase.schema import Model


class RandomForestModel(ExtraTreesModel):
    """The test's extra algorithm: the ExtraTrees wrapper around scikit-learn's random forests."""

    library = ("sklearn.ensemble", "RandomForestClassifier", "RandomForestRegressor")


RANDOM_FOREST = AlgorithmSpec(
    name="randomforest", summary="random forest (scikit-learn)", estimator=f"{__name__}:RandomForestModel",
    artifact_format="skops", dump=dump_skops, load=load_skops,
    trusted_types=("sklearn.ensemble._forest.RandomForestClassifier", "sklearn.ensemble._forest.RandomForestRegressor",
                   "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
                   "sklearn.tree._tree.Tree"),
)


@pytest.fixture
def with_random_forest(monkeypatch):
    monkeypatch.setitem(ALGORITHMS, RANDOM_FOREST.name, RANDOM_FOREST)  # registered for the test only
    return RANDOM_FOREST


def test_builtin_entries_and_lookups():
    assert [ALGORITHMS[n].artifact_format for n in ("extratrees", "xgboost")] == ["skops", "xgboost-ubj"]
    assert get_algorithm("extratrees").estimator_class() is ExtraTreesModel
    with pytest.raises(ValueError, match="unknown algorithm 'svm'"):
        get_algorithm("svm")
    with pytest.raises(ArtifactError, match="no registered algorithm"):
        artifacts.dump(object())


def test_a_new_algorithm_is_one_registry_entry(trained_db, with_random_forest):
    assert register_algorithm(with_random_forest) is with_random_forest
    reports = [train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm="randomforest", seed=4,
                         params={"n_estimators": 30}) for _ in range(2)]
    assert reports[0].artifact_sha256 == reports[1].artifact_sha256  # same inputs + seed, same artifact
    test = reports[0].metrics["test"]
    assert test["accuracy"] > 2 * test["majority_accuracy"], test
    with trained_db.session() as s:
        row = s.get(Model, reports[0].model_id)
        assert (row.algorithm, row.artifact_format) == ("randomforest", "skops")
        estimator = registry.load_estimator(row)
    assert type(estimator) is RandomForestModel and type(estimator.estimator_).__name__ == "RandomForestClassifier"
    X = np.random.default_rng(0).uniform(10, 80, size=(5, estimator.n_features_in_))
    fresh = make_estimator("randomforest", "classification", {"n_estimators": 30}, seed=4)
    assert fresh.get_params()["random_state"] == 4 and estimator.predict(X).shape == (5,)

    result = CliRunner().invoke(app, ["train", "xrd", "--split", SPLIT, "--algorithm", "randomforest", "--seed", "4",
                                      "--param", "n_estimators=30", "--db", str(trained_db.url), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.output)["artifact_sha256"] == reports[0].artifact_sha256


def test_each_algorithm_loads_only_its_own_trusted_types(with_random_forest):
    X = np.arange(60, dtype=float).reshape(20, 3)
    y = np.array(["a", "b"] * 10)
    blob, fmt = artifacts.dump(RandomForestModel(n_estimators=3).fit(X, y))
    assert fmt == "skops"
    assert type(artifacts.load(blob, fmt, algorithm="randomforest")) is RandomForestModel
    # read as the first skops algorithm (extratrees), a random forest is refused, not wrapped as extra trees
    with pytest.raises(ArtifactError, match="does not hold a extratrees model: ExtraTreesModel wraps"):
        artifacts.load(blob, fmt)
