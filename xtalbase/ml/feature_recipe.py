"""The feature recipe of an XRD model: which descriptor, and which computed peaks count.

A recipe is a JSON-ready dict stored on the ``models`` row, e.g.::

    {"kind": "peaks11", "n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0}
    {"kind": "profile", "two_theta_min": 0.0, "two_theta_max": 90.0, "step": 0.5, "fwhm": 0.3}

``min_intensity`` is in percent of the strongest peak (0 = count every reflection the engine reports, the
default: the count of weak reflections carries the extinction rules); ``merge_tol`` (2θ degrees) merges
peaks closer than this before counting (0 = keep the engine's peaks as stored). The same recipe is applied
to measured peaks at prediction time, so a model and its inputs always agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xtalbase.errors import XtalbaseError

KINDS = ("peaks11", "profile")
DEFAULTS: dict[str, dict[str, Any]] = {
    "peaks11": {"kind": "peaks11", "n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0},
    "profile": {"kind": "profile", "two_theta_min": 0.0, "two_theta_max": 90.0, "step": 0.5, "fwhm": 0.3,
                "min_intensity": 0.0, "merge_tol": 0.0},
}


def make_recipe(kind: str = "peaks11", **overrides: Any) -> dict[str, Any]:
    """A complete feature recipe: the defaults of ``kind`` with ``overrides`` (unknown keys are an error)."""
    if kind not in DEFAULTS:
        raise XtalbaseError(f"unknown feature kind {kind!r}; choose one of {KINDS}")
    recipe = dict(DEFAULTS[kind])
    unknown = sorted(set(overrides) - set(recipe))
    if unknown:
        raise XtalbaseError(f"unknown {kind} feature option(s) {unknown}; accepted: {sorted(set(recipe) - {'kind'})}")
    recipe.update({k: v for k, v in overrides.items() if v is not None})
    if not 0 <= float(recipe["min_intensity"]) < 100:
        raise XtalbaseError(f"min_intensity is a percentage of the strongest peak in [0, 100), got {recipe['min_intensity']}")
    if float(recipe["merge_tol"]) < 0:
        raise XtalbaseError(f"merge_tol must be >= 0 (2θ degrees), got {recipe['merge_tol']}")
    return recipe


def feature_names(recipe: dict[str, Any]) -> list[str]:
    """Column names of the feature matrix for ``recipe``."""
    if recipe["kind"] == "peaks11":
        return [f"peak{i + 1}" for i in range(int(recipe["n_peaks"]))] + ["npeaks"]
    return [f"I({x:g})" for x in profile_grid(recipe)]


def profile_grid(recipe: dict[str, Any]) -> np.ndarray:
    """2θ grid (degrees) of a profile recipe, (npoints,)."""
    from xtalbase.xrd.profile import profile_grid as grid_points

    return grid_points((float(recipe["two_theta_min"]), float(recipe["two_theta_max"]), float(recipe["step"])))


def select_peaks(two_theta: np.ndarray, intensity: np.ndarray, recipe: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The peaks a recipe counts: merged within ``merge_tol``, then at least ``min_intensity`` % of the maximum.

    Inputs and outputs are (npeaks,) arrays in ascending 2θ (degrees) with intensities in any unit.
    """
    tt = np.asarray(two_theta, dtype=float)
    inten = np.asarray(intensity, dtype=float)
    order = np.argsort(tt, kind="stable")
    tt, inten = tt[order], inten[order]
    tol = float(recipe.get("merge_tol", 0.0))
    if tol > 0 and len(tt) > 1:
        # a new cluster starts wherever the gap to the previous peak is larger than tol
        starts = np.concatenate([[True], np.diff(tt) > tol])
        group = np.cumsum(starts) - 1
        weight = np.bincount(group, inten)
        tt = np.bincount(group, tt * inten) / np.where(weight > 0, weight, 1)
        inten = weight
    threshold = float(recipe.get("min_intensity", 0.0))
    if threshold > 0 and len(inten):
        keep = inten >= threshold / 100.0 * inten.max()
        tt, inten = tt[keep], inten[keep]
    return tt, inten


def peaks11_row(two_theta: np.ndarray, intensity: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """``peaks11``: 2θ (degrees) of the first ``n_peaks`` peaks from low angle, then the peak count.

    Missing peaks (fewer than ``n_peaks``) are 0, as in the XRD crystal-system study. Shape (n_peaks + 1,).
    """
    tt, _ = select_peaks(two_theta, intensity, recipe)
    n = int(recipe["n_peaks"])
    row = np.zeros(n + 1, dtype=np.float32)
    row[: min(n, len(tt))] = tt[:n]
    row[n] = len(tt)
    return row


def profile_row(two_theta: np.ndarray, intensity: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """Gaussian-broadened pattern on the recipe's grid, scaled to a maximum of 1, (npoints,) float32."""
    from xtalbase.xrd.profile import profile

    tt, inten = select_peaks(two_theta, intensity, recipe)
    grid = (float(recipe["two_theta_min"]), float(recipe["two_theta_max"]), float(recipe["step"]))
    return profile(tt, inten, grid=grid, fwhm=float(recipe["fwhm"]))


def featurize(peaks: list[tuple[np.ndarray, np.ndarray]], recipe: dict[str, Any]) -> np.ndarray:
    """Feature matrix (n_patterns, n_features) float32 from (two_theta, intensity) peak lists."""
    row = peaks11_row if recipe["kind"] == "peaks11" else profile_row
    width = len(feature_names(recipe))
    if not peaks:
        return np.zeros((0, width), dtype=np.float32)
    return np.vstack([row(tt, inten, recipe) for tt, inten in peaks])
