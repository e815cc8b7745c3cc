"""``cspml``: template-based CSP after CSPML (Kusaba et al. 2022), a model of the CSP framework (issue 22).

For a query (the atoms of a cell):

1. **Candidates**: training structures with the query's anonymous formula, never of its own reduced formula;
   same site count first, then cells whose site count divides the query's (tiled into a supercell).
2. **Ranking**: a ranker of :mod:`xtalbase.csp.models.rankers` (``ranker=``: ``substitution``, ``descriptor``,
   ``learned``, ``random``) orders the templates. The ``learned`` ranker's pairs come from the training fold only,
   labelled ``label="crystalnn"`` (CSPML: CrystalNN structure-fingerprint distance below ``tau``) or
   ``"matcher"`` (StructureMatcher, the evaluation's settings, on the template with the query's elements substituted).
3. **Substitution**: every assignment of the query's elements to the template's sites that keeps counts (elements of
   equal count are tied: ABX3 has two) is a candidate, ordered per template by summed |Δ Mendeleev| of the
   pairs (``site="substitution"``) or at random (``site="random"``, to measure what the assignment is worth). The
   first ``per_template`` assignments of every template come before the remaining assignments of any template.
   With ``dedupe``, an assignment that StructureMatcher (the evaluation's settings) finds equal to a kept sample of
   the same template is skipped (at most :data:`MAX_CHECKS` comparisons per query; counted in ``duplicates_``).
4. **Volume**: the template cell scaled isotropically to ``volume="atomic"`` (ratio of summed pymatgen atomic
   volumes, the baseline's), ``"fitted"`` (ratio of summed element volumes fitted to the training fold), ``"learned"``
   (xgboost of volume per atom on the descriptors, template-free) or ``"auto"`` (the one of least mean |log V/V_ref|
   on the val fold's top candidates).
5. **Distance check**: a candidate with two sites closer than ``min_distance`` Å (periodic) is dropped and the next
   taken (counted in ``dropped_``). Past the candidates: a ``random`` sample (counted in ``fallbacks_``).

The artifact is JSON: template arrays, fitted numbers, and xgboost boosters as base64 UBJ (their own format, no pickle).
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

import numpy as np

from xtalbase.csp.models.base import CspModelError, register_model
from xtalbase.csp.models.baselines import _JsonModel, _shape, _volume_per_atom
from xtalbase.csp.models.rankers import RANKERS, Library, Query, _tables, describe, get_ranker, substitution_costs
from xtalbase.platform.convert import StructureArrays

SITES = ("substitution", "random")
VOLUMES = ("atomic", "fitted", "learned", "auto")
LABELS = ("auto", "crystalnn", "matcher")
#: Pairs (or structures) per worker task when labelling in processes.
CHUNK = 200
#: Matcher comparisons per query spent on skipping repeated assignments of one template (``dedupe``).
MAX_CHECKS = 20


@register_model
class CspmlModel(_JsonModel):
    """Ranked same-anonymous-formula templates of the training fold, every tied-site assignment, volume estimated.

    Parameters
    ----------
    ranker : str
        A name of :data:`xtalbase.csp.models.rankers.RANKERS`.
    site : {"substitution", "random"}
        Order of the assignments of tied elements within a template.
    per_template : int
        Assignments of each template tried before the next template; the rest come after every template's first.
    volume : {"atomic", "fitted", "learned", "auto"}
        Volume estimate (Å³), see the module docstring.
    label : {"auto", "crystalnn", "matcher"}
        Labels of the learned ranker's pairs; ``auto``: ``crystalnn`` when :mod:`xtalbase.descriptors.structural` is
        importable, else ``matcher``.
    tau : float
        CrystalNN fingerprint distance below which two structures are "the same" (CSPML's 0.3).
    max_pairs : int
        Training pairs of the learned ranker (drawn from the training fold with the seed).
    min_distance : float
        Å; candidates with a closer pair of sites are dropped.
    dedupe : bool
        Skip an assignment that matches a kept sample of the same template.
    workers : int
        Processes for labelling pairs and threads for xgboost.
    random_state : int
        Seed of the pair draw, the boosters and the fallbacks.

    Attributes
    ----------
    templates_ : list of (cell, numbers, frac_coords)
        The training structures (the only structures samples are made from).
    volume_choice_ : str
        The volume estimate in use (``volume`` unless ``auto``).
    sources_ : list of list of (template index, assignment) or None
        Per query of the last :meth:`sample`, where each sample came from (``None``: a random fallback).
    """

    name = "cspml"
    summary = ("CSPML-style templates: same anonymous formula in the training fold, ranked (substitution, descriptor, learned "
               "pair model, random), every tied-site assignment a candidate, volume estimated, distance-checked")

    def __init__(self, ranker: str = "substitution", site: str = "substitution", per_template: int = 2, volume: str = "auto",
                 label: str = "auto", tau: float = 0.3, max_pairs: int = 20000, min_distance: float = 0.5, dedupe: bool = True,
                 workers: int = 1, random_state: int = 0) -> None:
        self.ranker = ranker
        self.site = site
        self.per_template = per_template
        self.volume = volume
        self.label = label
        self.tau = tau
        self.max_pairs = max_pairs
        self.min_distance = min_distance
        self.dedupe = dedupe
        self.workers = workers
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        # validated, never rewritten: get_params() must give back what was set (``--param`` values arrive typed)
        for name, kind in (("per_template", int), ("max_pairs", int), ("workers", int), ("tau", (int, float)),
                           ("min_distance", (int, float)), ("dedupe", bool)):
            value = getattr(self, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise CspModelError(f"{name} must be {'true or false' if kind is bool else 'a number'} (got {value!r})")
        for value, allowed, what in ((self.ranker, sorted(RANKERS), "ranker"), (self.site, SITES, "site"),
                                     (self.volume, VOLUMES, "volume"), (self.label, LABELS, "label")):
            if value not in allowed:
                raise CspModelError(f"{what} must be one of {', '.join(allowed)} (got {value!r})")
        if self.per_template < 1 or self.max_pairs < 1 or self.workers < 1:
            raise CspModelError("per_template, max_pairs and workers must be at least 1")

    def fit(self, train: Sequence[StructureArrays], val: Sequence[StructureArrays] | None = None) -> "CspmlModel":
        self._check_params()
        if not train:
            raise CspModelError("the cspml model needs at least one training structure")
        self.templates_ = [(np.asarray(s.cell, float).tolist(), [int(z) for z in s.numbers], np.asarray(s.frac_coords, float).tolist())
                           for s in train]
        self.shapes_ = [_shape(s.cell) for s in train]
        self.volumes_ = [_volume_per_atom(s) for s in train]
        self._library = Library([StructureArrays(np.asarray(s.cell, float), np.asarray(s.numbers, np.int64),
                                                 np.asarray(s.frac_coords, float)) for s in train])
        self.element_volumes_ = _fit_element_volumes(self._library).tolist()
        rng = np.random.default_rng(self.random_state)
        self.label_choice_ = ""
        labeller = None
        if self.ranker == "learned":
            self.label_choice_ = self._label_kind()
            labeller = self._labeller(self.label_choice_)
        self._ranker = get_ranker(self.ranker, max_pairs=self.max_pairs, workers=self.workers, random_state=self.random_state)
        self._ranker.fit(self._library, labeller, rng)
        self._volume_model = None
        if self.volume in ("learned", "auto"):
            self._volume_model = _fit_volume_model(self._library, self.random_state, self.workers)
        self.volume_choice_ = self.volume
        if self.volume == "auto":
            self.volume_choice_ = self._choose_volume(val or [])
        for key, value in self._ranker.fit_summary().items():
            setattr(self, key, value)
        return self

    def _label_kind(self) -> str:
        if self.label != "auto":
            return self.label
        try:
            import xtalbase.descriptors.structural  # noqa: F401 - optional colleague module
        except ImportError:
            return "matcher"
        return "crystalnn"

    def _labeller(self, kind: str) -> Any:
        library = self._library

        def crystalnn(pairs: Sequence[tuple[int, int]]) -> np.ndarray:
            used = sorted({i for p in pairs for i in p})
            fingerprints = dict(zip(used, _map(_crystalnn_rows, [library.structures[i] for i in used], self.workers)))
            return np.array([np.linalg.norm(fingerprints[i] - fingerprints[j]) < self.tau for i, j in pairs], dtype=bool)

        def matcher(pairs: Sequence[tuple[int, int]]) -> np.ndarray:
            jobs = []
            for i, j in pairs:
                query = Query(library.structures[i].numbers)
                perm = self._site_order(query, [j])[0][0, 0]
                jobs.append((self._substitute(query, j, perm), library.structures[i]))
            return np.array(_map(_matches, jobs, self.workers), dtype=bool)

        return crystalnn if kind == "crystalnn" else matcher

    def _choose_volume(self, val: Sequence[StructureArrays]) -> str:
        """The estimate of least mean |log(V / V_ref)| over the val structures' first candidates."""
        queries = self._queries([s.numbers for s in val])
        errors: dict[str, list[float]] = {"atomic": [], "fitted": [], "learned": []}
        learned = self._learned_volumes(queries)
        for q, s, v_learned in zip(queries, val, learned):
            plan = self._plan(q)
            if not plan:
                continue
            first = (plan[0][0], plan[0][1][0])
            v_ref = abs(np.linalg.det(np.asarray(s.cell, float)))
            built = self._substitute(q, *first)
            for kind in errors:
                errors[kind].append(abs(np.log(self._volume(kind, q, first[0], built, v_learned) / v_ref)))
        self.volume_val_errors_ = json.dumps({k: round(float(np.mean(v)), 4) for k, v in errors.items() if v})
        if not errors["fitted"]:
            return "fitted"
        return min(errors, key=lambda k: float(np.mean(errors[k])))

    # ------------------------------------------------------------------ candidates
    def _queries(self, compositions: Sequence[np.ndarray]) -> list[Query]:
        queries = [Query(np.asarray(c)) for c in compositions]
        if queries and (self.ranker in ("descriptor", "learned") or self._volume_model is not None):
            scaled = self._library.scale(describe([q.numbers for q in queries]))
            for q, d in zip(queries, scaled):
                q.descriptor = d
        return queries

    def _site_order(self, query: Query, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(m, p, g)``: each template's assignments (query group positions in template group order), best first; and
        ``(m,)`` the least substitution cost of each template."""
        costs, perms = substitution_costs(self._library, query, ids)
        if self.site == "random":
            rng = np.random.default_rng([self.random_state, *query.numbers.tolist()])
            costs = rng.random(costs.shape)
        order = np.argsort(costs, axis=1, kind="stable")
        return perms[order], costs.min(axis=1)

    def _plan(self, query: Query) -> list[tuple[int, np.ndarray]]:
        """Templates in rank order (same site count first), each with its assignments best first."""
        ids = self._library.candidates(query)
        if not ids:
            return []
        ordered_perms, best = self._site_order(query, ids)
        cost = self._ranker.score(query, ids)
        supercell = self._library.nsites[ids] != len(query.numbers)
        return [(ids[r], ordered_perms[r]) for r in np.lexsort((np.asarray(ids), best, cost, supercell))]

    def _substitute(self, query: Query, template: int, perm: np.ndarray) -> StructureArrays:
        """The template with the query's elements on its sites (tiled when it has fewer sites), volume unchanged."""
        s = self._library.structures[template]
        elements = self._library.groups[template][0]
        mapping = dict(zip(elements, (query.groups[0][j] for j in perm)))
        numbers = np.array([mapping[int(z)] for z in s.numbers], dtype=np.int64)
        cell, frac = np.asarray(s.cell, float), np.asarray(s.frac_coords, float)
        times = len(query.numbers) // len(numbers)
        if times > 1:  # tile along the shortest lattice vector
            axis = int(np.argmin(np.linalg.norm(cell, axis=1)))
            shift = np.zeros(3)
            shift[axis] = 1.0
            frac = np.concatenate([(frac + t * shift) for t in range(times)])
            frac[:, axis] /= times
            cell = cell.copy()
            cell[axis] *= times
            numbers = np.tile(numbers, times)
        return StructureArrays(cell, numbers, frac)

    def _volume(self, kind: str, query: Query, template: int, built: StructureArrays, learned: float | None) -> float:
        """Estimated cell volume (Å³) of ``query`` built on ``template``."""
        v_template = abs(float(np.linalg.det(built.cell)))
        if kind == "learned" and learned is not None and np.isfinite(learned):
            return float(learned)
        table = np.asarray(self.element_volumes_) if kind in ("fitted", "learned") else _tables()[1]
        original = np.asarray(self._library.structures[template].numbers)
        times = len(built.numbers) // len(original)
        v_query, v_old = np.nansum(table[query.numbers]), np.nansum(table[original]) * times
        return v_template * (v_query / v_old) if v_query > 0 and v_old > 0 else v_template

    def _learned_volumes(self, queries: Sequence[Query]) -> list[float | None]:
        if self._volume_model is None or not queries:
            return [None] * len(queries)
        import xgboost as xgb

        x = np.array([q.descriptor for q in queries])
        per_atom = np.exp(self._volume_model.predict(xgb.DMatrix(x)))
        return [float(v) * len(q.numbers) for v, q in zip(per_atom, queries)]

    # ------------------------------------------------------------------ sample
    def sample(self, compositions: Sequence[np.ndarray], k: int, seed: int) -> list[list[StructureArrays]]:
        self._check_fitted()
        rng = np.random.default_rng([seed, self.random_state])
        queries = self._queries(compositions)
        learned = self._learned_volumes(queries) if self.volume_choice_ == "learned" else [None] * len(queries)
        self.fallbacks_ = self.dropped_ = self.duplicates_ = 0
        self.sources_: list[list[tuple[int, tuple[int, ...]] | None]] = []
        out = []
        matcher = _matcher() if self.dedupe else None
        for q, v_learned in zip(queries, learned):
            drawn = _Drawn(k)
            pending = []
            for template, perms in self._plan(q):
                # first pass: up to ``per_template`` distinct samples of each template in rank order
                taken = 0
                for j, perm in enumerate(perms):
                    if drawn.full() or taken == self.per_template:
                        pending.append((template, perms[j:]))
                        break
                    taken += self._try(drawn, q, template, perm, v_learned, matcher)
                if drawn.full():
                    break
            for template, perms in pending:  # then the remaining assignments, templates in rank order
                for perm in perms:
                    if drawn.full():
                        break
                    self._try(drawn, q, template, perm, v_learned, matcher)
            while not drawn.full():
                self.fallbacks_ += 1
                drawn.samples.append(self._random_structure(q.numbers, rng))
                drawn.sources.append(None)
            out.append(drawn.samples)
            self.sources_.append(drawn.sources)
        return out

    def _try(self, drawn: "_Drawn", query: Query, template: int, perm: np.ndarray, v_learned: float | None, matcher: Any) -> bool:
        """Add the candidate ``(template, perm)`` to ``drawn`` unless it repeats a kept one or fails the distance check."""
        built = self._substitute(query, template, perm)
        if matcher is not None and drawn.kept.get(template) and drawn.checks < MAX_CHECKS:
            # another assignment of a template already used: skip it when it is the same structure
            structure = _structure(built)
            drawn.checks += len(drawn.kept[template])
            if any(_same(matcher, structure, other) for other in drawn.kept[template]):
                self.duplicates_ += 1
                return False
        volume = self._volume(self.volume_choice_, query, template, built, v_learned)
        candidate = StructureArrays(built.cell * np.cbrt(volume / abs(np.linalg.det(built.cell))), built.numbers, built.frac_coords)
        if not _distances_ok(candidate, self.min_distance):
            self.dropped_ += 1
            return False
        drawn.samples.append(candidate)
        drawn.sources.append((int(template), tuple(int(j) for j in perm)))
        if matcher is not None:
            drawn.kept.setdefault(template, []).append(_structure(built))
        return True

    # ------------------------------------------------------------------ artifact
    def _state(self) -> dict[str, Any]:
        volume_model = None
        if self._volume_model is not None:
            volume_model = base64.b64encode(bytes(self._volume_model.save_raw(raw_format="ubj"))).decode()
        return {"templates": self.templates_, "shapes": self.shapes_, "volumes": self.volumes_,
                "element_volumes": [None if not np.isfinite(v) else v for v in self.element_volumes_],
                "ranker": self._ranker.state(), "volume_model_ubj_b64": volume_model, "volume_choice": self.volume_choice_,
                "label_choice": self.label_choice_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._check_params()
        self.templates_ = [tuple(t) for t in state["templates"]]
        self.shapes_ = [tuple(x) for x in state["shapes"]]
        self.volumes_ = list(state["volumes"])
        self.element_volumes_ = [np.nan if v is None else float(v) for v in state["element_volumes"]]
        self._library = Library([StructureArrays(np.asarray(c, float), np.asarray(n, np.int64), np.asarray(f, float))
                                 for c, n, f in self.templates_])
        self._ranker = get_ranker(self.ranker, max_pairs=self.max_pairs, workers=self.workers, random_state=self.random_state)
        self._ranker.load(state["ranker"], self._library)
        self._volume_model = None
        if state.get("volume_model_ubj_b64"):
            import xgboost as xgb

            self._volume_model = xgb.Booster(params={"nthread": self.workers})
            self._volume_model.load_model(bytearray(base64.b64decode(state["volume_model_ubj_b64"])))
        self.volume_choice_ = state["volume_choice"]
        self.label_choice_ = state.get("label_choice", "")


class _Drawn:
    """The samples of one query being drawn, their sources, and the kept structures per template (for ``dedupe``)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.samples: list[StructureArrays] = []
        self.sources: list[tuple[int, tuple[int, ...]] | None] = []
        self.kept: dict[int, list[Any]] = {}
        self.checks = 0

    def full(self) -> bool:
        return len(self.samples) >= self.k


# ---------------------------------------------------------------------- helpers (module level: run in worker processes)
def _fit_element_volumes(library: Library) -> np.ndarray:
    """Element volumes (Å³, index Z) with Σ n_Z v_Z ≈ V_cell in relative least squares (non-negative) over the
    library; elements it lacks keep pymatgen's atomic volume times the median fitted/atomic ratio."""
    from scipy.optimize import nnls

    atomic = _tables()[1]
    zs = sorted({int(z) for s in library.structures for z in s.numbers})
    col = {z: i for i, z in enumerate(zs)}
    a = np.zeros((len(library), len(zs)))
    for r, s in enumerate(library.structures):
        for z in np.asarray(s.numbers):
            a[r, col[int(z)]] += 1.0
        a[r] /= abs(np.linalg.det(np.asarray(s.cell, float)))
    fitted, _ = nnls(a, np.ones(len(library)))
    out = np.full(len(atomic), np.nan)
    for z, v in zip(zs, fitted):
        out[z] = v
    known = [z for z in zs if fitted[col[z]] > 0 and np.isfinite(atomic[z]) and atomic[z] > 0]
    ratio = float(np.median([out[z] / atomic[z] for z in known])) if known else 1.0
    missing = ~np.isfinite(out) | (out <= 0)
    out[missing] = atomic[missing] * ratio
    return out


def _fit_volume_model(library: Library, seed: int, threads: int) -> Any:
    """xgboost regression of log(volume per atom) on the standardised descriptors of the library."""
    import xgboost as xgb

    y = np.log([_volume_per_atom(s) for s in library.structures])
    params = {"objective": "reg:squarederror", "max_depth": 6, "eta": 0.05, "subsample": 0.8, "colsample_bytree": 0.5,
              "seed": int(seed), "nthread": int(threads)}
    return xgb.train(params, xgb.DMatrix(library.descriptors, label=y), num_boost_round=400)


def _distance_matrix(s: StructureArrays) -> np.ndarray:
    from pymatgen.core import Lattice

    frac = np.asarray(s.frac_coords, float)
    return Lattice(np.asarray(s.cell, float)).get_all_distances(frac, frac)


def _matcher() -> Any:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from xtalbase.csp.matching import MatchSettings

    m = MatchSettings()
    return StructureMatcher(ltol=m.ltol, stol=m.stol, angle_tol=m.angle_tol, primitive_cell=m.primitive_cell, scale=m.scale)


def _structure(s: StructureArrays) -> Any:
    from xtalbase.csp import validity

    return validity.build_structure(s)


def _same(matcher: Any, a: Any, b: Any) -> bool:
    import warnings

    if a is None or b is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bool(matcher.fit(a, b))
        except Exception:  # noqa: BLE001 - undecided: keep both
            return False


def _distances_ok(s: StructureArrays, min_distance: float) -> bool:
    if len(s.numbers) < 2:
        return True
    d = _distance_matrix(s) + np.eye(len(s.numbers)) * (min_distance + 10.0)
    return bool(d.min() >= min_distance)


def _map(fn: Any, items: Sequence[Any], workers: int) -> list[Any]:
    """``fn`` over chunks of ``items`` (in ``workers`` processes when more than one), flattened in order."""
    chunks = [list(items[i:i + CHUNK]) for i in range(0, len(items), CHUNK)]
    if workers <= 1 or len(chunks) <= 1:
        return [x for c in chunks for x in fn(c)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [x for part in pool.map(fn, chunks) for x in part]


def _crystalnn_rows(structures: list[StructureArrays]) -> list[np.ndarray]:
    import warnings

    from xtalbase.descriptors.structural import structural_preset

    recipe = structural_preset("crystalnn")
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in structures:
            try:
                out.append(recipe.transform([s])[0])
            except Exception:  # noqa: BLE001 - a failed fingerprint: NaN, so the pair is labelled "not the same"
                out.append(np.full(len(recipe.names()), np.nan))
    return out


def _matches(jobs: list[tuple[StructureArrays, StructureArrays]]) -> list[bool]:

    matcher = _matcher()
    return [_same(matcher, _structure(candidate), _structure(reference)) for candidate, reference in jobs]
