"""XRD features for learning, computed from stored peak arrays (no diffraction physics is recomputed).

One :class:`FeatureRecipe` turns peak lists into a feature matrix; training and prediction both call its
:meth:`FeatureRecipe.transform`, so a model and its inputs always agree. Its :meth:`FeatureRecipe.to_dict`
is the JSON stored on the ``models`` row, e.g.::

    {"kind": "peaks11", "n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0}
    {"kind": "profile", "two_theta_min": 0.0, "two_theta_max": 90.0, "step": 0.5, "fwhm": 0.3,
     "min_intensity": 0.0, "merge_tol": 0.0}

``min_intensity`` is in percent of the strongest peak (0 = count every reflection the engine reports, the
default: the count of weak reflections carries the extinction rules); ``merge_tol`` (2θ degrees) merges
peaks closer than this before counting (0 = keep the engine's peaks as stored).

The functions :func:`peaks11`, :func:`load_xrd_features` and :func:`peaks11_for_structures` are thin
wrappers over a recipe for callers that hold arrays or structure ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.xrd.profile import DEFAULT_GRID, profile, profile_grid

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

KINDS = ("peaks11", "profile")
#: Every option of each kind with its default; a stored recipe holds all of them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "peaks11": {"n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0},
    "profile": {"two_theta_min": 0.0, "two_theta_max": 90.0, "step": 0.5, "fwhm": 0.3, "min_intensity": 0.0, "merge_tol": 0.0},
}
#: Options stored only when given, so recipes written before they existed keep their exact JSON.
OPTIONAL: dict[str, dict[str, Any]] = {"peaks11": {}, "profile": {"shape": "gaussian", "eta": 0.5}}

Peaks = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class FeatureRecipe:
    """Which descriptor is computed from a pattern's peaks, and which peaks count.

    Parameters
    ----------
    kind : ``"peaks11"`` or ``"profile"``.
    params : the kind's options (see :data:`DEFAULTS`); build with :meth:`make` or :meth:`from_dict`, which
        validate them.

    >>> r = FeatureRecipe.make("peaks11", min_intensity=1.0)
    >>> r.names()[-1], r.transform([(np.array([20.0, 30.0]), np.array([100.0, 50.0]))]).shape
    ('npeaks', (1, 11))
    """

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DEFAULTS:
            raise XtalbaseError(f"unknown feature kind {self.kind!r}; choose one of {KINDS}")
        known = set(DEFAULTS[self.kind]) | set(OPTIONAL[self.kind])
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise XtalbaseError(f"unknown {self.kind} feature option(s) {unknown}; accepted: {sorted(known)}")
        params = {**DEFAULTS[self.kind], **dict(self.params)}
        if not 0 <= float(params["min_intensity"]) < 100:
            raise XtalbaseError(f"min_intensity is a percentage of the strongest peak in [0, 100), got {params['min_intensity']}")
        if float(params["merge_tol"]) < 0:
            raise XtalbaseError(f"merge_tol must be >= 0 (2θ degrees), got {params['merge_tol']}")
        if self.kind == "peaks11" and int(params["n_peaks"]) < 1:
            raise XtalbaseError(f"n_peaks must be >= 1, got {params['n_peaks']}")
        # a read-only view: the recipe is a value, and its dict is what the model row stores
        object.__setattr__(self, "params", MappingProxyType(params))

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def make(cls, kind: str = "peaks11", **overrides: Any) -> "FeatureRecipe":
        """The defaults of ``kind`` with ``overrides`` (``None`` values are ignored; unknown keys are an error)."""
        return cls(kind, {k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | "FeatureRecipe") -> "FeatureRecipe":
        """The recipe of a stored dict (``{"kind": ..., **params}``); missing options take their defaults."""
        if isinstance(data, FeatureRecipe):
            return data
        if "kind" not in data:
            raise XtalbaseError(f"feature recipe {dict(data)!r} has no 'kind'")
        return cls(str(data["kind"]), {k: v for k, v in data.items() if k != "kind"})

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict stored on a model: ``kind`` then every option."""
        return {"kind": self.kind, **self.params}

    def names(self) -> list[str]:
        """Column names of the feature matrix."""
        if self.kind == "peaks11":
            return [f"peak{i + 1}" for i in range(int(self.params["n_peaks"]))] + ["npeaks"]
        return [f"I({x:g})" for x in self.grid_points()]

    def grid_points(self) -> np.ndarray:
        """2θ grid (degrees) of a profile recipe, (npoints,)."""
        return profile_grid(self._grid())

    def select(self, two_theta: np.ndarray, intensity: np.ndarray) -> Peaks:
        """The peaks the recipe counts: merged within ``merge_tol``, then at least ``min_intensity`` % of the maximum.

        Inputs are (npeaks,) arrays (2θ degrees, intensity in any unit); outputs are sorted by ascending 2θ.
        """
        tt = np.asarray(two_theta, dtype=float)
        inten = np.asarray(intensity, dtype=float)
        order = np.argsort(tt, kind="stable")
        tt, inten = tt[order], inten[order]
        tol = float(self.params["merge_tol"])
        if tol > 0 and len(tt) > 1:
            # a new cluster starts wherever the gap to the previous peak is larger than tol
            starts = np.concatenate([[True], np.diff(tt) > tol])
            group = np.cumsum(starts) - 1
            weight = np.bincount(group, inten)
            tt = np.bincount(group, tt * inten) / np.where(weight > 0, weight, 1)
            inten = weight
        threshold = float(self.params["min_intensity"])
        if threshold > 0 and len(inten):
            keep = inten >= threshold / 100.0 * inten.max()
            tt, inten = tt[keep], inten[keep]
        return tt, inten

    def row(self, two_theta: np.ndarray, intensity: np.ndarray) -> np.ndarray:
        """Features of one pattern, (n_features,) float32."""
        tt, inten = self.select(two_theta, intensity)
        if self.kind == "peaks11":
            n = int(self.params["n_peaks"])
            out = np.zeros(n + 1, dtype=np.float32)
            out[: min(n, len(tt))] = tt[:n]
            out[n] = len(tt)
            return out
        extra = {k: self.params[k] for k in OPTIONAL["profile"] if k in self.params}
        return profile(tt, inten, grid=self._grid(), fwhm=float(self.params["fwhm"]), **extra)

    def transform(self, peaks: Sequence[Peaks]) -> np.ndarray:
        """Feature matrix (n_patterns, n_features) float32 from (two_theta, intensity) peak lists."""
        if not len(peaks):
            return np.zeros((0, len(self.names())), dtype=np.float32)
        return np.vstack([self.row(tt, inten) for tt, inten in peaks]).astype(np.float32)

    def _grid(self) -> tuple[float, float, float]:
        p = self.params
        return float(p["two_theta_min"]), float(p["two_theta_max"]), float(p["step"])


def make_recipe(kind: str = "peaks11", **overrides: Any) -> dict[str, Any]:
    """A complete feature recipe as its stored dict (see :meth:`FeatureRecipe.make`)."""
    return FeatureRecipe.make(kind, **overrides).to_dict()


def feature_names(recipe: Mapping[str, Any] | FeatureRecipe) -> list[str]:
    """Column names of the feature matrix for ``recipe``."""
    return FeatureRecipe.from_dict(recipe).names()


def select_peaks(two_theta: np.ndarray, intensity: np.ndarray, recipe: Mapping[str, Any] | FeatureRecipe) -> Peaks:
    """The peaks ``recipe`` counts (see :meth:`FeatureRecipe.select`)."""
    return FeatureRecipe.from_dict(recipe).select(two_theta, intensity)


def peaks11_row(two_theta: np.ndarray, intensity: np.ndarray, recipe: Mapping[str, Any] | FeatureRecipe) -> np.ndarray:
    """One ``peaks11`` row of ``recipe``, (n_peaks + 1,) float32."""
    return FeatureRecipe.from_dict(recipe).row(two_theta, intensity)


def featurize(peaks: Sequence[Peaks], recipe: Mapping[str, Any] | FeatureRecipe) -> np.ndarray:
    """Feature matrix (n_patterns, n_features) float32 (see :meth:`FeatureRecipe.transform`)."""
    return FeatureRecipe.from_dict(recipe).transform(peaks)


def peaks11(two_theta: np.ndarray, intensity: np.ndarray, *, threshold: float = 0.0, n_peaks: int = 10) -> np.ndarray:
    """``(n_peaks + 1,)`` float32: 2θ (degrees) of the first ``n_peaks`` peaks from low angle, then the peak count.

    Peaks with ``intensity < threshold * max(intensity)`` are ignored (``threshold`` is a fraction in
    [0, 1); 0 counts every reflection the engine reports). Padding rule: when fewer than ``n_peaks``
    peaks remain, the missing positions are 0; the last entry is the number of peaks counted.
    """
    return _legacy_recipe("peaks11", {"threshold": threshold, "n_peaks": n_peaks}).row(two_theta, intensity)


def load_patterns(db: "Database", structure_ids: Sequence[int], recipe_id: int) -> dict[int, Peaks]:
    """``{structure_id: (two_theta, intensity)}`` of the stored computed patterns of ``recipe_id``."""
    from xtalbase.platform.repositories.patterns import computed_peaks

    with db.session() as s:
        return computed_peaks(s, structure_ids, recipe_id)


def load_xrd_features(db: "Database", structure_ids: Sequence[int], recipe_id: int, kind: str = "peaks11",
                      **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix of ``structure_ids`` for ``recipe_id`` from stored patterns.

    ``kind`` is ``"peaks11"`` (params of :func:`peaks11`: ``threshold``, ``n_peaks``) or ``"profile"``
    (params of :func:`xtalbase.xrd.profile.profile`: ``grid``, ``fwhm``, ``shape``, ``eta``), or any
    :class:`FeatureRecipe` option. Returns ``X`` (n, n_features) float32 and ``ids`` (n,) int64: the
    requested structures that have a pattern for the recipe, in the order given.
    """
    if kind not in KINDS:
        raise XtalbaseError(f"unknown XRD feature kind {kind!r}; choose peaks11 or profile")
    recipe = _legacy_recipe(kind, params)
    found = load_patterns(db, structure_ids, recipe_id)
    ids = np.array([int(i) for i in structure_ids if int(i) in found], dtype=np.int64)
    return recipe.transform([found[int(i)] for i in ids]), ids


def peaks11_for_structures(db: "Database", structure_ids: Sequence[int], recipe_id: int | None = None) -> dict[int, np.ndarray]:
    """``{structure_id: peaks11}`` for the structures with a pattern for ``recipe_id``.

    Without ``recipe_id`` the default recipe of :func:`xtalbase.xrd.recipe.resolve_recipe`; ``{}`` when it
    is not stored (exports then leave the column out).
    """
    from xtalbase.xrd.recipe import resolve_recipe

    if recipe_id is None:
        try:
            recipe_id = resolve_recipe(db, None).id
        except NotFound:
            return {}
    X, ids = load_xrd_features(db, structure_ids, recipe_id, "peaks11")
    return {int(i): x for i, x in zip(ids, X)}


def _legacy_recipe(kind: str, params: dict[str, Any]) -> FeatureRecipe:
    """The recipe of the array-level keyword arguments (``threshold`` fraction, ``grid`` tuple).

    Their defaults differ from a model's stored recipe (profile: 5-90° in 0.02° steps, FWHM 0.2°), and
    they stay as documented for callers that do not train.
    """
    options = dict(params)
    if "threshold" in options:
        threshold = float(options.pop("threshold"))
        if not 0 <= threshold < 1:
            raise XtalbaseError(f"peaks11 threshold is a fraction of the strongest peak in [0, 1), got {threshold}")
        options["min_intensity"] = 100.0 * threshold
    if kind == "profile":
        lo, hi, step = options.pop("grid", DEFAULT_GRID)
        options = {"two_theta_min": lo, "two_theta_max": hi, "step": step, "fwhm": 0.2, **options}
    return FeatureRecipe.make(kind, **options)


__all__ = ["DEFAULT_GRID", "FeatureRecipe", "feature_names", "featurize", "load_patterns", "load_xrd_features", "make_recipe",
           "peaks11", "peaks11_for_structures", "peaks11_row", "profile", "profile_grid", "select_peaks"]
