"""Calculations read with their structures and source files: what MLIP training data and its provenance need.

:func:`structures_with_calculations` gives, for structure ids, the structures' arrays and *every* calculation of
each (the caller chooses one: :mod:`xtalbase.mlip.configurations`); :func:`sources_of_calculations` gives the
source record each calculation was read from (prediction -> model -> dataset -> calculations -> source files).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from sqlalchemy import select

from xtalbase.platform.repositories import chunks
from xtalbase.schema import Calculation, Source, Structure

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Structure columns of :func:`structures_with_calculations`: identity and the array blobs (``cell`` (3, 3) Å,
#: ``numbers`` (nsites,), ``frac_coords`` (nsites, 3); see :mod:`xtalbase.schema.arrays`).
STRUCTURE_COLUMNS = (Structure.id, Structure.exact_hash, Structure.nsites, Structure.cell, Structure.numbers,
                     Structure.frac_coords)

#: Calculation columns of :func:`structures_with_calculations`, with the source file as ``source_file``.
LABEL_COLUMNS = (Calculation.id, Calculation.structure_id, Calculation.energy, Calculation.forces, Calculation.stress,
                 Calculation.energy_unit, Calculation.forces_unit, Calculation.stress_unit, Calculation.converged,
                 Calculation.electronic_converged, Calculation.ionic_converged, Calculation.ionic_step,
                 Calculation.parameters, Calculation.source_id, Source.file_path.label("source_file"))

#: Keys of each dict :func:`sources_of_calculations` returns.
SOURCE_KEYS = ("calculation_id", "structure_id", "source_id", "file_path", "file_hash", "record_locator", "database",
               "format", "external_id")


class LabelledStructures(NamedTuple):
    """``structures``: rows of :data:`STRUCTURE_COLUMNS`, ordered by exact hash; ``calculations``:
    ``{structure_id: rows of LABEL_COLUMNS}`` (by calculation id), structures without one absent."""

    structures: list[Any]
    calculations: dict[int, list[Any]]


def structures_with_calculations(session: "Session", structure_ids: Sequence[int]) -> LabelledStructures:
    """The structures of ``structure_ids`` (ids absent from the table are left out) and all their calculations.

    Rows come back ordered by exact hash (structures) and id (calculations), so callers get the same order on
    every backend and whatever the insertion order was.
    """
    ids = sorted({int(i) for i in structure_ids})
    structures: list[Any] = []
    calculations: dict[int, list[Any]] = defaultdict(list)
    for chunk in chunks(ids):
        structures.extend(session.execute(select(*STRUCTURE_COLUMNS).where(Structure.id.in_(chunk))).all())
        # outer join: a calculation stored without a source record keeps ``source_file`` None
        stmt = (select(*LABEL_COLUMNS).outerjoin(Source, Source.id == Calculation.source_id)
                .where(Calculation.structure_id.in_(chunk)).order_by(Calculation.id))
        for row in session.execute(stmt):
            calculations[row.structure_id].append(row)
    structures.sort(key=lambda r: r.exact_hash)
    return LabelledStructures(structures, dict(calculations))


def sources_of_calculations(session: "Session", calculation_ids: Sequence[int]) -> list[dict[str, Any]]:
    """One dict of :data:`SOURCE_KEYS` per stored calculation of ``calculation_ids``, by calculation id.

    ``file_hash`` is the sha256 of the file's bytes as ingest read it; the source keys are None for a
    calculation stored without a source record. Ids that name no calculation are left out.
    """
    cols = (Calculation.id.label("calculation_id"), Calculation.structure_id, Calculation.source_id, Source.file_path,
            Source.file_hash, Source.record_locator, Source.database, Source.format, Source.external_id)
    out: list[dict[str, Any]] = []
    for chunk in chunks(sorted({int(i) for i in calculation_ids})):
        stmt = select(*cols).outerjoin(Source, Source.id == Calculation.source_id).where(Calculation.id.in_(chunk))
        out.extend(dict(r._mapping) for r in session.execute(stmt))
    out.sort(key=lambda d: d["calculation_id"])
    return out


__all__ = ["LABEL_COLUMNS", "SOURCE_KEYS", "STRUCTURE_COLUMNS", "LabelledStructures", "sources_of_calculations",
           "structures_with_calculations"]


def labelled_structure_ids(session: "Session", run_ids: Sequence[int] | None = None) -> list[int]:
    """Sorted ids of structures with a calculation carrying an energy (written by ``run_ids`` when given)."""
    stmt = select(Calculation.structure_id).where(Calculation.energy.is_not(None)).distinct()
    if run_ids is not None:
        stmt = stmt.where(Calculation.run_id.in_([int(r) for r in run_ids]))
    return sorted(int(i) for i in session.scalars(stmt))
