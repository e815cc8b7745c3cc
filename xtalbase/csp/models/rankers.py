"""How the ``cspml`` model orders the templates of a query: small ranker objects behind a registry.

A template of a query is a training structure with the query's anonymous formula (same sorted composition
ratio), never one of the query's own reduced formula. A ranker has a ``name``, ``fit(library, labeller, rng)``
and ``score(query, ids) -> costs`` (lower first); ``xtalbase csp train --model cspml --param ranker=NAME``
picks one, so each is its own leaderboard row.

``substitution``
    Least summed |Δ Mendeleev number| over the pairings of equal-count elements (the ``template`` baseline's cost),
    plus a fixed cost per anion former (C N O F S Cl Se Br I) paired with a cation or the reverse.
``descriptor``
    Euclidean distance between XenonPy compositional descriptors (290, standardised on the training fold).
``learned``
    CSPML's pair model (Kusaba et al. 2022): a classifier on |Δ standardised descriptor| of two compositions (plus,
    here, the pair's substitution cost) that says "same structure"; trained on pairs of training structures only,
    labelled by ``labeller``. Cost = -P(same).
``random``
    A random order per query (the floor of the ranking).

:class:`Library` holds the training structures with their element groups and descriptors; :class:`Query` one
composition to predict.
"""

from __future__ import annotations

import base64
import functools
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from xtalbase.csp.models.base import CspModelError
from xtalbase.csp.models.baselines import _anonymous, _element_table, _groups
from xtalbase.platform.convert import StructureArrays

#: ``(query index, template index)`` pairs of the library -> booleans "same structure".
Labeller = Callable[[Sequence[tuple[int, int]]], np.ndarray]
#: At most this many assignments of a query's tied elements are tried (7 elements of equal count have 5040), the first in
#: lexicographic order of the permutations.
MAX_ASSIGNMENTS = 5040
#: Cost of a pairing with an element pymatgen has no Mendeleev number for (the baseline's value).
_UNKNOWN_COST = 100.0
#: Added per pair where an anion former replaces a cation or the reverse (about the range of Mendeleev numbers): in ABX3
#: the second assignment is then A and B swapped, not X on a cation site.
ROLE_COST = 100.0


def formula_key(groups: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[tuple[int, int], ...]:
    """The reduced formula as sorted ``(Z, count)`` pairs."""
    return tuple(sorted(zip(groups[0], _anonymous(groups[1]))))


def describe(compositions: Sequence[np.ndarray]) -> np.ndarray:
    """``(n, 290)`` XenonPy descriptors of atomic-number arrays; a row of NaN where an element is outside the table."""
    from xtalbase.descriptors.compositional import CompositionError, composition_preset

    recipe = composition_preset("xenonpy")
    try:
        return recipe.transform(list(compositions))
    except CompositionError:  # one bad composition: describe the others one by one
        out = np.full((len(compositions), len(recipe.names())), np.nan)
        for i, c in enumerate(compositions):
            try:
                out[i] = recipe.transform([c])[0]
            except CompositionError:
                pass
        return out


def assignments(counts: tuple[int, ...]) -> np.ndarray:
    """``(p, g)`` orders of the group positions: every permutation inside each block of equal counts."""
    red = _anonymous(counts)
    blocks = [[i for i in range(len(red)) if red[i] == c] for c in sorted(set(red))]
    product = itertools.product(*(itertools.permutations(b) for b in blocks))
    return np.array([sum(map(list, p), []) for p in itertools.islice(product, MAX_ASSIGNMENTS)], dtype=np.int64)


def pair_costs(template_elements: np.ndarray, query_elements: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``(m, p)`` summed pair costs of template elements ``(m, g)`` against each assignment of the query's: |Δ Mendeleev|
    plus :data:`ROLE_COST` where an anion former would sit on another element's site or the reverse."""
    mendeleev = _tables()[0]
    role = _roles()
    t, q = template_elements[:, None, :], query_elements[perms][None, :, :]
    diff = np.abs(mendeleev[t] - mendeleev[q])
    return (np.where(np.isfinite(diff), diff, _UNKNOWN_COST) + ROLE_COST * (role[t] != role[q])).sum(-1)


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    return _element_table()


@functools.lru_cache(maxsize=1)
def _roles() -> np.ndarray:
    """By atomic number: True for anion formers (non-metals, not metalloids, Pauling χ ≥ 2.5: C N O F S Cl Se Br I ...)."""
    import warnings

    from pymatgen.core.periodic_table import Element

    out = np.zeros(119, dtype=bool)
    for z in range(1, 104):
        e = Element.from_Z(z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no Pauling χ for the noble gases: NaN
            chi = e.X
        out[z] = not e.is_metal and not e.is_metalloid and chi is not None and np.isfinite(chi) and chi >= 2.5
    return out


@dataclass
class Query:
    """One composition to predict: its atoms, element groups (count, Z order), reduced formula and descriptor."""

    numbers: np.ndarray
    descriptor: np.ndarray | None = None
    groups: tuple[tuple[int, ...], tuple[int, ...]] = field(init=False)
    formula: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        self.numbers = np.asarray(self.numbers, dtype=np.int64)
        self.groups = _groups(self.numbers)
        self.formula = formula_key(self.groups)


class Library:
    """The training structures a model substitutes from, indexed by anonymous formula.

    ``descriptors`` (n, 290) are standardised with the library's own mean and std (``scale``), which queries reuse.
    """

    def __init__(self, structures: Sequence[StructureArrays]) -> None:
        self.structures = list(structures)
        self.groups = [_groups(np.asarray(s.numbers)) for s in self.structures]
        self.formulas = [formula_key(g) for g in self.groups]
        self.nsites = np.array([len(s.numbers) for s in self.structures], dtype=np.int64)
        self.by_anonymous: dict[tuple[int, ...], list[int]] = {}
        for i, g in enumerate(self.groups):
            self.by_anonymous.setdefault(_anonymous(g[1]), []).append(i)
        self._descriptors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.structures)

    @property
    def descriptors(self) -> np.ndarray:
        if self._descriptors is None:
            raw = describe([s.numbers for s in self.structures])
            self.mean_ = np.nanmean(raw, axis=0) if len(raw) else np.zeros(raw.shape[1])
            std = np.nanstd(raw, axis=0) if len(raw) else np.ones(raw.shape[1])
            self.std_ = np.where(std > 0, std, 1.0)
            self._descriptors = (raw - self.mean_) / self.std_
        return self._descriptors

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Standardise query descriptors as the library's."""
        self.descriptors  # noqa: B018 - computes mean_ and std_
        return (raw - self.mean_) / self.std_

    def candidates(self, query: Query) -> list[int]:
        """Templates of ``query``: same anonymous formula, another reduced formula, a cell the query's atoms fill
        (same site count first, then cells whose site count divides the query's: used as supercells)."""
        ids = [i for i in self.by_anonymous.get(_anonymous(query.groups[1]), []) if self.formulas[i] != query.formula]
        n = len(query.numbers)
        same = [i for i in ids if self.nsites[i] == n]
        return same + [i for i in ids if self.nsites[i] < n and n % self.nsites[i] == 0]


class Ranker:
    """Orders templates: ``fit`` once on the library, ``score`` per query (costs, lower first)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def fit(self, library: Library, labeller: Labeller | None, rng: np.random.Generator) -> "Ranker":
        self.library_ = library
        return self

    def score(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What :meth:`load` needs besides the library (JSON-ready)."""
        return {}

    def load(self, state: dict[str, Any], library: Library) -> "Ranker":
        self.library_ = library
        return self

    def fit_summary(self) -> dict[str, Any]:
        return {}


#: Ranker name -> class, filled by :func:`register_ranker`.
RANKERS: dict[str, type[Ranker]] = {}


def register_ranker(cls: type[Ranker]) -> type[Ranker]:
    """Class decorator: make ``cls`` a choice of ``cspml``'s ``ranker`` parameter."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    RANKERS[cls.name] = cls
    return cls


def get_ranker(name: str, **params: Any) -> Ranker:
    """A new ranker called ``name``; ``params`` go to the constructors that take them."""
    import inspect

    if name not in RANKERS:
        raise CspModelError(f"unknown ranker {name!r}; choose one of {', '.join(sorted(RANKERS))}")
    cls = RANKERS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in params.items() if k in accepted})


def substitution_costs(library: Library, query: Query, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(m, p)`` costs of every assignment of the query's tied elements to each template, and the ``(p, g)``
    assignments (query group positions in template group order)."""
    perms = assignments(query.groups[1])
    t_el = np.array([library.groups[i][0] for i in ids], dtype=np.int64).reshape(len(ids), -1)
    return pair_costs(t_el, np.asarray(query.groups[0]), perms), perms


@register_ranker
class SubstitutionRanker(Ranker):
    name = "substitution"
    summary = "least summed |Δ Mendeleev number| of the element pairings"

    def score(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        if not len(ids):
            return np.zeros(0)
        return substitution_costs(self.library_, query, ids)[0].min(axis=1)


@register_ranker
class DescriptorRanker(Ranker):
    name = "descriptor"
    summary = "Euclidean distance of standardised XenonPy compositional descriptors"

    def score(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        if not len(ids):
            return np.zeros(0)
        d = np.linalg.norm(np.nan_to_num(self.library_.descriptors[list(ids)] - query.descriptor, nan=10.0), axis=1)
        return d


@register_ranker
class RandomRanker(Ranker):
    name = "random"
    summary = "a random order (seeded per query)"

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def score(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        seed = [self.random_state, *query.numbers.tolist()]
        return np.random.default_rng(seed).random(len(ids))


@register_ranker
class LearnedRanker(Ranker):
    """CSPML's pair classifier on |Δ descriptor| and the substitution cost, trained on template pairs of the training fold.

    Pairs: for each training structure (as a query) up to ``max_pairs / n`` of its own templates (same rule as at
    prediction time, so never a pair of one reduced formula), drawn with the fit's seed. An xgboost classifier
    (fixed hyper-parameters, ``workers`` threads) learns the labeller's booleans.
    """

    name = "learned"
    summary = "xgboost on |Δ descriptor| of two compositions and their substitution cost -> P(same structure) (CSPML's pair model)"

    def __init__(self, max_pairs: int = 20000, workers: int = 1, random_state: int = 0) -> None:
        self.max_pairs = max_pairs
        self.workers = workers
        self.random_state = random_state

    def pairs(self, library: Library, rng: np.random.Generator) -> list[tuple[int, int]]:
        """Training pairs ``(query, template)``, at most ``max_pairs``, spread evenly over the queries."""
        per_query = [library.candidates(Query(s.numbers)) for s in library.structures]
        having = sum(bool(c) for c in per_query)
        if not having:
            return []
        quota = max(1, self.max_pairs // having)
        out = []
        for i, ids in enumerate(per_query):
            if len(ids) > quota:
                ids = sorted(rng.choice(ids, quota, replace=False).tolist())
            out.extend((i, int(j)) for j in ids)
        if len(out) > self.max_pairs:
            keep = np.sort(rng.choice(len(out), self.max_pairs, replace=False))
            out = [out[k] for k in keep]
        return out

    def fit(self, library: Library, labeller: Labeller | None, rng: np.random.Generator) -> "LearnedRanker":
        import xgboost as xgb

        if labeller is None:
            raise CspModelError("the learned ranker needs a labeller (pairs -> same structure)")
        self.library_ = library
        pairs = self.pairs(library, rng)
        y = np.asarray(labeller(pairs), dtype=float) if pairs else np.zeros(0)
        self.n_pairs_ = len(pairs)
        self.positive_rate_ = float(y.mean()) if len(y) else 0.0
        self.booster_ = None
        if len(y) == 0 or y.min() == y.max():
            return self  # one class only: nothing to learn, score falls back to the descriptor distance
        by_query: dict[int, list[int]] = {}
        for i, j in pairs:
            by_query.setdefault(i, []).append(j)
        rows = {i: self._features(library, Query(library.structures[i].numbers, library.descriptors[i]), js) for i, js in by_query.items()}
        cursor = dict.fromkeys(by_query, 0)
        x = np.empty((len(pairs), library.descriptors.shape[1] + 1))
        for r, (i, _) in enumerate(pairs):  # back in pair order, where the labels are
            x[r] = rows[i][cursor[i]]
            cursor[i] += 1
        params = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 6, "eta": 0.1, "subsample": 0.8,
                  "colsample_bytree": 0.5, "min_child_weight": 1.0, "seed": int(self.random_state), "nthread": int(self.workers)}
        self.booster_ = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=300)
        return self

    @staticmethod
    def _features(library: Library, query: Query, ids: Sequence[int]) -> np.ndarray:
        """``(m, 291)``: |Δ standardised descriptor| and the least substitution cost of the pairing."""
        delta = np.abs(library.descriptors[list(ids)] - query.descriptor)
        return np.concatenate([delta, substitution_costs(library, query, ids)[0].min(axis=1)[:, None]], axis=1)

    def score(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        import xgboost as xgb

        if not len(ids):
            return np.zeros(0)
        if self.booster_ is None:
            return DescriptorRanker.score(self, query, ids)  # type: ignore[arg-type]
        return -self.booster_.predict(xgb.DMatrix(self._features(self.library_, query, ids)))

    def state(self) -> dict[str, Any]:
        raw = None if self.booster_ is None else base64.b64encode(bytes(self.booster_.save_raw(raw_format="ubj"))).decode()
        return {"booster_ubj_b64": raw, "n_pairs": self.n_pairs_, "positive_rate": self.positive_rate_}

    def load(self, state: dict[str, Any], library: Library) -> "LearnedRanker":
        import xgboost as xgb

        self.library_ = library
        self.n_pairs_ = int(state["n_pairs"])
        self.positive_rate_ = float(state["positive_rate"])
        self.booster_ = None
        if state.get("booster_ubj_b64"):
            self.booster_ = xgb.Booster(params={"nthread": int(self.workers)})
            self.booster_.load_model(bytearray(base64.b64decode(state["booster_ubj_b64"])))
        return self

    def fit_summary(self) -> dict[str, Any]:
        return {"n_pairs_": self.n_pairs_, "pair_positive_rate_": round(self.positive_rate_, 4)}
