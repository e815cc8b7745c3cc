"""XRD recipes, patterns and peaks: the lookups the CLI and the learning code share.

Computed patterns (``kind == "computed"``) are what features are taken from; measured scans share the
table but never stand in for a structure's pattern, so every peak loader here filters on the kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from sqlalchemy import func, select

from xtalbase.platform.repositories import chunks
from xtalbase.schema import XrdPattern, XrdRecipe
from xtalbase.schema.arrays import unpack

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


__all__ = ["computed_peaks", "pattern_counts", "recipe_summaries"]
