"""XRD recipes, patterns and peaks: the lookups the CLI and the learning code share.

Computed patterns (``kind == "computed"``) are what features are taken from; measured scans share the
table but never stand in for a structure's pattern, so every peak loader here filters on the kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
from sqlalchemy import func, select

from xtalbase.platform.repositories import chunks
from xtalbase.schema import XrdPattern, XrdRecipe
from xtalbase.schema.arrays import unpack
from xtalbase.schema.base import utcnow

#: Patterns read per query when scanning a whole recipe (bounded memory, no long-held cursor).
PAGE = 5000

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def computed_peaks(session: "Session", structure_ids: Sequence[int], recipe_id: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{structure_id: (two_theta, intensity)}`` of the computed patterns of ``recipe_id`` (2θ in degrees).

    Structures without a computed pattern for the recipe are absent from the result.
    """
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for chunk in chunks([int(i) for i in structure_ids]):
        stmt = select(XrdPattern.structure_id, XrdPattern.two_theta, XrdPattern.intensity).where(
            XrdPattern.recipe_id == recipe_id, XrdPattern.kind == "computed", XrdPattern.structure_id.in_(chunk))
        for sid, tt, inten in session.execute(stmt):
            out[sid] = (unpack(tt), unpack(inten))
    return out


def pattern_counts(session: "Session") -> dict[int | None, int]:
    """Number of stored patterns (computed and measured) per recipe id."""
    return dict(session.execute(select(XrdPattern.recipe_id, func.count()).group_by(XrdPattern.recipe_id)).all())


def recipe_summaries(session: "Session") -> list[dict[str, Any]]:
    """Every stored recipe, oldest first: id, name, short hash, wavelength (Å), 2θ range (degrees), merge tolerance, patterns."""
    counts = pattern_counts(session)
    return [{"id": r.id, "name": r.name, "hash": r.hash[:12], "wavelength": r.wavelength,
             "two_theta": f"{r.two_theta_min:g}-{r.two_theta_max:g}", "merge_tol": r.merge_tol, "patterns": counts.get(r.id, 0)}
            for r in session.scalars(select(XrdRecipe).order_by(XrdRecipe.id))]




def computed_pattern_rows(session: "Session", recipe_id: int) -> Iterator[tuple[Any, ...]]:
    """(structure_id, d_spacing, intensity, chemical_system, formula_reduced, spacegroup_number, density, volume) of every
    computed pattern of ``recipe_id``, read in id order in pages (peak arrays stay packed bytes)."""
    from xtalbase.schema import Structure

    last = 0
    while True:
        stmt = (select(XrdPattern.id, XrdPattern.structure_id, XrdPattern.d_spacing, XrdPattern.intensity, Structure.chemical_system,
                       Structure.formula_reduced, Structure.spacegroup_number, Structure.density, Structure.volume)
                .join(Structure, Structure.id == XrdPattern.structure_id)
                .where(XrdPattern.recipe_id == recipe_id, XrdPattern.kind == "computed", XrdPattern.id > last)
                .order_by(XrdPattern.id).limit(PAGE))
        rows = session.execute(stmt).all()
        if not rows:
            return
        last = rows[-1][0]
        for row in rows:
            yield tuple(row[1:])


def pattern_set_fingerprint(session: "Session", recipe_id: int) -> str:
    """``count:id_sum:max_id:structure_id_sum:npeaks_sum`` of the computed patterns of ``recipe_id``: changes when one is
    added or deleted, also when SQLite reuses a deleted row id for a pattern of another structure or peak count."""
    row = session.execute(select(func.count(), func.sum(XrdPattern.id), func.max(XrdPattern.id), func.sum(XrdPattern.structure_id),
                                 func.sum(XrdPattern.npeaks)).where(XrdPattern.recipe_id == recipe_id, XrdPattern.kind == "computed")).one()
    return ":".join(str(int(v or 0)) for v in row)


def stored_peak_index(session: "Session", recipe_id: int, fingerprint: str) -> bytes | None:
    """The stored peak-index blob of ``recipe_id`` for this pattern-set ``fingerprint``, or ``None``."""
    from xtalbase.schema import XrdPeakIndex

    return session.scalars(select(XrdPeakIndex.data).where(XrdPeakIndex.recipe_id == recipe_id,
                                                          XrdPeakIndex.fingerprint == fingerprint)).first()


def stored_peak_index_key(session: "Session", recipe_id: int, fingerprint: str) -> tuple[int, str] | None:
    """(row id, creation time) of the stored peak index of ``recipe_id`` for ``fingerprint`` (no blob read), or ``None``."""
    from xtalbase.schema import XrdPeakIndex

    row = session.execute(select(XrdPeakIndex.id, XrdPeakIndex.created_at).where(
        XrdPeakIndex.recipe_id == recipe_id, XrdPeakIndex.fingerprint == fingerprint)).first()
    return None if row is None else (int(row[0]), str(row[1]))


def store_peak_index(session: "Session", recipe_id: int, fingerprint: str, n_patterns: int, data: bytes) -> None:
    """Store a peak index (a concurrent writer's identical row wins) and delete the recipe's outdated ones."""
    from sqlalchemy import delete

    from xtalbase.platform.repositories import insert_ignore
    from xtalbase.schema import XrdPeakIndex

    session.execute(delete(XrdPeakIndex).where(XrdPeakIndex.recipe_id == recipe_id, XrdPeakIndex.fingerprint != fingerprint))
    insert_ignore(session.connection(), XrdPeakIndex.__table__, [{"recipe_id": recipe_id, "fingerprint": fingerprint,
                                                                  "n_patterns": n_patterns, "data": data,
                                                                  "created_at": utcnow()}], ["recipe_id", "fingerprint"])


__all__ = ["computed_pattern_rows", "computed_peaks", "pattern_counts", "pattern_set_fingerprint", "recipe_summaries",
           "store_peak_index", "stored_peak_index", "stored_peak_index_key"]
