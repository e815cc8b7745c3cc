"""Read-only loads for the OPTIMADE API: one page of structures with their elements and predictions (the XRD
peaks come from :func:`xtalbase.platform.repositories.patterns.computed_peaks`).

Each function reads a whole page in one statement per table (chunked IN lists), never one per structure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import func, select, type_coerce
from sqlalchemy.types import NullType

from xtalbase.platform.repositories import chunks
from xtalbase.schema import Model, Prediction, Structure, StructureElement

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: Scalar columns of ``structures`` a resource is built from (the arrays come as raw bytes beside them).
SCALAR_COLUMNS = (Structure.id, Structure.nsites, Structure.nelements, Structure.formula_reduced,
                  Structure.formula_anonymous, Structure.exact_hash, Structure.created_at, Structure.spacegroup_number,
                  Structure.spacegroup_symbol, Structure.crystal_system, Structure.volume, Structure.density,
                  Structure.site_occupancies)
# raw DBAPI bytes: LargeBinary's per-value result processing costs more than the decoding
_ARRAYS = tuple(type_coerce(c, NullType()).label(c.key) for c in (Structure.cell, Structure.numbers, Structure.frac_coords))


def structure_rows(conn: "Connection", ids: Sequence[int]) -> dict[int, Any]:
    """``{id: row}`` of the structures ``ids`` (scalar columns and the packed ``cell``/``numbers``/``frac_coords``)."""
    out: dict[int, Any] = {}
    for chunk in chunks(list(ids)):
        for row in conn.execute(select(*SCALAR_COLUMNS, *_ARRAYS).where(Structure.id.in_(chunk))):
            out[row.id] = row
    return out


def element_amounts(conn: "Connection", ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """``{id: {element: amount per cell}}`` from ``structure_elements``."""
    out: dict[int, dict[str, float]] = {}
    se = StructureElement
    for chunk in chunks(list(ids)):
        for sid, el, amount in conn.execute(select(se.structure_id, se.element, se.amount).where(se.structure_id.in_(chunk))):
            out.setdefault(sid, {})[el] = amount
    return out


def _finite(value: float | None) -> float | None:
    # JSON has no NaN or infinity: a model that predicted one is shown as null rather than failing the page
    return value if value is None or math.isfinite(value) else None


def predictions_of(conn: "Connection", ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """``{id: [prediction, ...]}``: every stored prediction on the structures, with its model's id, name, target and
    algorithm and the run that made it, oldest first."""
    out: dict[int, list[dict[str, Any]]] = {}
    stmt_cols = (Prediction.structure_id, Prediction.id, Prediction.target, Prediction.value, Prediction.label,
                 Prediction.run_id, Model.id.label("model_id"), Model.name, Model.algorithm)
    for chunk in chunks(list(ids)):
        stmt = (select(*stmt_cols).join(Model, Model.id == Prediction.model_id)
                .where(Prediction.structure_id.in_(chunk)).order_by(Prediction.id))
        for r in conn.execute(stmt):
            out.setdefault(r.structure_id, []).append({
                "model_id": r.model_id, "model_name": r.name, "algorithm": r.algorithm, "target": r.target,
                "value": _finite(r.value), "label": r.label, "run_id": r.run_id})
    return out


def count_structures(conn: "Connection") -> int:
    """How many structures are stored."""
    return int(conn.execute(select(func.count()).select_from(Structure)).scalar_one())


def distinct_values(conn: "Connection", column: Any) -> list[Any]:
    """Every distinct stored value of ``column`` (a column of ``structures``)."""
    return list(conn.execute(select(column).distinct()).scalars())


def newest_structure_id(conn: "Connection") -> int | None:
    """The largest structure id (``None`` for an empty database): ids only grow, so it tells when rows were added."""
    return conn.execute(select(func.max(Structure.id))).scalar_one()
