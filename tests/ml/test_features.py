"""XRD features from stored patterns: peaks11 and broadened profiles, and the batch loader."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

import xtalbase
from tests.conftest import TEST_DATA
from xtalbase.errors import XtalbaseError
from xtalbase.ml.features import load_xrd_features, peaks11, peaks11_for_structures, profile, profile_grid
from xtalbase.platform.convert import to_pymatgen
from xtalbase.schema import Structure
from xtalbase.xrd.builder import compute_missing

pytestmark = pytest.mark.filterwarnings("ignore")


def _pattern(name: str):
    from pymatgen.core import Structure as PmgStructure

    return xtalbase.compute_xrd([PmgStructure.from_file(TEST_DATA / "xrd" / "mp" / name)])[0]


def test_peaks11_counts_every_reflection_and_pads_with_zero():
    p = _pattern("mp-607464.cif")  # triclinic: many peaks
    row = peaks11(p.two_theta, p.intensity)
    assert row.shape == (11,) and row.dtype == np.float32
    np.testing.assert_allclose(row[:10], p.two_theta[:10], rtol=1e-6)
    assert row[10] == len(p.two_theta)
    strong = peaks11(p.two_theta, p.intensity, threshold=0.2)
    kept = p.two_theta[p.intensity >= 20]
    assert strong[10] == len(kept) and np.allclose(strong[: min(10, len(kept))], kept[:10])
    few = peaks11(np.array([20.0, 30.0, 45.0]), np.array([100.0, 5.0, 50.0]))
    np.testing.assert_array_equal(few, [20, 30, 45, 0, 0, 0, 0, 0, 0, 0, 3])
    assert peaks11(np.zeros(0), np.zeros(0)).tolist() == [0.0] * 11
    with pytest.raises(XtalbaseError, match="fraction"):
        peaks11(p.two_theta, p.intensity, threshold=20)


def test_profile_places_broadened_peaks_on_the_grid():
    x = profile_grid((5, 90, 0.02))
    assert len(x) == 4251 and x[0] == 5 and x[-1] == pytest.approx(90)
    y = profile(np.array([30.0, 60.0]), np.array([100.0, 50.0]), fwhm=0.4)
    assert y.dtype == np.float32 and y.shape == x.shape and y.max() == pytest.approx(1.0)
    assert x[np.argmax(y)] == pytest.approx(30.0)
    assert y[np.argmin(np.abs(x - 60))] == pytest.approx(0.5, abs=1e-3)
    half = y[np.abs(x - 30.2) < 1e-6][0]  # half maximum at fwhm / 2 from the centre
    assert half == pytest.approx(0.5, abs=1e-3)
    pv = profile(np.array([30.0]), np.array([1.0]), fwhm=0.4, shape="pseudo-voigt", eta=0.5)
    assert pv[np.abs(x - 30.2) < 1e-6][0] == pytest.approx(0.5, abs=1e-3)
    assert pv[np.argmin(np.abs(x - 33))] == pytest.approx(0.5 / (1 + (2 * 3 / 0.4) ** 2), rel=1e-3)  # Lorentzian tails
    assert y[np.argmin(np.abs(x - 33))] == 0.0
    with pytest.raises(XtalbaseError, match="shape"):
        profile(np.array([30.0]), np.array([1.0]), shape="box")


def test_loader_reads_features_of_stored_patterns(db):
    db.ingest(sorted((TEST_DATA / "xrd" / "mp").glob("*.cif")))
    recipe_id = compute_missing(db)["recipe_id"]
    with db.session() as s:
        rows = list(s.scalars(select(Structure).order_by(Structure.id.desc())))
    ids = [r.id for r in rows] + [999999]  # order kept; an id without a pattern is left out
    X, got_ids = load_xrd_features(db, ids, recipe_id)
    assert got_ids.tolist() == ids[:-1] and X.shape == (len(rows), 11) and X.dtype == np.float32
    expected = xtalbase.compute_xrd([to_pymatgen(r) for r in rows])
    for row, pattern in zip(X, expected):
        np.testing.assert_array_equal(row, peaks11(pattern.two_theta, pattern.intensity))
    P, _ = load_xrd_features(db, ids, recipe_id, kind="profile", grid=(10, 80, 0.05), fwhm=0.3)
    assert P.shape == (len(rows), 1401) and np.allclose(P.max(axis=1), 1.0)
    by_id = peaks11_for_structures(db, ids)
    assert set(by_id) == set(ids[:-1]) and np.array_equal(by_id[ids[0]], X[0])
    with pytest.raises(XtalbaseError, match="unknown XRD feature kind"):
        load_xrd_features(db, ids, recipe_id, kind="fingerprint")


def test_feature_recipe_round_trips_the_stored_json():
    import dataclasses
    import json

    from xtalbase.ml.features import FeatureRecipe, make_recipe

    stored = [{"kind": "peaks11", "n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0},
              {"kind": "profile", "two_theta_min": 0.0, "two_theta_max": 90.0, "step": 0.5, "fwhm": 0.3,
               "min_intensity": 0.0, "merge_tol": 0.0}]
    for data in stored:
        recipe = FeatureRecipe.from_dict(json.loads(json.dumps(data)))  # as read back from a models row
        assert recipe.to_dict() == data and list(recipe.to_dict()) == list(data)
        assert FeatureRecipe.make(data["kind"]) == recipe and make_recipe(data["kind"]) == data
        assert hash(recipe) == hash(FeatureRecipe.from_dict(dict(data)))
    strict = FeatureRecipe.make("peaks11", min_intensity=5.0, merge_tol=None)
    assert strict.to_dict() == {"kind": "peaks11", "n_peaks": 10, "min_intensity": 5.0, "merge_tol": 0.0}
    assert FeatureRecipe.from_dict({"kind": "peaks11", "n_peaks": 4}).names() == ["peak1", "peak2", "peak3", "peak4", "npeaks"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        strict.kind = "profile"
    with pytest.raises(TypeError):
        strict.params["n_peaks"] = 3
    with pytest.raises(XtalbaseError, match="unknown feature kind 'fingerprint'"):
        FeatureRecipe.make("fingerprint")
    with pytest.raises(XtalbaseError, match="has no 'kind'"):
        FeatureRecipe.from_dict({"n_peaks": 10})
    with pytest.raises(XtalbaseError, match="unknown peaks11 feature option"):
        FeatureRecipe.from_dict({"kind": "peaks11", "fwhm": 0.2})


def test_array_helpers_and_recipes_share_one_featuriser():
    from xtalbase.ml.features import FeatureRecipe

    p = _pattern("mp-607464.cif")
    recipe = FeatureRecipe.make("peaks11", min_intensity=20.0)
    np.testing.assert_array_equal(peaks11(p.two_theta, p.intensity, threshold=0.2), recipe.transform([(p.two_theta, p.intensity)])[0])
    prof = FeatureRecipe.make("profile", two_theta_min=5.0, two_theta_max=90.0, step=0.02, fwhm=0.2)
    np.testing.assert_array_equal(prof.transform([(p.two_theta, p.intensity)])[0], profile(p.two_theta, p.intensity))
    assert prof.names()[0] == "I(5)" and len(prof.names()) == len(profile_grid())
    pv = FeatureRecipe.make("profile", shape="pseudo-voigt", eta=0.3)
    assert pv.to_dict()["shape"] == "pseudo-voigt" and "shape" not in FeatureRecipe.make("profile").to_dict()
    np.testing.assert_array_equal(pv.row(p.two_theta, p.intensity),
                                  profile(p.two_theta, p.intensity, grid=(0.0, 90.0, 0.5), fwhm=0.3, shape="pseudo-voigt", eta=0.3))
