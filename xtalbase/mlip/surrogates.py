"""Surrogate structures that contain the motifs a training set lacks: prototype generators, candidates, scores.

Generators build each prototype from its space group and Wyckoff positions with ASE (``ase.build.bulk`` where
it has the structure, ``ase.spacegroup.crystal`` otherwise); the only typed numbers are the published free
Wyckoff parameters of C14 MgZn₂ and σ-FeCr. ``a`` is the first lattice parameter; other lengths keep the
prototype's ratios. A candidate is (prototype, elements per sublattice, ``a``, strain, displacement).
Random displacements are relative: Gaussian with σ = ``displacement``·a (0.0125 is 0.05 Å at a = 4 Å), so a
candidate's shape does not depend on ``a`` and the lattice scan of one geometry is an exact scaling.

Scoring is vectorised over the lattice scan: a base structure (everything but ``a``) is built once at the
smallest ``a``; its distances scale with ``a`` and its angles do not, so every scale is scored from one
neighbour list::

    Score = Σ_m N_m · S(m) / N_atoms − P_dist − P_energy
    P_dist = Σ_pairs 50 · max(0, d_min − d)²,  d_min = 0.85 · (r_cov,i + r_cov,j)   (ASE's covalent radii)
    P_energy = 50 · max(0, E_atom)

``E_atom`` is a formation-type energy per atom, ``(E − Σ_e n_e μ_e) / N``, from an energy function the caller
chooses (the current potential or the oracle, with μ_e its elemental references). It costs a calculation per
candidate, so it is computed lazily (:func:`penalise_energy`): only for candidates that reach the best
``energy_top``, until those all include it. The covalent-radius ``d_min`` allows compressions to about 70 % of
metallic bond lengths, several eV/atom above equilibrium; the energy penalty is what keeps such cells out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    from ase import Atoms

    from xtalbase.mlip.coverage import Histogram

A_RANGE = (2.5, 7.0)
DIST_WEIGHT = 50.0
ENERGY_WEIGHT = 50.0
D_MIN_FACTOR = 0.85
#: Lattice scan of a template, as factors of its own first lattice length.
TEMPLATE_SCALES = (0.94, 0.97, 1.0, 1.03, 1.06)
#: Candidates whose shortest distance is below this fraction of its d_min are rejected unscored (score -inf).
REJECT_FRACTION = 0.8


@dataclass(frozen=True)
class Prototype:
    """A structure type: its space group, number of sublattices and builder ``(elements, a) -> Atoms``."""

    name: str
    spacegroup: int
    sublattices: int
    build: Callable[[Sequence[str], float], "Atoms"]
    #: a template's own first lattice length (Å); its scan is relative to it (:data:`TEMPLATE_SCALES`)
    a0: float | None = None


def _bulk(kind: str, ratio: float | None = None) -> Callable[[Sequence[str], float], "Atoms"]:
    def build(elements: Sequence[str], a: float) -> "Atoms":
        from ase.build import bulk

        name = "".join(elements)
        if kind == "hcp":
            return bulk(name, "hcp", a=a, c=a * (ratio or 1.633))
        return bulk(name, kind, a=a, cubic=kind in ("fcc", "bcc", "diamond", "rocksalt", "zincblende"))
    return build


def _wyckoff(spacegroup: int, sites: Sequence[tuple[float, float, float]], ratios: tuple[float, float] = (1.0, 1.0),
             gamma: float = 90.0, order: Sequence[int] | None = None) -> Callable[[Sequence[str], float], "Atoms"]:
    """A builder placing element ``order[k]`` of the assignment on Wyckoff site ``k``."""
    def build(elements: Sequence[str], a: float) -> "Atoms":
        from ase.spacegroup import crystal

        symbols = [elements[k] for k in (order or range(len(sites)))]
        return crystal(symbols, list(sites), spacegroup=spacegroup,
                       cellpar=[a, a * ratios[0], a * ratios[1], 90, 90, gamma], primitive_cell=False)
    return build


#: The generators. Sublattice order: the assignment's k-th element goes to the k-th sublattice listed.
PROTOTYPES: dict[str, Prototype] = {p.name: p for p in (
    Prototype("fcc", 225, 1, _bulk("fcc")),
    Prototype("bcc", 229, 1, _bulk("bcc")),
    Prototype("hcp", 194, 1, _bulk("hcp")),
    Prototype("diamond", 227, 1, _bulk("diamond")),
    Prototype("rocksalt", 225, 2, _bulk("rocksalt")),
    Prototype("cscl", 221, 2, _bulk("cesiumchloride")),
    Prototype("zincblende", 216, 2, _bulk("zincblende")),
    # L1₂ Cu₃Au: A on 1a, B on 3c
    Prototype("L1_2", 221, 2, _wyckoff(221, [(0, 0, 0), (0, 0.5, 0.5)])),
    # L1₀ CuAu in its P4/mmm cell: A on 1a, B on 1d; c = a·√2 for the fcc-derived ratio
    Prototype("L1_0", 123, 2, _wyckoff(123, [(0, 0, 0), (0.5, 0.5, 0.5)], ratios=(1.0, 2 ** 0.5))),
    # full Heusler L2₁ X₂YZ: X on 8c, Y on 4a, Z on 4b
    Prototype("heusler", 225, 3, _wyckoff(225, [(0.25, 0.25, 0.25), (0, 0, 0), (0.5, 0.5, 0.5)])),
    # half-Heusler C1b XYZ: X on 4a, Y on 4c, Z on 4b
    Prototype("half_heusler", 216, 3, _wyckoff(216, [(0, 0, 0), (0.25, 0.25, 0.25), (0.5, 0.5, 0.5)])),
    # C14 MgZn₂: A on 4f (z = 0.0629), B on 2a and 6h (x = 0.8305); c/a = 1.642
    Prototype("C14", 194, 2, _wyckoff(194, [(1 / 3, 2 / 3, 0.0629), (0, 0, 0), (0.8305, 0.6610, 0.25)],
                                      ratios=(1.0, 1.642), gamma=120.0, order=[0, 1, 1])),
    # σ-FeCr (P4₂/mnm): 2a, 4f, 8i, 8i', 8j as five sublattices; c/a = 0.518
    Prototype("sigma", 136, 5, _wyckoff(136, [(0, 0, 0), (0.3986, 0.3986, 0), (0.4632, 0.1316, 0),
                                              (0.7376, 0.0653, 0), (0.1823, 0.1823, 0.2524)], ratios=(1.0, 0.518))),
)}


@dataclass(frozen=True)
class Candidate:
    """One surrogate: prototype, elements per sublattice, ``a`` (Å), Voigt strain, displacement (σ as a fraction of
    ``a``) and its seed."""

    prototype: str
    elements: tuple[str, ...]
    a: float
    strain: tuple[float, ...] = (0.0,) * 6
    displacement: float = 0.0
    seed: int = 0
    #: the generator when it is not one of :data:`PROTOTYPES` (a stored structure used as a template)
    template: Prototype | None = field(default=None, compare=False, repr=False)

    def build(self, a: float | None = None) -> "Atoms":
        """The structure (at ``a`` when given, else the candidate's own)."""
        proto = self.template or PROTOTYPES[self.prototype]
        a = float(a if a is not None else self.a)
        return _deform(proto.build(self.elements, a), self.strain, self.displacement * a, self.seed)

    def params(self) -> dict[str, Any]:
        """JSON-ready generator parameters (stored with the dataset member)."""
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in fields(self) if f.name != "template" for v in [getattr(self, f.name)]}

    def label(self) -> str:
        """A short description: ``L1_2 Al-Al-Al-Pt a=3.75 strain=(0.03,0,0,0,0,0) disp=0.05 seed=1``."""
        strain = ",".join(f"{x:g}" for x in self.strain)
        return (f"{self.prototype} {'-'.join(self.elements)} a={self.a:g} strain=({strain}) "
                f"disp={self.displacement:g} seed={self.seed}")


def template_prototype(name: str, atoms: "Atoms") -> Prototype:
    """A generator from a stored structure: its k-th distinct element (first-seen order) becomes sublattice k
    and the cell is scaled so that its first lattice vector is ``a`` long."""
    symbols = atoms.get_chemical_symbols()
    distinct = list(dict.fromkeys(symbols))
    length = float(np.linalg.norm(atoms.cell[0]))
    base = atoms.copy()
    base.calc = None

    def build(elements: Sequence[str], a: float) -> "Atoms":
        out = base.copy()
        out.set_chemical_symbols([elements[distinct.index(x)] for x in symbols])
        out.set_cell(np.asarray(out.cell) * (a / length), scale_atoms=True)
        return out
    return Prototype(name, 0, len(distinct), build, a0=length)


def _deform(atoms: "Atoms", strain: Sequence[float], displacement: float, seed: int) -> "Atoms":
    from ase.stress import voigt_6_to_full_3x3_strain

    if any(strain):
        eps = voigt_6_to_full_3x3_strain(np.asarray(strain, dtype=float))
        atoms.set_cell(np.asarray(atoms.cell) @ eps, scale_atoms=True)
    if displacement:
        rng = np.random.default_rng(seed)
        atoms.positions = atoms.positions + rng.normal(scale=displacement, size=(len(atoms), 3))
    atoms.wrap()
    return atoms


def assignments(prototype: str | Prototype, elements: Sequence[str]) -> list[tuple[str, ...]]:
    """Every assignment of ``elements`` to the prototype's sublattices (repeats allowed)."""
    proto = PROTOTYPES[prototype] if isinstance(prototype, str) else prototype
    return list(itertools.product(sorted(elements), repeat=proto.sublattices))


def enumerate_candidates(elements: Sequence[str], *, prototypes: Iterable[str] | None = None,
                         a_values: Sequence[float] | None = None, strains: Sequence[Sequence[float]] | None = None,
                         displacements: Sequence[float] = (0.0, 0.0125), seed: int = 0,
                         templates: Sequence[Prototype] = ()) -> list[Candidate]:
    """Every (prototype, assignment, a, strain, displacement) over the lattice scan 2.5–7.0 Å by default.

    ``templates`` (from :func:`template_prototype`) add stored structures as generators, scanned over
    :data:`TEMPLATE_SCALES` of their own length instead.
    """
    names = list(PROTOTYPES) if prototypes is None else list(prototypes)
    unknown = [n for n in names if n not in PROTOTYPES]
    if unknown:
        raise XtalbaseError(f"unknown prototype(s) {unknown}; choose from {', '.join(PROTOTYPES)}")
    a_values = list(a_values) if a_values is not None else list(np.round(np.arange(A_RANGE[0], A_RANGE[1] + 1e-9, 0.25), 4))
    strains = [tuple(s) for s in strains] if strains is not None else [
        (0.0,) * 6, (0.03, 0, 0, 0, 0, 0), (-0.03, 0, 0, 0, 0, 0), (0, 0, 0, 0.04, 0, 0)]
    generators = [(PROTOTYPES[n], a_values) for n in names]
    generators += [(t, [round(float(t.a0 or 1.0) * f, 4) for f in TEMPLATE_SCALES]) for t in templates]
    out = []
    for proto, scan in generators:
        template = proto if proto.name not in PROTOTYPES else None
        for assign in assignments(proto, elements):
            for strain in strains:
                for k, disp in enumerate(displacements):
                    out += [Candidate(proto.name, assign, float(a), tuple(float(x) for x in strain), float(disp),
                                      seed + k, template) for a in scan]
    return out


def d_min(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
    """Shortest allowed distance 0.85 (r_cov,i + r_cov,j) (Å) for atomic numbers."""
    from ase.data import covalent_radii

    return D_MIN_FACTOR * (covalent_radii[z1] + covalent_radii[z2])


def score_candidates(candidates: Sequence[Candidate], motif_scores: dict[str, np.ndarray], gap: dict[str, "Histogram"],
                     rc: float, *, rc_angle: float | None = None, energy: Callable[["Atoms"], float] | None = None,
                     energy_top: int = 20, energy_budget: int = 500) -> np.ndarray:
    """``Score`` of every candidate (see the module docstring); angles within ``rc_angle`` as in
    :func:`xtalbase.mlip.coverage.local_environments`.

    The geometry of a (prototype, strain, displacement, seed) does not depend on which elements sit on its
    sublattices, nor (but for a scale) on ``a``: one neighbour list per geometry serves every assignment and
    lattice parameter, and bin weights are looked up once per (sublattice pair, element pair).
    """
    scores = np.full(len(candidates), -np.inf)
    groups: dict[tuple, list[int]] = {}
    for k, c in enumerate(candidates):
        groups.setdefault((c.prototype, c.strain, c.displacement, c.seed), []).append(k)
    for members in groups.values():
        _Geometry(candidates, members, rc, rc_angle).score(motif_scores, gap, scores)
    if energy is not None and energy_top > 0:
        penalise_energy(candidates, scores, energy, energy_top, energy_budget)
    return scores


def penalise_energy(candidates: Sequence[Candidate], scores: np.ndarray, energy: Callable[["Atoms"], float], top: int,
                    budget: int) -> int:
    """Subtract ``P_energy`` in place, lazily, until the best ``top`` scores all include it; returns the number
    of energy calls.

    The penalty only lowers a score, so a candidate never evaluated cannot overtake one that was: repeatedly
    evaluating the current best ``top`` gives exactly the ranking with every penalty applied, at the cost of
    the candidates that enter the head (compressed cells with a large ``E_atom`` fall out of it). After
    ``budget`` calls it stops and the head may hold candidates whose energy was not computed.
    """
    done = np.zeros(len(scores), dtype=bool)
    calls = 0
    while calls < budget:
        head = [int(k) for k in np.argsort(-scores, kind="stable")[:top] if np.isfinite(scores[k])]
        pending = [k for k in head if not done[k]][:max(1, budget - calls)]
        if not pending:
            break
        for k in pending:
            scores[k] -= ENERGY_WEIGHT * max(0.0, float(energy(candidates[k].build())))
            done[k] = True
        calls += len(pending)
    return calls


#: Stand-in elements that mark the sublattices while a geometry is built (any distinct elements would do).
_MARKERS = ("Cu", "Au", "Ag", "Pd", "Pt", "Ni", "Al", "Rh")


class _Geometry:
    """One (prototype, strain, displacement, seed): sublattice of each atom, pairs and angles at one ``a``."""

    def __init__(self, candidates: Sequence[Candidate], members: list[int], rc: float, rc_angle: float | None) -> None:
        from ase.data import atomic_numbers, covalent_radii

        from xtalbase.mlip.coverage import angle_cutoff

        self.candidates, self.rc, self.rc_angle = candidates, rc, angle_cutoff(rc, rc_angle)
        first = candidates[members[0]]
        proto = first.template or PROTOTYPES[first.prototype]
        self.n_sub = proto.sublattices
        if self.n_sub > len(_MARKERS):
            raise XtalbaseError(f"prototype {first.prototype!r} has more than {len(_MARKERS)} sublattices")
        markers = _MARKERS[:self.n_sub]
        # assignments seen in this group, their member indices and a per-sublattice covalent radius table
        self.assignments: dict[tuple[str, ...], list[int]] = {}
        for k in members:
            self.assignments.setdefault(candidates[k].elements, []).append(k)
        self.radius = {el: covalent_radii[atomic_numbers[el]] for a in self.assignments for el in a}
        a_max = max(candidates[k].a for k in members)
        probe = Candidate(first.prototype, markers, a_max, first.strain, first.displacement, first.seed, first.template).build()
        self.sub = np.array([markers.index(x) for x in probe.get_chemical_symbols()])
        i, j, _, dist = _pairs(probe, 1.05 * a_max)
        # shortest distance per sublattice pair at scale a / a_max: decides which (assignment, a) are physical
        self.shortest = np.full((self.n_sub, self.n_sub), np.inf)
        np.minimum.at(self.shortest, (self.sub[i], self.sub[j]), dist / a_max)
        allowed = [k for k in members if self._ratio(candidates[k].elements) * candidates[k].a >= REJECT_FRACTION]
        self.members = allowed
        if not allowed:
            return
        self.a_ref = min(candidates[k].a for k in allowed)
        #: every a / a_ref of the group, sorted: pair weights are looked up once per scale
        self.scales = np.unique([candidates[k].a / self.a_ref for k in allowed])
        atoms = Candidate(first.prototype, markers, self.a_ref, first.strain, first.displacement, first.seed,
                          first.template).build()
        self.n_atoms = len(atoms)
        self.i, self.j, vec, self.dist = _pairs(atoms, rc)
        self.pair_code = self.sub[self.i] * self.n_sub + self.sub[self.j]
        from xtalbase.descriptors.structural import neighbour_pairs_of_centres

        near = np.flatnonzero(self.dist < self.rc_angle)  # scales >= 1 only shrink this set
        p, q = neighbour_pairs_of_centres(self.i[near])
        p, q = near[p], near[q]
        u = vec / self.dist[:, None]
        self.theta = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", u[p], u[q]), -1.0, 1.0)))
        self.reach = np.maximum(self.dist[p], self.dist[q])
        sj, sk = self.sub[self.j[p]], self.sub[self.j[q]]
        codes = (self.sub[self.i[p]] * self.n_sub + np.minimum(sj, sk)) * self.n_sub + np.maximum(sj, sk)
        self.angle_groups = {int(c): np.flatnonzero(codes == c) for c in np.unique(codes)}

    def _ratio(self, elements: tuple[str, ...]) -> float:
        """min over sublattice pairs of (shortest distance at a = 1) / d_min for this assignment."""
        r = np.array([self.radius[e] for e in elements])
        dmin = D_MIN_FACTOR * (r[:, None] + r[None, :])
        return float(np.min(self.shortest / dmin))

    def score(self, motif_scores: dict[str, np.ndarray], gap: dict[str, "Histogram"], out: np.ndarray) -> None:
        """Write the score of every physical member into ``out``."""
        if not self.members:
            return
        allowed = set(self.members)
        pair_cache: dict[tuple[int, str], np.ndarray] = {}
        angle_cache: dict[tuple[int, str], np.ndarray] = {}
        pair_groups = {int(c): np.flatnonzero(self.pair_code == c) for c in np.unique(self.pair_code)}
        for elements, ks in self.assignments.items():
            ks = [k for k in ks if k in allowed]
            if not ks:
                continue
            scale = np.array([self.candidates[k].a / self.a_ref for k in ks])
            motif = np.zeros(len(ks))
            for code, idx in pair_groups.items():
                key = "-".join(sorted((elements[code // self.n_sub], elements[code % self.n_sub])))
                if key not in gap:
                    continue
                scaled = np.outer(scale, self.dist[idx])
                cache_key = (code, key)
                if cache_key not in pair_cache:  # same for every assignment putting this pair type here
                    pair_cache[cache_key] = _bin_weights(gap[key], motif_scores[key], np.outer(self.scales, self.dist[idx]))
                weights = pair_cache[cache_key][np.searchsorted(self.scales, scale)]
                motif += (weights * (scaled < self.rc)).sum(axis=1)
            if len(self.theta):
                w = np.zeros(len(self.theta))
                for code, idx in self.angle_groups.items():
                    c, x, y = code // (self.n_sub ** 2), code // self.n_sub % self.n_sub, code % self.n_sub
                    lo, hi = sorted((elements[x], elements[y]))
                    key = f"{elements[c]}:{lo}-{hi}"
                    if key not in gap:
                        continue
                    if (code, key) not in angle_cache:
                        angle_cache[(code, key)] = _bin_weights(gap[key], motif_scores[key], self.theta[idx])
                    w[idx] = angle_cache[(code, key)]
                # an angle counts while both of its distances stay within rc_angle
                motif += (np.outer(scale, self.reach) < self.rc_angle) @ w
            r = np.array([self.radius[e] for e in elements])
            dmin = D_MIN_FACTOR * (r[self.sub[self.i]] + r[self.sub[self.j]])
            short = np.maximum(0.0, dmin[None, :] - np.outer(scale, self.dist))
            # ordered pairs count each pair twice
            out[ks] = motif / self.n_atoms - 0.5 * DIST_WEIGHT * (short ** 2).sum(axis=1)


@dataclass
class PoolTable:
    """Stored structures' motif counts per bin (``counts[k][type]``), atom counts and distance penalties, so a pool
    is rescored under new motif scores with one dot product per type."""

    counts: list[dict[str, np.ndarray]]
    n_atoms: np.ndarray
    p_dist: np.ndarray

    def scores(self, motif_scores: dict[str, np.ndarray]) -> np.ndarray:
        """``Σ_m N_m S(m) / N_atoms − P_dist`` of every structure."""
        motif = np.array([sum(float(c @ motif_scores[key]) for key, c in counts.items() if key in motif_scores)
                          for counts in self.counts])
        return motif / self.n_atoms - self.p_dist


def pool_table(structures: Sequence["Atoms"], gap: dict[str, "Histogram"], rc: float, rc_angle: float | None = None
               ) -> PoolTable:
    """The :class:`PoolTable` of ``structures`` over the bins of ``gap`` (values outside the bins are not counted)."""
    from xtalbase.mlip.coverage import local_environments

    counts, p_dist = [], []
    for atoms in structures:
        env = local_environments(atoms.numbers, atoms.positions, np.asarray(atoms.cell), True, rc, True, rc_angle)
        row = {}
        for key, values in env.values.items():
            if key in gap:
                bins = np.searchsorted(gap[key].edges, values, side="right") - 1
                n_bins = len(gap[key].edges) - 1
                row[key] = np.bincount(bins[(bins >= 0) & (bins < n_bins)], minlength=n_bins).astype(float)
        counts.append(row)
        i, j, _, dist = _pairs(atoms, rc)
        short = np.maximum(0.0, d_min(atoms.numbers[i], atoms.numbers[j]) - dist)
        p_dist.append(0.5 * DIST_WEIGHT * float((short ** 2).sum()))
    return PoolTable(counts, np.array([len(a) for a in structures], dtype=float), np.array(p_dist))


def score_structures(structures: Sequence["Atoms"], motif_scores: dict[str, np.ndarray], gap: dict[str, "Histogram"],
                     rc: float, rc_angle: float | None = None) -> np.ndarray:
    """``Σ_m N_m S(m) / N_atoms − P_dist`` of given structures (a pool of stored ones, no lattice scan)."""
    return pool_table(structures, gap, rc, rc_angle).scores(motif_scores)


def _pairs(atoms: "Atoms", rc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, vector, distance)`` of every ordered pair within ``rc`` of a periodic cell."""
    from xtalbase.mlip.coverage import pair_vectors

    return pair_vectors(atoms.numbers, atoms.positions, np.asarray(atoms.cell), True, rc)


def _bin_weights(hist: "Histogram", scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``S(m)`` of the bin each value falls in (0 outside the histogram)."""
    bins = np.searchsorted(hist.edges, values, side="right") - 1
    inside = (bins >= 0) & (bins < len(scores))
    return np.where(inside, scores[np.clip(bins, 0, len(scores) - 1)], 0.0)


def select(candidates: Sequence[Candidate], scores: np.ndarray, n: int) -> list[tuple[Candidate, float]]:
    """The ``n`` best candidates with a finite, positive score (ties by generator order)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    picked = [(candidates[k], float(scores[k])) for k in order if np.isfinite(scores[k]) and scores[k] > 0]
    return picked[:n]
