"""Where the training data does not cover the target: distance and angle distributions, their gap, motif scores.

1. For every element pair, the distances within ``rc`` (an RDF-like histogram); for every (centre; neighbour
   pair) triplet type, the angles θ_jik of neighbour pairs j < k both within ``rc_angle`` (an ADF-like
   histogram). ``rc_angle`` defaults to :data:`ANGLE_CUTOFF`: angles to far neighbours are many (their
   number grows as the square of the neighbour count) and say little, and counting them made compressed
   cells, which pack more neighbours within a cutoff, win any motif score.
2. Bin widths by the Shimazaki–Shinomoto rule on the pooled training + target values of each type, so both
   share the same edges: minimise ``C(Δ) = (2 k̄ - v) / Δ²`` over the number of bins, with k̄ and v the mean
   and biased variance of the bin counts (numpy has no such estimator). Ties go to the fewer bins.
3. Normalised densities ``d``: the fraction of a type's values in each bin (counts / total, summing to 1);
   the gap of bin m is ``Δ(m) = d_target(m) - d_train(m)``, kept where positive (else 0). Fractions rather
   than densities per Å keep S(m) independent of the bin width, which for sharp crystalline peaks is
   10⁻³ Å and would otherwise make S thousands of times larger than the distance and energy penalties.
4. Motif scores (a motif is one bin of one type): ``key-motif`` S(m) = Σ over outlier atoms Σ over their
   distances/angles 𝟙(in m)·Δ(m); ``gap`` S(m) = Δ(m); ``outlier`` S(m) = count of outlier atoms'
   distances/angles in m; ``random`` seeded uniform scores. The key-motif and outlier sums are divided by
   the number of outlier atoms (a mean per outlier atom): the same ranking of motifs, on a scale that does not
   grow with the target's size, so that the candidate score's fixed penalty weights keep their meaning.

Distances are counted from each centre atom (ordered pairs), which leaves normalised densities unchanged and
gives each atom its own environment for the outlier-based scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from xtalbase.descriptors.structural import neighbour_pairs_of_centres
from xtalbase.errors import XtalbaseError
from xtalbase.mlip.acsf import element_symbols

STRATEGIES = ("key-motif", "gap", "outlier", "random")
#: Default cutoff (Å) of the angle distributions: the first neighbour shell of metals and alloys (and the
#: second of bcc), where the angles that tell structures apart are.
ANGLE_CUTOFF = 3.5
#: Most bins the Shimazaki–Shinomoto search tries per type.
MAX_BINS = 400
#: Narrowest bin (Å or degrees): below it differences are numerical noise.
MIN_WIDTH = 1e-4


def shimazaki_shinomoto(values: np.ndarray, lo: float | None = None, hi: float | None = None,
                        max_bins: int = MAX_BINS) -> np.ndarray:
    """Bin edges over ``[lo, hi]`` (default: the data range) minimising ``C(Δ) = (2k̄ - v)/Δ²``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise XtalbaseError("no values to bin")
    lo = float(values.min()) if lo is None else float(lo)
    hi = float(values.max()) if hi is None else float(hi)
    if hi - lo < MIN_WIDTH:
        # identical values (a perfect crystal): one bin of the smallest width around them
        centre = 0.5 * (lo + hi)
        return np.array([centre - MIN_WIDTH / 2, centre + MIN_WIDTH / 2])
    best_cost, best_n = np.inf, 1
    for n in range(1, max(1, min(max_bins, len(values), int((hi - lo) / MIN_WIDTH))) + 1):
        counts, _ = np.histogram(values, bins=n, range=(lo, hi))
        width = (hi - lo) / n
        cost = (2.0 * counts.mean() - counts.var()) / width ** 2
        if cost < best_cost - 1e-12 * abs(best_cost if np.isfinite(best_cost) else 1.0):
            best_cost, best_n = cost, n
    return np.linspace(lo, hi, best_n + 1)


@dataclass
class Environments:
    """Per type (``"Fe-Pt"`` for pairs, ``"Pt:Al-Fe"`` for triplets): centre atom index and value (Å or degrees)."""

    atoms: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, key: str, atoms: np.ndarray, values: np.ndarray) -> None:
        """Append values of one type."""
        if key in self.values:
            self.atoms[key] = np.concatenate([self.atoms[key], atoms])
            self.values[key] = np.concatenate([self.values[key], values])
        else:
            self.atoms[key], self.values[key] = np.asarray(atoms), np.asarray(values, dtype=float)


def pair_vectors(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: Any, rc: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, vector, distance)`` of every ordered pair within ``rc`` (Å)."""
    from xtalbase.mlip.acsf import neighbor_pairs

    pos = np.asarray(positions, dtype=float)
    i, j, shifts = neighbor_pairs(np.asarray(numbers), pos, np.asarray(cell, float), pbc, rc)
    vec = pos[j] - pos[i] + shifts @ np.asarray(cell, dtype=float)
    return i, j, vec, np.linalg.norm(vec, axis=1)


def local_environments(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: Any, rc: float,
                       angles: bool = True, rc_angle: float | None = None) -> Environments:
    """Distances (Å) of every ordered pair within ``rc`` and angles (degrees) of every neighbour pair j < k
    within ``rc_angle`` (default ``min(rc, ANGLE_CUTOFF)``)."""
    i, j, vec, dist = pair_vectors(numbers, positions, cell, pbc, rc)
    sym = element_symbols(numbers)
    env = Environments()
    pair_keys = np.array(["-".join(sorted((a, b))) for a, b in zip(sym[i], sym[j])]) if len(i) else np.array([], dtype=str)
    for key in np.unique(pair_keys):
        sel = pair_keys == key
        env.add(str(key), i[sel], dist[sel])
    near = dist < angle_cutoff(rc, rc_angle)
    if angles and near.any():
        for key, (centres, theta, _) in angle_table(np.asarray(numbers), i[near], j[near], vec[near], dist[near]).items():
            env.add(key, centres, theta)
    return env


def angle_cutoff(rc: float, rc_angle: float | None) -> float:
    """The angle cutoff in use: ``rc_angle``, or ``min(rc, ANGLE_CUTOFF)`` when None."""
    return float(min(rc, ANGLE_CUTOFF) if rc_angle is None else rc_angle)


def angle_table(numbers: np.ndarray, i: np.ndarray, j: np.ndarray, vec: np.ndarray, dist: np.ndarray
                ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per triplet type ``"C:A-B"``: (centre atom, angle θ_jik in degrees, the longer of r_ij and r_ik) of every
    two neighbours ``j < k`` of a centre, from a pair list ``(i, j, vec, dist)``."""
    p, q = neighbour_pairs_of_centres(i)
    if len(p) == 0:
        return {}
    u = vec / dist[:, None]
    theta = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", u[p], u[q]), -1.0, 1.0)))
    zj, zk = numbers[j[p]].astype(np.int64), numbers[j[q]].astype(np.int64)
    codes = (numbers[i[p]].astype(np.int64) * 1000 + np.minimum(zj, zk)) * 1000 + np.maximum(zj, zk)
    reach = np.maximum(dist[p], dist[q])
    out = {}
    for code in np.unique(codes):
        sel = codes == code
        c, a, b = element_symbols([code // 1_000_000, code // 1000 % 1000, code % 1000])
        out[f"{c}:{a}-{b}"] = (i[p][sel], theta[sel], reach[sel])
    return out


def pooled_environments(configs: Iterable[Any], rc: float, angles: bool = True, rc_angle: float | None = None
                        ) -> Environments:
    """Environments of several configurations (atom indices are not kept apart: use for distributions only)."""
    out = Environments()
    for c in configs:
        env = local_environments(c.numbers, c.positions, c.cell, c.pbc, rc, angles, rc_angle)
        for key in env.values:
            out.add(key, env.atoms[key], env.values[key])
    return out


@dataclass
class Histogram:
    """One type's shared bin edges, training and target densities and the positive gap per bin."""

    key: str
    edges: np.ndarray
    train: np.ndarray
    target: np.ndarray
    gap: np.ndarray

    @property
    def kind(self) -> str:
        """``pair`` (distances, Å) or ``triplet`` (angles, degrees)."""
        return "triplet" if ":" in self.key else "pair"


def _density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(values, bins=edges)
    total = counts.sum()
    return counts / total if total else np.zeros(len(edges) - 1)


def coverage_gap(train: Environments, target: Environments, edges: dict[str, np.ndarray] | None = None
                 ) -> dict[str, Histogram]:
    """Per type: Shimazaki–Shinomoto edges on the pooled values (or the given ``edges``), both densities and
    ``max(0, d_target - d_train)``."""
    out = {}
    for key in sorted(set(train.values) | set(target.values)):
        a = train.values.get(key, np.zeros(0))
        b = target.values.get(key, np.zeros(0))
        edges_k = np.asarray(edges[key], dtype=float) if edges and key in edges else shimazaki_shinomoto(np.concatenate([a, b]))
        d_train, d_target = _density(a, edges_k), _density(b, edges_k)
        out[key] = Histogram(key=key, edges=edges_k, train=d_train, target=d_target, gap=np.maximum(d_target - d_train, 0.0))
    return out


def motif_scores(gap: dict[str, Histogram], target_envs: Sequence[Environments], outliers: Sequence[np.ndarray],
                 strategy: str, seed: int = 0) -> dict[str, np.ndarray]:
    """``{type: S(m) per bin}`` for ``strategy`` (see the module docstring); ``outliers[k]`` flags atoms of target k."""
    if strategy not in STRATEGIES:
        raise XtalbaseError(f"strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy == "gap":
        return {k: h.gap.copy() for k, h in gap.items()}
    if strategy == "random":
        rng = np.random.default_rng(seed)
        return {k: rng.random(len(h.gap)) for k, h in sorted(gap.items())}
    counts = {k: np.zeros(len(h.gap)) for k, h in gap.items()}
    for env, mask in zip(target_envs, outliers):
        mask = np.asarray(mask, dtype=bool)
        for key, values in env.values.items():
            if key not in gap or not mask.any():
                continue
            keep = mask[env.atoms[key]]
            if keep.any():
                counts[key] += np.histogram(values[keep], bins=gap[key].edges)[0]
    # per outlier atom: the ranking of motifs is unchanged, and the score's scale no longer grows with the size
    # of the target, which would drown the fixed penalty weights of the candidate score (50 per Å² and per eV)
    n_outliers = max(1, int(sum(np.asarray(m, dtype=bool).sum() for m in outliers)))
    if strategy == "outlier":
        return {k: c / n_outliers for k, c in counts.items()}
    return {k: counts[k] * gap[k].gap / n_outliers for k in gap}


def top_motifs(scores: dict[str, np.ndarray], gap: dict[str, Histogram], n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` best-scoring motifs: type, bin range (Å or degrees), score, gap; ties by type and bin."""
    rows = [(float(s), key, m) for key, arr in scores.items() for m, s in enumerate(arr) if s > 0]
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    out = []
    for score, key, m in rows[:n]:
        h = gap[key]
        unit = "Å" if h.kind == "pair" else "°"
        out.append({"type": key, "kind": h.kind, "bin": m, "low": float(h.edges[m]), "high": float(h.edges[m + 1]),
                    "score": score, "gap": float(h.gap[m]),
                    "label": f"{key} {h.edges[m]:.2f}–{h.edges[m + 1]:.2f} {unit}, S = {score:.3g}"})
    return out
