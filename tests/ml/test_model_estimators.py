"""Estimators, metrics and artifacts on real patterns of the vendored MP subset (no database).

Patterns come from xtalbase's engine (Cu Kα, 2θ 0-90°) for the 350 vendored Materials Project CIFs;
crystal systems from spglib. Artifacts must reproduce predictions, hash identically when trained twice,
and load without ever unpickling.
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from sklearn.base import clone

from tests.ml.test_model_support import MP_CIFS
from xtalbase.errors import XtalbaseError
from xtalbase.ml import artifacts
from xtalbase.ml.algorithms import make_estimator
from xtalbase.ml.estimators import ExtraTreesModel, XGBoostModel
from xtalbase.ml.evaluation import classification_metrics, regression_metrics, top_k, top_k_accuracy
from xtalbase.ml.features import featurize, make_recipe, peaks11_row, select_peaks


@functools.cache
def real_set():
    """(peak lists, crystal systems, space groups, conventional a) of the 350 vendored structures, sorted by file."""
    import warnings

    import spglib
    from pymatgen.core import Structure

    from xtalbase.xrd import compute_xrd

    structures, systems, groups, a = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(MP_CIFS.glob("*.cif")):
            s = Structure.from_file(path)
            ds = spglib.get_symmetry_dataset((s.lattice.matrix, s.frac_coords, s.atomic_numbers), symprec=0.1)
            structures.append(s)
            groups.append(ds.number)
            systems.append(_system(ds.number))
            a.append(float(np.linalg.norm(ds.std_lattice[0])))
    peaks = [(p.two_theta, p.intensity) for p in compute_xrd(structures)]
    return peaks, np.array(systems), np.array(groups), np.array(a)


def _system(n: int) -> str:
    for last, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                       (167, "trigonal"), (194, "hexagonal"), (230, "cubic")):
        if n <= last:
            return name
    raise ValueError(n)


def _halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(n)
    return order[: int(0.7 * n)], order[int(0.7 * n):]


@pytest.mark.parametrize("algorithm", ["extratrees", "xgboost"])
def test_crystal_system_well_above_majority_on_real_patterns(algorithm):
    peaks, systems, _, _ = real_set()
    X = featurize(peaks, make_recipe("peaks11"))
    tr, te = _halves(len(systems))
    model = make_estimator(algorithm, "classification", {"n_estimators": 100}, seed=0)
    assert model.fit(X[tr], systems[tr]) is model
    proba = model.predict_proba(X[te])
    assert proba.shape == (len(te), 7) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    m = classification_metrics(systems[te], model.predict(X[te]), proba, model.classes_, train_labels=systems[tr])
    # balanced classes: the majority baseline is about 1/7; the model must be far above it
    assert m["majority_accuracy"] < 0.25
    assert m["accuracy"] > 0.45 and m["accuracy"] > 2.5 * m["majority_accuracy"], m
    assert m["top5_accuracy"] > m["accuracy"]
    assert len(m["confusion_matrix"]) == len(m["confusion_labels"]) == 7


def test_space_group_labels_and_regression_of_cubic_a():
    peaks, systems, groups, a = real_set()
    X = featurize(peaks, make_recipe("peaks11"))
    tr, te = _halves(len(groups))
    sg = XGBoostModel(n_estimators=30, max_depth=4).fit(X[tr], groups[tr])
    assert set(sg.predict(X[te])) <= set(groups[tr])  # labels decoded back to space-group numbers
    cubic = np.flatnonzero(systems == "cubic")
    reg = ExtraTreesModel(task="regression").fit(X[cubic[:35]], a[cubic[:35]])
    m = regression_metrics(a[cubic[35:]], reg.predict(X[cubic[35:]]), ["a"])
    assert m["n"] == len(cubic) - 35 and m["mae_a"] < np.mean(np.abs(a[cubic[35:]] - a[cubic[:35]].mean()))


def test_estimator_api_params_clone_and_validation():
    model = ExtraTreesModel(n_estimators=7, random_state=3)
    assert model.get_params()["n_estimators"] == 7
    copy = clone(model).set_params(n_estimators=9)
    assert copy.n_estimators == 9 and model.n_estimators == 7
    with pytest.raises(ValueError, match="unknown extratrees parameter"):
        make_estimator("extratrees", "classification", {"learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_estimator("svm", "classification")
    with pytest.raises(ValueError, match="task must be one of"):
        ExtraTreesModel(task="ranking").fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="at least two classes"):
        XGBoostModel().fit(np.zeros((4, 2)), ["a"] * 4)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        XGBoostModel().predict(np.zeros((1, 2)))


@pytest.mark.parametrize("algorithm,fmt", [("extratrees", "skops"), ("xgboost", "xgboost-ubj")])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_artifacts_are_deterministic_and_load_without_pickle(algorithm, fmt, task, monkeypatch):
    peaks, systems, _, a = real_set()
    X = featurize(peaks, make_recipe("peaks11"))
    y = systems if task == "classification" else a
    blobs = []
    for _ in range(2):
        model = make_estimator(algorithm, task, {"n_estimators": 20}, seed=5).fit(X, y)
        blob, got_fmt = artifacts.dump(model)
        blobs.append(blob)
    assert got_fmt == fmt
    assert artifacts.sha256(blobs[0]) == artifacts.sha256(blobs[1])

    def refuse(*args, **kwargs):
        raise AssertionError("loading an artifact must never unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = artifacts.load(blobs[0], fmt, artifacts.sha256(blobs[0]))
    assert np.array_equal(loaded.predict(X), model.predict(X))
    if task == "classification":
        assert np.allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_artifact_hash_mismatch_and_untrusted_types_are_refused():
    peaks, systems, _, _ = real_set()
    X = featurize(peaks[:60], make_recipe("peaks11"))
    blob, fmt = artifacts.dump(ExtraTreesModel(n_estimators=3).fit(X, systems[:60]))
    with pytest.raises(artifacts.ArtifactError, match="does not match"):
        artifacts.load(blob, fmt, "0" * 64)
    # hand-made tampering: rename a trusted class to an arbitrary callable in the skops schema
    src = zipfile.ZipFile(io.BytesIO(blob))
    schema = json.loads(src.read("schema.json"))
    schema["__module__"], schema["__class__"] = "os", "system"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, json.dumps(schema) if info.filename == "schema.json" else src.read(info.filename))
    with pytest.raises(artifacts.ArtifactError, match="outside the allow-list"):
        artifacts.load(out.getvalue(), "skops")
    with pytest.raises(artifacts.ArtifactError, match="unknown artifact format"):
        artifacts.load(blob, "pickle")
    with pytest.raises(artifacts.ArtifactError, match="cannot read xgboost-ubj"):
        artifacts.load(b"not a model", "xgboost-ubj")


def test_feature_recipe_threshold_and_merging():
    tt = np.array([10.0, 10.02, 20.0, 30.0, 40.0])
    inten = np.array([100.0, 50.0, 0.5, 3.0, 80.0])
    every = make_recipe("peaks11")
    assert peaks11_row(tt, inten, every)[-1] == 5 and peaks11_row(tt, inten, every)[5] == 0  # padded with 0
    assert peaks11_row(tt, inten, make_recipe("peaks11", min_intensity=1.0))[-1] == 4
    assert peaks11_row(tt, inten, make_recipe("peaks11", min_intensity=5.0))[-1] == 3
    merged_tt, merged_i = select_peaks(tt, inten, make_recipe("peaks11", merge_tol=0.05))
    assert len(merged_tt) == 4 and merged_i[0] == pytest.approx(150.0)
    assert merged_tt[0] == pytest.approx((10.0 * 100 + 10.02 * 50) / 150)
    with pytest.raises(XtalbaseError, match="percentage"):
        make_recipe("peaks11", min_intensity=150)
    with pytest.raises(XtalbaseError, match="unknown peaks11 feature option"):
        make_recipe("peaks11", fwhm=0.1)
    prof = featurize([(tt, inten)], make_recipe("profile"))
    assert prof.shape == (1, 181) and prof.max() == pytest.approx(1.0)


def test_top_k_helpers():
    proba = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert top_k(proba, ["a", "b", "c"], 2) == [[("b", 0.6), ("c", 0.3)], [("a", 0.5), ("c", 0.3)]]
    assert top_k_accuracy(["c", "b"], proba, ["a", "b", "c"], k=2) == 0.5
    assert top_k_accuracy(["z", "z"], proba, ["a", "b", "c"], k=3) == 0.0
