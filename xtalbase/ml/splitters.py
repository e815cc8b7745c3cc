"""Split strategies as small classes, and the name -> class registry (:data:`SPLITTERS`) behind splits and the CLI.

A splitter follows the scikit-learn estimator convention: ``__init__`` only stores its keyword
parameters and :meth:`Splitter.get_params` reads them back. :meth:`Splitter.recipe` is those
parameters, validated, as a stored split records them, and :meth:`Splitter.assign` is the pure fold
assignment (no database, no row order, no clock; the hashing lives in
:mod:`xtalbase.ml.split_strategies`).

Adding a strategy is one class registered with :func:`register_splitter`; ``db.splits.create``,
recipe validation and ``xtalbase split create --strategy`` find it by its ``name``:

>>> @register_splitter                                            # doctest: +SKIP
... class HalvesSplitter(Splitter):
...     name, summary = "halves", "train/test by the first hex digit of the canonical hash"
...     def __init__(self, seed=0, mode="stable"):
...         self.seed, self.mode = seed, mode
...     def folds(self, params, canonical, *, groups=None, strata=None, later=None):
...         return np.array([int(c[0] >= "8") for c in canonical]), ("train", "test")
"""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    import numpy as np

#: Recipe keys every stored split carries, ``None`` where its strategy does not take them. Kept so the
#: recipes (and so the content hashes) of splits stored before splitters were classes never change.
RECIPE_KEYS = ("by", "fractions", "k", "cut")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
MODES = ("stable", "exact")

#: Strategy name -> splitter class; filled by :func:`register_splitter`, read at call time.
SPLITTERS: dict[str, type["Splitter"]] = {}


class SplitError(XtalbaseError):
    """A split recipe or its inputs are invalid."""


def register_splitter(cls: type["Splitter"]) -> type["Splitter"]:
    """Class decorator: make ``cls`` available under ``cls.name`` to splits, recipes and the CLI."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    SPLITTERS[cls.name] = cls
    return cls


def splitter_class(strategy: str) -> type["Splitter"]:
    """The class registered as ``strategy``; :class:`SplitError` naming the known strategies otherwise."""
    try:
        return SPLITTERS[strategy]
    except (KeyError, TypeError):
        raise SplitError(f"unknown strategy {strategy!r}: choose one of {', '.join(SPLITTERS)}") from None


def make_splitter(strategy: str, **params: Any) -> "Splitter":
    """Build the splitter ``strategy`` from ``params``, refusing a given parameter it does not take.

    ``None`` means "not given". ``fractions`` is the exception: strategies without fractions
    (``kfold``) ignore it, so callers may always pass their default.
    """
    cls = splitter_class(strategy)
    accepted = cls.param_names()
    for key, value in params.items():
        if key not in accepted and value is not None and key != "fractions":
            takers = [n for n, c in SPLITTERS.items() if key in c.param_names()]
            listed = " and ".join(filter(None, [", ".join(takers[:-1]), takers[-1]])) if takers else ""
            where = f"the {listed} strateg{'y' if len(takers) == 1 else 'ies'}" if takers else "no strategy"
            raise SplitError(f"--{key} applies to {where} only, not to {strategy}")
    return cls(**{k: v for k, v in params.items() if k in accepted})


def strategy_help() -> str:
    """One line per registered strategy (``name: summary``), for CLI help."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in SPLITTERS.items())


class Splitter:
    """Base of the split strategies: parameters in, fold index per structure out.

    Subclasses set ``name`` (the registry key), ``summary`` (one line of help), ``key_role``
    (``"groups"`` or ``"strata"`` when the ``by`` column feeds them) and ``default_by``, store their
    keyword parameters in ``__init__`` (always ``seed`` and ``mode``) and implement :meth:`folds`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    key_role: ClassVar[str | None] = None
    default_by: ClassVar[str | None] = None

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The keyword parameters of ``__init__``, as ``get_params`` returns them."""
        return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters by name, as given (``deep`` is accepted for scikit-learn's ``clone``)."""
        return {p: getattr(self, p) for p in self.param_names()}

    def set_params(self, **params: Any) -> "Splitter":
        """Set constructor parameters by name; returns ``self``."""
        unknown = sorted(set(params) - set(self.param_names()))
        if unknown:
            raise SplitError(f"{type(self).__name__} has no parameter(s) {unknown}; it takes {list(self.param_names())}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def checked_params(self) -> dict[str, Any]:
        """The parameters validated and in their stored form; :class:`SplitError` names the bad one."""
        params = self.get_params()
        if params["mode"] not in MODES:
            raise SplitError(f"unknown mode {params['mode']!r}: choose stable or exact")
        seed = params["seed"]
        if isinstance(seed, bool) or not isinstance(seed, (int, float)) or int(seed) != seed:
            raise SplitError(f"seed must be an integer, got {seed!r}")
        params["seed"] = int(seed)
        return params

    def recipe(self) -> dict[str, Any]:
        """``strategy``, ``mode``, ``seed``, then the other parameters: what a stored split records."""
        params = self.checked_params()
        out: dict[str, Any] = {"strategy": self.name, "mode": params.pop("mode"), "seed": params.pop("seed")}
        out.update({key: None for key in RECIPE_KEYS})
        out.update(params)
        return out

    @property
    def key_column(self) -> str | None:
        """The column whose values feed ``key_role`` (``by``, else the class default), or None."""
        if self.key_role is None:
            return None
        by = getattr(self, "by", None)
        return by if by is not None else self.default_by

    def inputs(self, rows: Mapping[str, Sequence[Any]], keys: Sequence[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Keyword inputs of :meth:`assign` from the selected rows, and what was resolved on the way.

        ``rows`` maps structure columns (``canonical_hash``, ``created_at``, ``run_id``, ...) to
        per-structure values; ``keys`` are the ``key_column`` values. The resolved dict is stored
        under the recipe's ``resolved``.
        """
        return ({self.key_role: list(keys)} if self.key_role and keys is not None else {}), {}

    def assign(self, canonical: Sequence[str], *, groups: Sequence[str] | None = None,
               strata: Sequence[str] | None = None, later: Sequence[bool] | None = None) -> tuple["np.ndarray", tuple[str, ...]]:
        """Fold index per structure, shape (n,) int64, and the fold names.

        ``canonical`` (n,) canonical hashes; ``groups``/``strata`` (n,) keys; ``later`` (n,) bool,
        True past the time cut. A strategy uses the inputs it needs and ignores the others.
        """
        from xtalbase.ml.split_strategies import check_length

        params = self.checked_params()
        n = len(canonical)
        check_length("groups", groups, n)
        check_length("strata", strata, n)
        check_length("later", later, n)
        return self.folds(params, list(canonical), groups=groups, strata=strata, later=later)

    def folds(self, params: dict[str, Any], canonical: list[str], *, groups: Sequence[str] | None,
              strata: Sequence[str] | None, later: Sequence[bool] | None) -> tuple["np.ndarray", tuple[str, ...]]:
        """The strategy itself, given :meth:`checked_params` and inputs of checked length."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class _FractionSplitter(Splitter):
    """Shared validation of the train [val] test ``fractions``."""

    fractions: Sequence[float] | None

    def checked_params(self) -> dict[str, Any]:
        from xtalbase.ml.split_strategies import check_fractions

        params = super().checked_params()
        params["fractions"] = [float(f) for f in check_fractions(params["fractions"])]
        return params


@register_splitter
class RandomSplitter(_FractionSplitter):
    """Each canonical structure to a fold by its keyed hash (copies of one structure share a fold).

    >>> RandomSplitter(fractions=(0.8, 0.2), seed=1).recipe()["fractions"]
    [0.8, 0.2]
    """

    name = "random"
    summary = "by canonical hash"

    def __init__(self, fractions: Sequence[float] | None = DEFAULT_FRACTIONS, seed: int = 0, mode: str = "stable") -> None:
        self.fractions = fractions
        self.seed = seed
        self.mode = mode

    def folds(self, params: dict[str, Any], canonical: list[str], *, groups: Sequence[str] | None = None,
              strata: Sequence[str] | None = None, later: Sequence[bool] | None = None) -> tuple["np.ndarray", tuple[str, ...]]:
        from xtalbase.ml.split_strategies import fold_names, split_keys

        names = fold_names(params["fractions"])
        return split_keys(canonical, params["fractions"], params["seed"], params["mode"]), names


class _ByFractionSplitter(_FractionSplitter):
    """The parameters of the fraction splitters keyed by a column (``by``; the class names its default)."""

    def __init__(self, by: str | None = None, fractions: Sequence[float] | None = DEFAULT_FRACTIONS, seed: int = 0,
                 mode: str = "stable") -> None:
        self.by = by
        self.fractions = fractions
        self.seed = seed
        self.mode = mode


@register_splitter
class GroupSplitter(_ByFractionSplitter):
    """Whole groups (equal ``by`` values, default ``formula_reduced``) to one fold each."""

    name = "group"
    summary = "whole groups of --by (default formula_reduced) per fold"
    key_role = "groups"
    default_by = "formula_reduced"

    def folds(self, params: dict[str, Any], canonical: list[str], *, groups: Sequence[str] | None = None,
              strata: Sequence[str] | None = None, later: Sequence[bool] | None = None) -> tuple["np.ndarray", tuple[str, ...]]:
        from xtalbase.ml.split_strategies import fold_names, split_keys

        names = fold_names(params["fractions"])
        if groups is None:
            raise SplitError("group strategy needs group keys (--by COLUMN)")
        return split_keys(list(groups), params["fractions"], params["seed"], params["mode"]), names


@register_splitter
class StratifiedSplitter(_ByFractionSplitter):
    """The fractions within each stratum (``by``, default ``crystal_system``), by canonical hash."""

    name = "stratified"
    summary = "fractions within each stratum of --by (default crystal_system)"
    key_role = "strata"
    default_by = "crystal_system"

    def folds(self, params: dict[str, Any], canonical: list[str], *, groups: Sequence[str] | None = None,
              strata: Sequence[str] | None = None, later: Sequence[bool] | None = None) -> tuple["np.ndarray", tuple[str, ...]]:
        from xtalbase.ml.split_strategies import fold_names, split_strata

        names = fold_names(params["fractions"])
        if strata is None:
            raise SplitError("stratified strategy needs a stratum column (--by COLUMN)")
        return split_strata(list(strata), canonical, params["fractions"], params["seed"], params["mode"]), names


@register_splitter
class KFoldSplitter(Splitter):
    """``k`` equal folds ``fold0..``, of whole groups when ``by`` is given, else of canonical structures."""

    name = "kfold"
    summary = "k folds (--k), of whole --by groups when given"
    key_role = "groups"

    def __init__(self, k: int | None = None, by: str | None = None, seed: int = 0, mode: str = "stable") -> None:
        self.k = k
        self.by = by
        self.seed = seed
        self.mode = mode

    def checked_params(self) -> dict[str, Any]:
        from xtalbase.ml.split_strategies import check_k

        params = super().checked_params()
        params["k"] = check_k(params["k"])
        return params

    def folds(self, params: dict[str, Any], canonical: list[str], *, groups: Sequence[str] | None = None,
              strata: Sequence[str] | None = None, later: Sequence[bool] | None = None) -> tuple["np.ndarray", tuple[str, ...]]:
        from xtalbase.ml.split_strategies import fold_names, split_keys

        k = params["k"]
        keys = list(groups) if groups is not None else canonical
        return split_keys(keys, [1.0 / k] * k, params["seed"], params["mode"]), fold_names(k=k)


@register_splitter
class TimeSplitter(_FractionSplitter):
    """Structures past the cut are the test side; the earlier ones split train [val] by canonical hash.

    ``cut``: a run id (later runs are the test side) or an ISO timestamp (created after it); by
    default the run boundary whose later share is closest to the test fraction, resolved per split.
    """

    name = "time"
    summary = "later runs (or --cut) are the test side"

    def __init__(self, fractions: Sequence[float] | None = DEFAULT_FRACTIONS, cut: int | str | datetime | None = None,
                 seed: int = 0, mode: str = "stable") -> None:
        self.fractions = fractions
        self.cut = cut
        self.seed = seed
        self.mode = mode

    def checked_params(self) -> dict[str, Any]:
        params = super().checked_params()
        if len(params["fractions"]) < 2:
            raise SplitError("time strategy needs a test fraction: give train [val] test fractions")
        if isinstance(params["cut"], datetime):
            params["cut"] = as_utc(params["cut"]).isoformat()
        return params

    def inputs(self, rows: Mapping[str, Sequence[Any]], keys: Sequence[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        params = self.checked_params()
        later, cut = time_cut(rows["run_id"], rows["created_at"], params["cut"], params["fractions"][-1])
        return {"later": later}, {"cut": cut}

    def folds(self, params: dict[str, Any], canonical: list[str], *, groups: Sequence[str] | None = None,
              strata: Sequence[str] | None = None, later: Sequence[bool] | None = None) -> tuple["np.ndarray", tuple[str, ...]]:
        import numpy as np

        from xtalbase.ml.split_strategies import fold_names, split_keys

        fractions = params["fractions"]
        names = fold_names(fractions)
        if later is None:
            raise SplitError("time strategy needs the time cut (which structures are later)")
        later = np.asarray(later, dtype=bool)
        out = np.full(len(canonical), len(names) - 1, dtype=np.int64)
        early = np.flatnonzero(~later)
        head = np.asarray(fractions[:-1], dtype=np.float64)
        head = head / head.sum() if head.sum() > 0 else np.full(len(head), 1.0 / len(head))
        out[early] = split_keys([canonical[i] for i in early], head, params["seed"], params["mode"])
        return out, names


def assign(
    strategy: str,
    *,
    canonical: Sequence[str],
    fractions: Sequence[float] | None = DEFAULT_FRACTIONS,
    k: int | None = None,
    groups: Sequence[str] | None = None,
    strata: Sequence[str] | None = None,
    later: Sequence[bool] | None = None,
    seed: int = 0,
    mode: str = "stable",
) -> tuple["np.ndarray", tuple[str, ...]]:
    """Assign n structures to folds with the registered ``strategy``; (fold index (n,) int64, fold names).

    Each strategy takes the parameters and inputs it needs and ignores the rest; see the classes above.
    """
    cls = splitter_class(strategy)
    given = {"fractions": fractions, "k": k, "seed": seed, "mode": mode}
    splitter = cls(**{key: value for key, value in given.items() if key in cls.param_names()})
    return splitter.assign(canonical, groups=groups, strata=strata, later=later)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC already)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def time_cut(run_ids: Sequence[int | None], created_at: Sequence[datetime], cut: int | str | None,
             test_fraction: float) -> tuple["np.ndarray", dict[str, Any]]:
    """Which structures (n,) bool are later than ``cut``, and the cut as stored in the recipe.

    ``cut`` is a run id, an ISO timestamp, or None for the run boundary whose later share is
    closest to ``test_fraction``.
    """
    import numpy as np

    if isinstance(cut, str):
        try:
            when = as_utc(datetime.fromisoformat(cut))
        except ValueError as exc:
            raise SplitError(f"--cut {cut!r} is neither a run id nor an ISO timestamp (2026-11-21T12:00:00)") from exc
        later = np.array([as_utc(t) > when for t in created_at], dtype=bool)
        return later, {"created_after": when.isoformat()}
    runs = np.array([-1 if r is None else r for r in run_ids], dtype=np.int64)
    if cut is None:
        boundaries = np.unique(runs)[:-1]  # "later than r" for each run r but the newest
        if len(boundaries) == 0:
            raise SplitError("time split: every selected structure comes from one run; pass --cut RUN_ID or a timestamp")
        shares = np.array([(runs > b).sum() / len(runs) for b in boundaries])
        cut = int(boundaries[np.argmin(np.abs(shares - test_fraction))])
    return runs > int(cut), {"run_id": int(cut)}
