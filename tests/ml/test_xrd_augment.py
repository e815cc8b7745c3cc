"""Augmented XRD features (``peaks11_aug``, ``profile_aug``): measured-looking synthetic scans of computed patterns.

What the augmentation must do (deterministic per seed and structure hash, Kα2 doublets, zero shift, lost weak
peaks), that peak-picked input passes the recipe unchanged, and that a model trained on the recipe is stored
and predicts a measured scan through ``xtalbase predict``.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.ml.test_model_support import SCANS, SPLIT
from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.ml.features import FeatureRecipe, make_recipe
from xtalbase.ml.xrd_augment import augmented_peaks, copy_rng, synthetic_scan
from xtalbase.xrd.constants import WAVELENGTHS
from xtalbase.xrd.scans import find_peaks, read_scan, with_wavelength

runner = CliRunner()
HASH = hashlib.sha256(b"a structure").hexdigest()
#: Options that leave one effect at a time: narrow lines, no texture, no shift, strong counts, little background, no foreign lines.
QUIET = {"fwhm_min": 0.05, "fwhm_max": 0.05, "caglioti_max": 0.0, "eta_max": 0.0, "zero_shift": 0.0, "po_sigma": 0.0,
         "counts_min": 1e6, "counts_max": 1e6, "background_max": 0.02, "impurity_probability": 0.0}


def _two_theta(d: float, wavelength: float) -> float:
    return float(np.degrees(2 * np.arcsin(wavelength / (2 * d))))


def _sticks(*pairs: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def test_same_seed_and_hash_give_the_same_scan_whatever_the_row_order():
    recipe = FeatureRecipe.make("peaks11_aug", n_augment=3)
    tt, inten = _sticks((25.0, 100.0), (38.0, 40.0), (61.0, 30.0), (77.0, 15.0))
    first = synthetic_scan(tt, inten, recipe.params, copy_rng(0, HASH, 1))
    again = synthetic_scan(tt, inten, recipe.params, copy_rng(0, HASH, 1))
    np.testing.assert_array_equal(first.intensity, again.intensity)
    for other in (copy_rng(1, HASH, 1), copy_rng(0, HASH, 2), copy_rng(0, hashlib.sha256(b"another").hexdigest(), 1)):
        assert not np.array_equal(synthetic_scan(tt, inten, recipe.params, other).intensity, first.intensity)
    # rows depend on the structure's hash, never on where it sits in the list
    other = _sticks((30.0, 100.0), (44.0, 70.0))
    hashes = [HASH, hashlib.sha256(b"b").hexdigest()]
    X, source = recipe.augment([(tt, inten), other], hashes)
    Xr, sr = recipe.augment([other, (tt, inten)], hashes[::-1])
    assert X.shape == (6, 11) and source.tolist() == [0, 0, 0, 1, 1, 1] and sr.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(X[:3], Xr[3:])
    np.testing.assert_array_equal(X[3:], Xr[:3])


def test_kalpha2_doublet_is_resolved_at_high_angle():
    d = 1.2
    tt, inten = _sticks((_two_theta(d, WAVELENGTHS["CuKa"]), 100.0))
    params = FeatureRecipe.make("peaks11_aug", **QUIET).params
    picked_tt, picked_i = augmented_peaks(tt, inten, params, copy_rng(0, HASH, 0))
    assert len(picked_tt) == 2, picked_tt
    np.testing.assert_allclose(picked_tt, [_two_theta(d, WAVELENGTHS["CuKa1"]), _two_theta(d, WAVELENGTHS["CuKa2"])], atol=0.01)
    assert picked_i[1] / picked_i[0] == pytest.approx(0.5, abs=0.05)
    single = FeatureRecipe.make("peaks11_aug", **QUIET, kalpha2_probability=0.0).params
    picked_tt, _ = augmented_peaks(tt, inten, single, copy_rng(0, HASH, 0))
    np.testing.assert_allclose(picked_tt, [_two_theta(d, WAVELENGTHS["CuKa1"])], atol=0.01)


def test_zero_shift_moves_every_peak_by_the_same_amount():
    tt, inten = _sticks((30.0, 100.0), (50.0, 60.0))
    ka1 = np.array([_two_theta(WAVELENGTHS["CuKa"] / (2 * np.sin(np.radians(t / 2))), WAVELENGTHS["CuKa1"]) for t in tt])
    still = FeatureRecipe.make("peaks11_aug", **QUIET, kalpha2_probability=0.0).params
    shifted = FeatureRecipe.make("peaks11_aug", **{**QUIET, "zero_shift": 0.1}, kalpha2_probability=0.0).params
    np.testing.assert_allclose(augmented_peaks(tt, inten, still, copy_rng(0, HASH, 0))[0], ka1, atol=0.01)
    offsets = []
    for copy in range(8):
        picked = augmented_peaks(tt, inten, shifted, copy_rng(0, HASH, copy))[0]
        assert len(picked) == 2 and abs((picked - ka1)[0] - (picked - ka1)[1]) < 0.02
        offsets.append(float(np.mean(picked - ka1)))
    assert max(np.abs(offsets)) <= 0.11 and np.ptp(offsets) > 0.05


def test_weak_peaks_are_lost_and_strong_ones_kept():
    tt, inten = _sticks((25.0, 100.0), (33.0, 0.5), (47.0, 20.0))
    recipe = FeatureRecipe.make("peaks11_aug", **QUIET, kalpha2_probability=0.0)
    picked, _ = augmented_peaks(tt, inten, recipe.params, copy_rng(0, HASH, 0))
    assert len(picked) == 2 and np.all(np.abs(picked - 33.0) > 1.0)
    clean = recipe.transform([(tt, inten)])[0]  # a computed pattern read as a clean scan: 1 % threshold
    np.testing.assert_allclose(clean[:3], [25.0, 47.0, 0.0])
    assert clean[-1] == 2


def test_foreign_peaks_appear_only_when_asked():
    tt, inten = _sticks((25.0, 100.0), (47.0, 40.0))
    quiet = FeatureRecipe.make("peaks11_aug", **QUIET, kalpha2_probability=0.0).params
    noisy = FeatureRecipe.make("peaks11_aug", **{**QUIET, "impurity_probability": 1.0, "impurity_max": 2}, kalpha2_probability=0.0).params
    counts = [len(augmented_peaks(tt, inten, noisy, copy_rng(0, HASH, k))[0]) for k in range(10)]
    assert all(len(augmented_peaks(tt, inten, quiet, copy_rng(0, HASH, k))[0]) == 2 for k in range(10))
    assert min(counts) >= 2 and max(counts) > 2  # a foreign line below the 2 % prominence may be lost like any weak peak


def test_picked_peaks_pass_the_recipe_unchanged():
    """Measured and synthetic picked peaks go through the same function; the recipe's clean-path thresholds never bite."""
    recipe = FeatureRecipe.make("peaks11_aug")
    sticks = _sticks(*[(20.0 + 3.1 * i, 100.0 / (1 + i)) for i in range(20)])
    picked = [augmented_peaks(*sticks, recipe.params, copy_rng(0, HASH, k)) for k in range(5)]
    for path in sorted(SCANS.glob("*.xy")):
        found = find_peaks(with_wavelength(read_scan(path)))
        picked.append((found.two_theta, found.intensity))
    for tt, inten in picked:
        inside = (tt >= 10) & (tt <= 90)
        kept_tt, kept_i = recipe.select(tt, inten)
        np.testing.assert_allclose(kept_tt, tt[inside], rtol=1e-12)  # merging a lone peak is exact up to rounding
        np.testing.assert_allclose(kept_i, inten[inside], rtol=1e-12)


def test_stored_json_of_old_kinds_is_unchanged_and_options_are_checked():
    assert make_recipe("peaks11") == {"kind": "peaks11", "n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0}
    assert make_recipe("profile") == {"kind": "profile", "two_theta_min": 0.0, "two_theta_max": 90.0, "step": 0.5, "fwhm": 0.3,
                                      "min_intensity": 0.0, "merge_tol": 0.0}
    stored = make_recipe("profile_aug", n_augment=2)
    assert stored["kind"] == "profile_aug" and stored["n_augment"] == 2 and FeatureRecipe.from_dict(stored).to_dict() == stored
    assert len(FeatureRecipe.from_dict(stored).names()) == 801  # 10-90° in 0.1° steps
    for bad in ({"fwhm_min": 0.4, "fwhm_max": 0.1}, {"kalpha2_probability": 2.0}, {"n_augment": -1}, {"scan_step": 0.0}):
        with pytest.raises(XtalbaseError, match="augmented feature recipe"):
            FeatureRecipe.make("peaks11_aug", **bad)
    with pytest.raises(XtalbaseError, match="not augmented"):
        FeatureRecipe.make("peaks11").augment([], [])


def test_augmented_model_trains_in_its_fold_and_predicts_a_measured_scan(trained_db):
    from xtalbase.ml.training import train_xrd
    from xtalbase.ml.xrd_augment import augment_fold
    from xtalbase.ml.xrd_inputs import Fold, get_split, load_fold, split_fold_ids
    from xtalbase.schema import Model

    options = {"n_augment": 2}
    report = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm="extratrees", features="peaks11_aug",
                       feature_options=options, seed=3, params={"n_estimators": 20})
    again = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm="extratrees", features="peaks11_aug",
                      feature_options=options, seed=3, params={"n_estimators": 20})
    assert report.artifact_sha256 == again.artifact_sha256 and report.metrics == again.metrics
    train = report.metrics["train"]
    assert train["n_rows"] == 3 * train["n"] and report.n_train == train["n"]  # the clean row and two copies
    with trained_db.session() as s:
        row = s.get(Model, report.model_id)
        assert row.feature_recipe == make_recipe("peaks11_aug", n_augment=2, seed=3)  # the run's seed drives the scans
        split = get_split(s, SPLIT)
        fold: Fold = load_fold(s, split_fold_ids(s, split, "train"), "crystal_system", row.xrd_recipe_id, row.feature_recipe)
        assert row.training_set_hash == fold.set_hash
        rows = augment_fold(s, fold, row.xrd_recipe_id, FeatureRecipe.from_dict(row.feature_recipe))
        assert set(rows.ids.tolist()) == set(fold.ids.tolist()) and rows.set_hash == fold.set_hash  # no row leaves its fold
    from xtalbase.ml.predict import predict_structures, structures_of_split

    test_ids = structures_of_split(trained_db, SPLIT, "test")  # held-out folds are read clean: predict reproduces the metrics
    assert predict_structures(trained_db, report.model_id, test_ids).summary["accuracy_vs_stored"] == pytest.approx(
        report.metrics["test"]["accuracy"])
    result = runner.invoke(app, ["predict", str(report.model_id), "--db", trained_db.url, "--pattern", str(SCANS / "MnO.xy"), "--json"])
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.output)["predictions"]
    assert prediction["name"] == "MnO" and prediction["label"] and prediction["npeaks_used"] >= 6


def test_wavelength_must_match_the_xrd_recipe(trained_db):
    from xtalbase.ml.training import train_xrd

    with pytest.raises(XtalbaseError, match="wavelength"):
        train_xrd(trained_db, target="crystal_system", split=SPLIT, features="peaks11_aug",
                  feature_options={"wavelength": WAVELENGTHS["MoKa"]}, params={"n_estimators": 5})
