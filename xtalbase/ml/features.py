"""XRD features for learning, computed from stored peak arrays (no diffraction physics is recomputed).

* :func:`peaks11`: 2θ of the first 10 peaks from low angle plus the peak count (the crystal-system
  study's descriptor); fewer than 10 peaks are padded with 0.
* :func:`profile` (from :mod:`xtalbase.xrd.profile`): the stick pattern broadened on a fixed 2θ grid.
* :func:`load_xrd_features`: the feature matrix of many structures for one recipe, from one query per
  few thousand ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.xrd.profile import DEFAULT_GRID, profile, profile_grid
from xtalbase.xrd.recipe import default_recipe_id

if TYPE_CHECKING:
    from xtalbase.platform.database import Database


def peaks11(two_theta: np.ndarray, intensity: np.ndarray, *, threshold: float = 0.0, n_peaks: int = 10) -> np.ndarray:
    """``(n_peaks + 1,)`` float32: 2θ (degrees) of the first ``n_peaks`` peaks from low angle, then the peak count.

    Peaks with ``intensity < threshold * max(intensity)`` are ignored (``threshold`` is a fraction in
    [0, 1); 0 counts every reflection the engine reports). Padding rule: when fewer than ``n_peaks``
    peaks remain, the missing positions are 0; the last entry is the number of peaks counted.
    """
    from xtalbase.ml.feature_recipe import peaks11_row

    if not 0 <= threshold < 1:
        raise XtalbaseError(f"peaks11 threshold is a fraction of the strongest peak in [0, 1), got {threshold}")
    recipe = {"n_peaks": n_peaks, "min_intensity": 100.0 * threshold, "merge_tol": 0.0}
    return peaks11_row(np.asarray(two_theta, dtype=float), np.asarray(intensity, dtype=float), recipe)


def load_patterns(db: "Database", structure_ids: Sequence[int], recipe_id: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{structure_id: (two_theta, intensity)}`` of the stored computed patterns of ``recipe_id``."""
    from xtalbase.platform.repositories.patterns import computed_peaks

    with db.session() as s:
        return computed_peaks(s, structure_ids, recipe_id)


def load_xrd_features(db: "Database", structure_ids: Sequence[int], recipe_id: int, kind: str = "peaks11",
                      **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix of ``structure_ids`` for ``recipe_id`` from stored patterns.

    ``kind`` is ``"peaks11"`` (params: ``threshold``, ``n_peaks``) or ``"profile"`` (params of
    :func:`profile`). Returns ``X`` (n, n_features) float32 and ``ids`` (n,) int64: the requested
    structures that have a pattern for the recipe, in the order given.
    """
    featurize = {"peaks11": peaks11, "profile": profile}.get(kind)
    if featurize is None:
        raise XtalbaseError(f"unknown XRD feature kind {kind!r}; choose peaks11 or profile")
    found = load_patterns(db, structure_ids, recipe_id)
    ids = np.array([int(i) for i in structure_ids if int(i) in found], dtype=np.int64)
    rows = [featurize(*found[int(i)], **params) for i in ids]
    width = len(featurize(np.zeros(0), np.zeros(0), **params))
    X = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, width), dtype=np.float32)
    return X, ids


def peaks11_for_structures(db: "Database", structure_ids: Sequence[int], recipe_id: int | None = None) -> dict[int, np.ndarray]:
    """``{structure_id: peaks11}`` for the structures with a pattern for ``recipe_id`` (default recipe when omitted)."""
    recipe_id = recipe_id if recipe_id is not None else default_recipe_id(db)
    if recipe_id is None:
        return {}
    X, ids = load_xrd_features(db, structure_ids, recipe_id, "peaks11")
    return {int(i): x for i, x in zip(ids, X)}


__all__ = ["DEFAULT_GRID", "default_recipe_id", "load_patterns", "load_xrd_features", "peaks11", "peaks11_for_structures", "profile", "profile_grid"]
