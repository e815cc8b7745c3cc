"""Surrogate structures that contain the motifs a training set lacks: prototype generators, candidates, scores.

Generators build each prototype from its space group and Wyckoff positions with ASE (``ase.build.bulk`` where
it has the structure, ``ase.spacegroup.crystal`` otherwise); the only typed numbers are the published free
Wyckoff parameters of C14 MgZn₂ and σ-FeCr. ``a`` is the first lattice parameter; other lengths keep the
prototype's ratios. A candidate is (prototype, elements per sublattice, ``a``, strain, displacement).

Scoring is vectorised over the lattice scan: a base structure (everything but ``a``) is built once at the
smallest ``a``; its distances scale with ``a`` and its angles do not, so every scale is scored from one
neighbour list::

    Score = Σ_m N_m · S(m) / N_atoms − P_dist − P_energy
    P_dist = Σ_pairs 50 · max(0, d_min − d)²,  d_min = 0.85 · (r_cov,i + r_cov,j)   (ASE's covalent radii)
    P_energy = 50 · max(0, E_atom)

``E_atom`` is a formation-type energy per atom, ``(E − Σ_e n_e μ_e) / N``, from an energy function the caller
chooses (the current potential or the oracle, with μ_e its elemental references); it is evaluated for the best
``energy_top`` candidates of the first stage only, since it costs a calculation per candidate.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
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
#: Candidates whose shortest distance is below this fraction of its d_min are rejected unscored (score -inf).
REJECT_FRACTION = 0.7


@dataclass(frozen=True)
class Prototype:
    """A structure type: its space group, number of sublattices and builder ``(elements, a) -> Atoms``."""

    name: str
    spacegroup: int
    sublattices: int
    build: Callable[[Sequence[str], float], "Atoms"]


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
    """One surrogate: prototype, elements per sublattice, ``a`` (Å), Voigt strain, displacement (Å) and its seed."""

    prototype: str
    elements: tuple[str, ...]
    a: float
    strain: tuple[float, ...] = (0.0,) * 6
    displacement: float = 0.0
    seed: int = 0

    def build(self, a: float | None = None) -> "Atoms":
        """The structure (at ``a`` when given, else the candidate's own)."""
        atoms = PROTOTYPES[self.prototype].build(self.elements, float(a if a is not None else self.a))
        return _deform(atoms, self.strain, self.displacement, self.seed)

    def params(self) -> dict[str, Any]:
        """JSON-ready generator parameters (stored with the dataset member)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


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


def assignments(prototype: str, elements: Sequence[str]) -> list[tuple[str, ...]]:
    """Every assignment of ``elements`` to the prototype's sublattices (repeats allowed)."""
    proto = PROTOTYPES[prototype]
    return list(itertools.product(sorted(elements), repeat=proto.sublattices))


def enumerate_candidates(elements: Sequence[str], *, prototypes: Iterable[str] | None = None,
                         a_values: Sequence[float] | None = None, strains: Sequence[Sequence[float]] | None = None,
                         displacements: Sequence[float] = (0.0, 0.05), seed: int = 0) -> list[Candidate]:
    """Every (prototype, assignment, a, strain, displacement) over the lattice scan 2.5–7.0 Å by default."""
    names = list(prototypes or PROTOTYPES)
    unknown = [n for n in names if n not in PROTOTYPES]
    if unknown:
        raise XtalbaseError(f"unknown prototype(s) {unknown}; choose from {', '.join(PROTOTYPES)}")
    a_values = list(a_values) if a_values is not None else list(np.round(np.arange(A_RANGE[0], A_RANGE[1] + 1e-9, 0.25), 4))
    strains = [tuple(s) for s in strains] if strains is not None else [
        (0.0,) * 6, (0.03, 0, 0, 0, 0, 0), (-0.03, 0, 0, 0, 0, 0), (0, 0, 0, 0.04, 0, 0)]
    out = []
    for name in names:
        for assign in assignments(name, elements):
            for strain in strains:
                for k, disp in enumerate(displacements):
                    out += [Candidate(name, assign, float(a), tuple(float(x) for x in strain), float(disp), seed + k)
                            for a in a_values]
    return out


def d_min(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
    """Shortest allowed distance 0.85 (r_cov,i + r_cov,j) (Å) for atomic numbers."""
    from ase.data import covalent_radii

    return D_MIN_FACTOR * (covalent_radii[z1] + covalent_radii[z2])


def score_candidates(candidates: Sequence[Candidate], motif_scores: dict[str, np.ndarray], gap: dict[str, "Histogram"],
                     rc: float, *, energy: Callable[["Atoms"], float] | None = None, energy_top: int = 50
                     ) -> np.ndarray:
    """``Score`` of every candidate (see the module docstring); one neighbour list per base structure."""
    from xtalbase.mlip.acsf import element_symbols
    from xtalbase.mlip.coverage import angle_table

    scores = np.full(len(candidates), -np.inf)
    groups: dict[tuple, list[int]] = {}
    for k, c in enumerate(candidates):
        groups.setdefault((c.prototype, c.elements, c.strain, c.displacement, c.seed), []).append(k)
    for members in groups.values():
        members = _physical(candidates, members)
        if not members:
            continue
        a_ref = min(candidates[k].a for k in members)
        atoms = candidates[members[0]].build(a_ref)
        scale = np.array([candidates[k].a / a_ref for k in members])
        i, j, vec, dist = _pairs(atoms, rc)
        motif = np.zeros(len(members))
        sym = element_symbols(atoms.numbers)
        pair_keys = np.array(["-".join(sorted(p)) for p in zip(sym[i], sym[j])])
        for key in np.unique(pair_keys):
            if key in gap:
                scaled = np.outer(scale, dist[pair_keys == key])
                motif += (_bin_weights(gap[key], motif_scores[key], scaled) * (scaled < rc)).sum(axis=1)
        for key, (_, theta, reach) in angle_table(atoms.numbers, i, j, vec, dist).items():
            if key in gap:
                # an angle counts while both of its distances stay within rc
                motif += (np.outer(scale, reach) < rc) @ _bin_weights(gap[key], motif_scores[key], theta)
        short = np.maximum(0.0, d_min(atoms.numbers[i], atoms.numbers[j])[None, :] - np.outer(scale, dist))
        # ordered pairs count each pair twice
        scores[members] = motif / len(atoms) - 0.5 * DIST_WEIGHT * (short ** 2).sum(axis=1)
    if energy is not None and energy_top > 0:
        top = np.argsort(-scores, kind="stable")[:energy_top]
        for k in top:
            if np.isfinite(scores[k]):
                scores[k] -= ENERGY_WEIGHT * max(0.0, float(energy(candidates[k].build())))
    return scores


def _pairs(atoms: "Atoms", rc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, vector, distance)`` of every ordered pair within ``rc``."""
    from xtalbase.mlip.acsf import neighbor_pairs

    i, j, shifts = neighbor_pairs(atoms.numbers, atoms.positions, np.asarray(atoms.cell), True, rc)
    vec = atoms.positions[j] - atoms.positions[i] + shifts @ np.asarray(atoms.cell)
    return i, j, vec, np.linalg.norm(vec, axis=1)


def _bin_weights(hist: "Histogram", scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``S(m)`` of the bin each value falls in (0 outside the histogram)."""
    bins = np.searchsorted(hist.edges, values, side="right") - 1
    inside = (bins >= 0) & (bins < len(scores))
    return np.where(inside, scores[np.clip(bins, 0, len(scores) - 1)], 0.0)


def _physical(candidates: Sequence[Candidate], members: list[int]) -> list[int]:
    """The members whose shortest distance reaches :data:`REJECT_FRACTION` of its ``d_min``.

    Far shorter distances would get a huge ``P_dist`` anyway; dropping them first also bounds the neighbour
    lists (a 30-atom σ cell at a = 2.5 Å has thousands of neighbours per atom within 5 Å).
    """
    a_max = max(candidates[k].a for k in members)
    atoms = candidates[members[0]].build(a_max)
    i, j, _, dist = _pairs(atoms, 1.05 * a_max)
    if len(i) == 0:
        return members
    ratio = float(np.min(dist / d_min(atoms.numbers[i], atoms.numbers[j])))
    return [k for k in members if ratio * candidates[k].a / a_max >= REJECT_FRACTION]


def select(candidates: Sequence[Candidate], scores: np.ndarray, n: int) -> list[tuple[Candidate, float]]:
    """The ``n`` best candidates with a finite, positive score (ties by generator order)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    picked = [(candidates[k], float(scores[k])) for k in order if np.isfinite(scores[k]) and scores[k] > 0]
    return picked[:n]
