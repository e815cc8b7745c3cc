"""Structures, calculations, sources and quarantine: reads shared by the query API, exports, provenance and the CLI.

Calculation choice
------------------
A structure can carry several calculations (ionic steps, reruns). Wherever one is attached to a
structure (``Query.atoms()``, ``SplitHandle.atoms()``, the extxyz export) it is chosen by
:func:`choose_calculations`: **the newest calculation (highest id) that is not known to be
unconverged**; when every calculation of the structure is marked unconverged, the newest one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import Select, func, select

from xtalbase.errors import NotFound
from xtalbase.platform.repositories import chunks
from xtalbase.schema import Calculation, DatasetMember, Quarantine, Source, SourceProperty, SplitMember, Structure

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

#: Calculation columns the ASE conversion needs, in the order :func:`calculation_rows` returns them.
CALCULATION_COLUMNS = (Calculation.id, Calculation.structure_id, Calculation.converged, Calculation.energy,
                       Calculation.forces, Calculation.stress, Calculation.stress_unit)


def choose_calculations(calculations: Iterable[Any]) -> dict[int, Any]:
    """``{structure_id: calculation}`` by the module's policy (newest not known to be unconverged).

    ``calculations`` are rows or ORM objects with ``id``, ``structure_id`` and ``converged``, in any order.
    """
    best: dict[int, Any] = {}
    for calc in sorted(calculations, key=lambda c: (c.structure_id, c.id)):
        current = best.get(calc.structure_id)
        # a newer calculation wins unless it is unconverged and the current one is not
        if current is None or calc.converged is not False or current.converged is False:
            best[calc.structure_id] = calc
    return best


def calculation_rows(conn: "Connection | Session", structure_ids: Sequence[int] | Select) -> dict[int, Any]:
    """The chosen calculation of each structure of ``structure_ids`` (ids or a SELECT of ids), as rows of
    :data:`CALCULATION_COLUMNS`; structures without a calculation are absent."""
    if isinstance(structure_ids, Select):
        return choose_calculations(conn.execute(select(*CALCULATION_COLUMNS).where(Calculation.structure_id.in_(structure_ids))))
    rows: list[Any] = []
    for chunk in chunks([int(i) for i in structure_ids]):
        rows.extend(conn.execute(select(*CALCULATION_COLUMNS).where(Calculation.structure_id.in_(chunk))))
    return choose_calculations(rows)


def calculations_of(session: "Session", structure_ids: Sequence[int]) -> dict[int, Calculation]:
    """The chosen ``Calculation`` (ORM object, every column) of each structure in ``structure_ids``."""
    rows: list[Calculation] = []
    for chunk in chunks([int(i) for i in structure_ids]):
        rows.extend(session.scalars(select(Calculation).where(Calculation.structure_id.in_(chunk))))
    return choose_calculations(rows)


# --------------------------------------------------------------------------- quarantine

#: Columns of :func:`quarantine_rows`, in order.
QUARANTINE_COLUMNS = ("id", "reason", "file_path", "record_locator", "run_id", "message", "raw_text")


def quarantine_rows(session: "Session", reason: str | None = None, limit: int | None = None,
                    columns: Sequence[str] = QUARANTINE_COLUMNS) -> list[dict[str, Any]]:
    """Quarantined records, newest first: ``columns`` (default ``id``, ``reason``, ``file_path``, ``record_locator``,
    ``run_id``, ``message``, ``raw_text``); only ``reason`` when given; at most ``limit``."""
    stmt = select(*(Quarantine.__table__.c[c] for c in columns)).order_by(Quarantine.id.desc())
    if reason is not None:
        stmt = stmt.where(Quarantine.reason == reason)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [dict(r._mapping) for r in session.execute(stmt)]


def quarantine_count(session: "Session", reason: str | None = None) -> int:
    """How many quarantined records there are (of ``reason`` when given)."""
    stmt = select(func.count()).select_from(Quarantine)
    if reason is not None:
        stmt = stmt.where(Quarantine.reason == reason)
    return int(session.scalar(stmt) or 0)


def quarantine_counts(session: "Session", by: str) -> dict[Any, int]:
    """How many quarantined records there are per ``reason`` or per ``run_id`` (``by``), largest group first."""
    if by not in ("reason", "run_id"):
        raise ValueError(f"quarantine counts are by 'reason' or 'run_id', not {by!r}")
    key = Quarantine.__table__.c[by]
    stmt = select(key, func.count()).group_by(key).order_by(func.count().desc(), key)
    return {k: int(n) for k, n in session.execute(stmt)}


def quarantine_record(session: "Session", quarantine_id: int) -> dict[str, Any]:
    """Every column of one quarantine row; :class:`NotFound` when there is none with that id."""
    q = session.get(Quarantine, quarantine_id)
    if q is None:
        raise NotFound(f"no quarantine row with id {quarantine_id}")
    return {"id": q.id, "run_id": q.run_id, "reason": q.reason, "message": q.message, "file_path": q.file_path,
            "file_hash": q.file_hash, "record_locator": q.record_locator, "raw_hash": q.raw_hash, "raw_size": q.raw_size,
            "created_at": q.created_at, "raw_text": q.raw_text}


__all__ = ["CALCULATION_COLUMNS", "QUARANTINE_COLUMNS", "calculation_rows", "calculations_of", "choose_calculations", "quarantine_count",
           "quarantine_counts", "quarantine_record", "quarantine_rows"]


# ----------------------------------------------------------------------------------------- provenance reads


def member_structures(session: "Session", *, dataset_id: int | None = None, split_id: int | None = None,
                      fold: str | None = None) -> list[Structure] | None:
    """The structures of a dataset, or of one fold of a split, by id; ``None`` when neither is given."""
    if dataset_id is not None:
        ids = select(DatasetMember.structure_id).where(DatasetMember.dataset_id == dataset_id)
    elif split_id is not None and fold:
        ids = select(SplitMember.structure_id).where(SplitMember.split_id == split_id, SplitMember.fold == fold)
    else:
        return None
    return list(session.scalars(select(Structure).where(Structure.id.in_(ids)).order_by(Structure.id)))


def sources_of(session: "Session", structure_id: int) -> list[Source]:
    """The source records of one structure, oldest first."""
    return list(session.scalars(select(Source).where(Source.structure_id == structure_id).order_by(Source.id)))


def writing_run_ids(session: "Session", structure_ids: Sequence[int]) -> set[int]:
    """Ids of the runs that stored these structures or any of their source records."""
    found: set[int] = set()
    for chunk in chunks(structure_ids):
        found |= set(session.scalars(select(Structure.run_id).distinct().where(Structure.id.in_(chunk), Structure.run_id.is_not(None))))
        found |= set(session.scalars(select(Source.run_id).distinct().where(Source.structure_id.in_(chunk), Source.run_id.is_not(None))))
    return found


def source_files(session: "Session", structure_ids: Sequence[int]) -> tuple[list[tuple[str, str, str]], int]:
    """The distinct source files of these structures as ``(file_hash, first path, first database)`` sorted by hash,
    and the number of source records."""
    files: dict[str, tuple[str, str]] = {}
    n_sources = 0
    for chunk in chunks(structure_ids):
        stmt = (select(Source.file_hash, func.min(Source.file_path), func.min(Source.database), func.count())
                .where(Source.structure_id.in_(chunk)).group_by(Source.file_hash))
        for file_hash, path, database, count in session.execute(stmt):
            n_sources += count
            old = files.get(file_hash)
            files[file_hash] = (min(old[0], path), min(old[1], database)) if old else (path, database)
    return [(h, p, d) for h, (p, d) in sorted(files.items())], n_sources


def structures_of_files(session: "Session", file_hashes: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """``{file sha256: [(record locator, structure id), ...]}`` of the records stored from those files, in
    insertion order (a duplicate record points at the structure it matched)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for chunk in chunks(sorted(set(file_hashes))):
        stmt = (select(Source.file_hash, Source.record_locator, Source.structure_id)
                .where(Source.file_hash.in_(chunk)).order_by(Source.id))
        for file_hash, locator, sid in session.execute(stmt):
            out.setdefault(file_hash, []).append((locator, int(sid)))
    return out


def source_property_values(session: "Session", structure_ids: Sequence[int], name: str) -> dict[int, tuple[int, float | None, str | None]]:
    """``structure id -> (source id, value_float, value_text)`` of source property ``name``, from the oldest source
    of each structure that carries a value."""
    best: dict[int, tuple[int, float | None, str | None]] = {}
    for chunk in chunks(sorted({int(i) for i in structure_ids})):
        stmt = (select(Source.structure_id, Source.id, SourceProperty.value_float, SourceProperty.value_text)
                .join(SourceProperty, SourceProperty.source_id == Source.id)
                .where(SourceProperty.name == name, Source.structure_id.in_(chunk)))
        for sid, src, vf, vt in session.execute(stmt):
            if vf is None and vt is None:
                continue
            if sid not in best or src < best[sid][0]:
                best[sid] = (src, vf, vt)
    return best


def numeric_property_names(session: "Session", limit: int = 30) -> list[str]:
    """Names of source properties stored with a numeric value (alphabetical, at most ``limit``)."""
    stmt = select(SourceProperty.name).where(SourceProperty.value_float.is_not(None)).distinct().order_by(SourceProperty.name).limit(limit)
    return list(session.scalars(stmt))


def exact_hashes(session: "Session", structure_ids: Sequence[int]) -> dict[int, str]:
    """``structure id -> exact_hash``."""
    out: dict[int, str] = {}
    for chunk in chunks(list(structure_ids)):
        out.update(session.execute(select(Structure.id, Structure.exact_hash).where(Structure.id.in_(chunk))).all())
    return out
