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

Two *augmented* kinds are meant for models applied to measured scans (:mod:`xtalbase.ml.xrd_augment`):
``peaks11_aug`` (the ``peaks11`` descriptor) and ``profile_aug`` (picked peaks broadened onto a 2θ grid, the
CNN's input). Training replaces each computed pattern by ``n_augment`` synthetic scans peak-picked like a
measured scan (:meth:`FeatureRecipe.augment`); :meth:`FeatureRecipe.transform` takes peaks that are already
picked (a measured scan's, or a synthetic scan's) and leaves them as they are, and reads a computed pattern as
a *clean* scan: sticks within ``scan_min``-``scan_max``, merged within ``merge_tol`` (0.05°) and at least
``min_intensity`` (1 %) of the strongest. Both thresholds are below what the peak picking produces (peaks at
least ~0.08° apart and 2 % prominent), so picked peaks pass through unchanged.

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
from xtalbase.ml.xrd_augment import AUGMENT_DEFAULTS
from xtalbase.xrd.profile import DEFAULT_GRID, profile, profile_grid

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

KINDS = ("peaks11", "profile", "peaks11_aug", "profile_aug")
#: Kinds whose training rows are augmented synthetic scans (:mod:`xtalbase.ml.xrd_augment`).
AUGMENTED_KINDS = ("peaks11_aug", "profile_aug")
#: Every option of each kind with its default; a stored recipe holds all of them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "peaks11": {"n_peaks": 10, "min_intensity": 0.0, "merge_tol": 0.0},
    "profile": {"two_theta_min": 0.0, "two_theta_max": 90.0, "step": 0.5, "fwhm": 0.3, "min_intensity": 0.0, "merge_tol": 0.0},
    "peaks11_aug": {"n_peaks": 10, "min_intensity": 1.0, "merge_tol": 0.05, **AUGMENT_DEFAULTS},
    # the grid runs from scan_min to scan_max in ``step`` degrees; picked peaks are drawn as Gaussians of ``fwhm`` with
    # height intensity ** intensity_power (0.5 lifts weak peaks, whose positions carry the symmetry, towards the strong)
    "profile_aug": {"step": 0.1, "fwhm": 0.2, "intensity_power": 1.0, "min_intensity": 1.0, "merge_tol": 0.05, **AUGMENT_DEFAULTS},
}
#: Options stored only when given, so recipes written before they existed keep their exact JSON.
OPTIONAL: dict[str, dict[str, Any]] = {"peaks11": {}, "profile": {"shape": "gaussian", "eta": 0.5}, "peaks11_aug": {},
                                       "profile_aug": {}}

Peaks = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class FeatureRecipe:
    """Which descriptor is computed from a pattern's peaks, and which peaks count.

    Parameters
    ----------
    kind : ``"peaks11"``, ``"profile"``, or their augmented versions ``"peaks11_aug"``, ``"profile_aug"``.
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
        if self.kind in ("peaks11", "peaks11_aug") and int(params["n_peaks"]) < 1:
            raise XtalbaseError(f"n_peaks must be >= 1, got {params['n_peaks']}")
        if self.kind in AUGMENTED_KINDS:
            _check_augment(params)
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

    @property
    def augmented(self) -> bool:
        """Whether training rows are augmented synthetic scans (see :meth:`augment`)."""
        return self.kind in AUGMENTED_KINDS

    def names(self) -> list[str]:
        """Column names of the feature matrix."""
        if self.kind in ("peaks11", "peaks11_aug"):
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
        if self.augmented:
            # the window every synthetic scan covers; a measured scan's peaks outside it are never seen in training
            inside = (tt >= float(self.params["scan_min"])) & (tt <= float(self.params["scan_max"]))
            tt, inten = tt[inside], inten[inside]
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
        if self.kind in ("peaks11", "peaks11_aug"):
            n = int(self.params["n_peaks"])
            out = np.zeros(n + 1, dtype=np.float32)
            out[: min(n, len(tt))] = tt[:n]
            out[n] = len(tt)
            return out
        extra = {k: self.params[k] for k in OPTIONAL["profile"] if k in self.params}
        if self.kind == "profile_aug":
            inten = np.maximum(inten, 0.0) ** float(self.params["intensity_power"])
        return profile(tt, inten, grid=self._grid(), fwhm=float(self.params["fwhm"]), **extra)

    def augment(self, peaks: Sequence[Peaks], exact_hashes: Sequence[str], copies: Sequence[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Features of augmented synthetic scans of computed patterns (an augmented kind only).

        ``peaks`` are computed stick patterns and ``exact_hashes`` their structures' hashes (which seed the
        copies); ``copies`` defaults to ``range(n_augment)``. Returns ``X`` (len(peaks) * len(copies),
        n_features) float32 and the index into ``peaks`` of each row (see
        :func:`xtalbase.ml.xrd_augment.augment_rows`).
        """
        from xtalbase.ml.xrd_augment import augment_rows

        if not self.augmented:
            raise XtalbaseError(f"feature kind {self.kind!r} is not augmented; choose one of {AUGMENTED_KINDS}")
        copies = range(int(self.params["n_augment"])) if copies is None else copies
        return augment_rows(self, peaks, exact_hashes, list(copies))

    def transform(self, peaks: Sequence[Peaks]) -> np.ndarray:
        """Feature matrix (n_patterns, n_features) float32 from (two_theta, intensity) peak lists."""
        if not len(peaks):
            return np.zeros((0, len(self.names())), dtype=np.float32)
        return np.vstack([self.row(tt, inten) for tt, inten in peaks]).astype(np.float32)

    def _grid(self) -> tuple[float, float, float]:
        p = self.params
        if self.kind == "profile_aug":
            return float(p["scan_min"]), float(p["scan_max"]), float(p["step"])
        return float(p["two_theta_min"]), float(p["two_theta_max"]), float(p["step"])


def _check_augment(params: Mapping[str, Any]) -> None:
    """Refuse augmentation options outside their ranges (angles in degrees, fractions in [0, 1])."""
    def bad(text: str) -> XtalbaseError:
        return XtalbaseError(f"augmented feature recipe: {text}")

    if int(params["n_augment"]) < 0 or int(params["n_augment"]) != params["n_augment"]:
        raise bad(f"n_augment must be a whole number >= 0, got {params['n_augment']}")
    if int(params["n_augment"]) == 0 and not params["include_clean"]:
        raise bad("n_augment = 0 without include_clean leaves no training rows")
    if not 0 < float(params["fwhm_min"]) <= float(params["fwhm_max"]):
        raise bad(f"need 0 < fwhm_min <= fwhm_max (degrees), got {params['fwhm_min']}, {params['fwhm_max']}")
    if "intensity_power" in params and not float(params["intensity_power"]) > 0:
        raise bad(f"intensity_power must be > 0, got {params['intensity_power']}")
    if int(params["impurity_max"]) < 0 or int(params["impurity_max"]) != params["impurity_max"]:
        raise bad(f"impurity_max must be a whole number >= 0, got {params['impurity_max']}")
    for key in ("kalpha2_probability", "eta_max", "impurity_probability"):
        if not 0 <= float(params[key]) <= 1:
            raise bad(f"{key} must be in [0, 1], got {params[key]}")
    for key in ("kalpha2_ratio", "caglioti_max", "zero_shift", "po_sigma", "background_max"):
        if float(params[key]) < 0:
            raise bad(f"{key} must be >= 0, got {params[key]}")
    if not 0 < float(params["counts_min"]) <= float(params["counts_max"]):
        raise bad(f"need 0 < counts_min <= counts_max, got {params['counts_min']}, {params['counts_max']}")
    if not 0 <= float(params["scan_min"]) < float(params["scan_max"]) <= 178 or not float(params["scan_step"]) > 0:
        raise bad(f"need 0 <= scan_min < scan_max <= 178 and scan_step > 0 (degrees), got {params['scan_min']}, "
                  f"{params['scan_max']}, {params['scan_step']}")
    for key in ("wavelength", "kalpha1", "kalpha2"):
        if not float(params[key]) > 0:
            raise bad(f"{key} must be a positive wavelength in Å, got {params[key]}")


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


__all__ = ["AUGMENTED_KINDS", "DEFAULT_GRID", "FeatureRecipe", "feature_names", "featurize", "load_patterns", "load_xrd_features", "make_recipe",
           "peaks11", "peaks11_for_structures", "peaks11_row", "profile", "profile_grid", "select_peaks"]
