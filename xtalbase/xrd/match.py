"""Rank stored structures by how well their computed patterns explain a measured peak list.

Score of one candidate (all intensities on the 0-100 scale, computed peaks moved to the scan's
wavelength through their d-spacings and limited to the scanned 2θ range):

* each computed peak pairs with the nearest measured peak; the pair's weight falls linearly from 1
  at equal 2θ to 0 at ``tol`` degrees apart;
* ``explained`` = intensity-weighted fraction of the measured peaks that some computed peak pairs with;
* ``found`` = intensity-weighted fraction of the computed peaks (>= ``min_intensity``) seen in the scan;
* ``score`` = sqrt(explained × found), maximised over a uniform lattice strain of ±``max_strain``
  (d-spacings scaled by 1 + ε, 0.1 % steps), which absorbs thermal expansion, DFT lattice errors
  and a small zero shift.

Everything is vectorised over candidates × strains × peaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xtalbase.errors import NotFound
from xtalbase.xrd.engine import Pattern

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

#: Candidates scored per vectorised block (bounds memory at about CHUNK × 31 strains × peaks).
CHUNK = 256


@dataclass
class Match:
    """One ranked candidate: structure id, score in [0, 1], its parts and the best strain (fraction)."""

    structure_id: int
    score: float
    explained: float
    found: float
    strain: float
    formula: str | None = None
    spacegroup: int | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def score_candidates(measured: Pattern, wavelength: float, candidates: Sequence[tuple[np.ndarray, np.ndarray]],
                     two_theta_range: tuple[float, float], *, tol: float = 0.3, max_strain: float = 0.015,
                     min_intensity: float = 1.0) -> np.ndarray:
    """Scores ``(ncandidates, 4)``: score, explained, found, strain for ``candidates`` = [(d_spacing Å, intensity)]."""
    mx = np.asarray(measured.two_theta, dtype=float)
    mi = np.asarray(measured.intensity, dtype=float)
    out = np.zeros((len(candidates), 4))
    if len(mx) == 0 or len(candidates) == 0:
        return out
    mi = mi / mi.sum()
    strains = np.arange(-max_strain, max_strain + 1e-12, 0.001)
    width = max((len(d) for d, _ in candidates), default=0)
    d = np.full((len(candidates), max(width, 1)), np.nan)
    inten = np.zeros_like(d)
    for i, (dd, ii) in enumerate(candidates):
        keep = np.asarray(ii) >= min_intensity
        d[i, : keep.sum()] = np.asarray(dd)[keep]
        inten[i, : keep.sum()] = np.asarray(ii)[keep]
    # (C, S, P): computed positions at each strain
    sin_theta = wavelength / (2 * d[:, None, :] * (1 + strains)[None, :, None])
    with np.errstate(invalid="ignore"):
        tt = np.degrees(2 * np.arcsin(np.where(sin_theta <= 1, sin_theta, np.nan)))
    lo, hi = two_theta_range
    inside = np.isfinite(tt) & (tt >= lo) & (tt <= hi) & (inten[:, None, :] > 0)
    w_c = np.where(inside, inten[:, None, :], 0.0)
    total_c = w_c.sum(axis=2, keepdims=True)
    w_c = w_c / np.where(total_c > 0, total_c, 1)
    # nearest measured peak of every computed peak
    pos = np.searchsorted(mx, np.where(inside, tt, -1.0))
    left = np.clip(pos - 1, 0, len(mx) - 1)
    right = np.clip(pos, 0, len(mx) - 1)
    dl, dr = np.abs(tt - mx[left]), np.abs(tt - mx[right])
    nearest = np.where(dl <= dr, left, right)
    gap = np.where(inside, np.minimum(dl, dr), np.inf)
    pair = np.clip(1 - gap / tol, 0, 1)
    found = (w_c * pair).sum(axis=2)  # (C, S)
    # explained: each measured peak takes its best pairing with any computed peak
    best = np.zeros((len(candidates), len(strains), len(mx)))
    c_idx, s_idx, _ = np.indices(nearest.shape)
    np.maximum.at(best, (c_idx, s_idx, nearest), pair)
    explained = (best * mi).sum(axis=2)
    score = np.sqrt(explained * found)
    k = score.argmax(axis=1)
    rows = np.arange(len(candidates))
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = score[rows, k], explained[rows, k], found[rows, k], strains[k]
    return out


def match_scan(db: "Database", measured: Pattern, wavelength: float, two_theta_range: tuple[float, float], *, recipe_id: int | None = None,
               top: int = 5, structure_ids: Sequence[int] | None = None, **options: Any) -> list[Match]:
    """The ``top`` stored structures whose computed patterns best explain ``measured``.

    ``recipe_id`` defaults to the default recipe of :func:`xtalbase.xrd.recipe.resolve_recipe`.
    """
    from sqlalchemy import select

    from xtalbase.schema import Structure, XrdPattern
    from xtalbase.schema.arrays import unpack
    from xtalbase.xrd.recipe import resolve_recipe

    if recipe_id is None:
        recipe_id = resolve_recipe(db, None).id
    stmt = (select(XrdPattern.structure_id, XrdPattern.d_spacing, XrdPattern.intensity, Structure.formula_reduced, Structure.spacegroup_number)
            .join(Structure, Structure.id == XrdPattern.structure_id)
            .where(XrdPattern.recipe_id == recipe_id, XrdPattern.kind == "computed"))
    if structure_ids is not None:
        stmt = stmt.where(XrdPattern.structure_id.in_([int(i) for i in structure_ids]))
    with db.session() as s:
        rows = s.execute(stmt).all()
    if not rows:
        raise NotFound(f"no computed patterns for recipe {recipe_id} to match against: run `xtalbase xrd compute` first")
    candidates = [(unpack(r.d_spacing), unpack(r.intensity)) for r in rows]
    scores = np.vstack([score_candidates(measured, wavelength, candidates[lo:lo + CHUNK], two_theta_range, **options)
                        for lo in range(0, len(candidates), CHUNK)])
    order = np.lexsort(([r.structure_id for r in rows], -scores[:, 0]))[:top]
    return [Match(rows[i].structure_id, *map(float, scores[i]), formula=rows[i].formula_reduced, spacegroup=rows[i].spacegroup_number)
            for i in order]
