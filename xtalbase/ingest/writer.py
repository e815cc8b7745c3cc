"""Write prepared records in batches: one transaction per batch, bulk inserts, insert-or-ignore on identities.

Each batch holds the database's writer lock for its whole transaction
(PostgreSQL: a transaction-scoped advisory lock; SQLite: ``BEGIN IMMEDIATE``),
so looking up existing structures and inserting new ones is atomic even with
two ingests running at once. Inserts use ``ON CONFLICT DO NOTHING`` on the unique
identities (``structures.exact_hash``, ``sources (file_hash, record_locator)``,
``quarantine (file_hash, record_locator, reason)``) and ids are re-selected
afterwards, so a re-run or a concurrent run never duplicates a row. A record that
is stored leaves the quarantine in the same transaction (the quarantine lists what
is *not* in the database). A process killed mid-batch leaves the whole batch rolled back.
On PostgreSQL the structures, elements, sources, properties and calculations of a batch are
streamed with ``COPY`` into staging tables of the same transaction and moved with
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (:mod:`xtalbase.platform.repositories.bulk`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import Connection, Table, exists, select, tuple_

from xtalbase.ingest.matching import Matcher
from xtalbase.platform.repositories import chunks, insert_ignore
from xtalbase.platform.repositories.bulk import bulk_insert, insert_ids
from xtalbase.schema import Calculation, Quarantine, Source, SourceProperty, Structure, StructureElement

#: Arbitrary constant naming the ingest writer lock on PostgreSQL (pg_advisory_xact_lock).
PG_LOCK_KEY = 0x78746C62  # "xtlb"
STRUCTURES: Table = Structure.__table__  # type: ignore[assignment]
ELEMENTS: Table = StructureElement.__table__  # type: ignore[assignment]
SOURCES: Table = Source.__table__  # type: ignore[assignment]
PROPERTIES: Table = SourceProperty.__table__  # type: ignore[assignment]
CALCULATIONS: Table = Calculation.__table__  # type: ignore[assignment]
QUARANTINE: Table = Quarantine.__table__  # type: ignore[assignment]
#: Match at most this many same-key candidates per record (a guard against pathological keys).
MAX_CANDIDATES = 50


@dataclass
class FileInfo:
    """What the writer needs to know about the file a prepared item came from."""

    path: str
    file_hash: str
    format: str
    source: Optional[str] = None
    licence: Optional[str] = None
    #: the path from the folder the user named down to the file (source-database hints come only from it)
    hint_path: Optional[str] = None


def printable(text: str) -> str:
    """``text`` storable in both databases: bytes of a file name that is not UTF-8 (``h\\xe9matite.cif`` from a
    Windows archive) kept as ``\\xe9`` escapes instead of the lone surrogates Python decodes them to, and NUL
    characters (which PostgreSQL text refuses: one would fail the whole batch) as U+FFFD, as undecodable bytes are."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").replace("\x00", "\ufffd")


@dataclass
class BatchResult:
    """Counts of one written batch."""

    inserted: int = 0
    duplicates: int = 0
    quarantined: Counter = field(default_factory=Counter)
    new_structure_ids: list[int] = field(default_factory=list)


def write_batch(conn: Connection, run_id: int, entries: list[tuple[FileInfo, dict[str, Any]]],
                matcher: Optional[Matcher] = None) -> BatchResult:
    """Store one batch of prepared items inside the caller's transaction on ``conn``.

    ``matcher`` confirms canonical-hash candidates; pass the same one to every batch of
    a run so that each structure's reduced cell is computed once.
    """
    from xtalbase.ingest.sources import database_for, external_id_for, sidecar_properties

    _lock(conn)
    result = BatchResult()
    quarantine_rows = []
    records: list[tuple[FileInfo, dict[str, Any]]] = []
    for info, item in entries:
        if item["kind"] == "quarantine":
            result.quarantined[item["reason"]] += 1
            quarantine_rows.append({"run_id": run_id, "file_path": info.path, "file_hash": info.file_hash,
                                    "record_locator": printable(item["locator"]), "reason": item["reason"],
                                    "message": printable(item["message"]),
                                    "raw_text": _raw_text(item), "raw_hash": item["raw_hash"], "raw_size": item["raw_size"]})
        elif item["kind"] == "known":
            result.duplicates += 1
        else:
            records.append((info, item))
    insert_ignore(conn, QUARANTINE, quarantine_rows, ["file_hash", "record_locator", "reason"])
    if not records:
        return result

    seen = _existing_sources(conn, {(i.file_hash, it["locator"]) for i, it in records})
    fresh = []
    for info, item in records:  # also drops a record met twice in one batch (a file given twice)
        key = (info.file_hash, item["locator"])
        if key not in seen:
            seen.add(key)
            fresh.append((info, item))
    result.duplicates += len(records) - len(fresh)
    structure_ids = _assign_structures(conn, run_id, fresh, result, matcher or Matcher())

    source_rows, extras = [], []
    for info, item in fresh:
        path = Path(info.path)
        src = item["source"]
        external_id = external_id_for(path, src["external_id"])
        properties = dict(item["properties"])
        if external_id and info.format == "cif":
            properties.update(sidecar_properties(path.parent).get(external_id, {}))
        source_rows.append({
            "structure_id": structure_ids[item["structure"]["exact_hash"]],
            "database": database_for(Path(info.hint_path or path.name), info.format, info.source, src["database"]),
            "external_id": external_id,
            "file_path": info.path, "file_hash": info.file_hash, "record_locator": item["locator"], "format": info.format,
            "licence": info.licence, "raw_hash": src["raw_hash"], "warnings": src["warnings"], "run_id": run_id,
        })
        extras.append((properties, item["calculation"], structure_ids[item["structure"]["exact_hash"]]))
    ids = insert_ids(conn, SOURCES, source_rows, ("file_hash", "record_locator"))
    # a record quarantined by an earlier run and stored now (say with allow_disorder) leaves the quarantine
    for chunk in chunks([(r["file_hash"], r["record_locator"]) for r in source_rows]):
        conn.execute(QUARANTINE.delete().where(tuple_(QUARANTINE.c.file_hash, QUARANTINE.c.record_locator).in_(chunk)))
    prop_rows, calc_rows = [], []
    for row, (properties, calc, structure_id) in zip(source_rows, extras):
        source_id = ids[(row["file_hash"], row["record_locator"])]
        for name, value in properties.items():
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            prop_rows.append({"source_id": source_id, "name": str(name)[:64],
                              "value_float": float(value) if is_number else None,
                              "value_text": None if is_number else str(value)})
        if calc is not None:
            calc_rows.append({**calc, "structure_id": structure_id, "source_id": source_id, "run_id": run_id})
    bulk_insert(conn, PROPERTIES, prop_rows, ["source_id", "name"])
    bulk_insert(conn, CALCULATIONS, calc_rows, None)
    return result


def _raw_text(item: dict[str, Any]) -> Optional[str]:
    # a second layer under the walk's refusal: the text of a file outside the given paths is never stored
    if item["reason"] == "unsafe_path" or item["raw_text"] is None:
        return None
    return printable(item["raw_text"])


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")


def _existing_sources(conn: Connection, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    # by (hash, locator) pairs, not by hash alone: a batch of a 10,000-record file would read back every
    # earlier record of that file (quadratic in the file's size)
    found: set[tuple[str, str]] = set()
    for chunk in chunks(sorted(keys)):
        found.update((h, loc) for h, loc in conn.execute(
            select(SOURCES.c.file_hash, SOURCES.c.record_locator).where(
                tuple_(SOURCES.c.file_hash, SOURCES.c.record_locator).in_(chunk))))
    return found & keys


def _assign_structures(conn: Connection, run_id: int, fresh: list[tuple[FileInfo, dict[str, Any]]],
                       result: BatchResult, matcher: Matcher) -> dict[str, int]:
    """Map every record's exact hash to a structure id, inserting the structures that are new."""
    exact = {it["structure"]["exact_hash"] for _, it in fresh}
    by_exact: dict[str, int] = {}
    for chunk in chunks(sorted(exact)):
        by_exact.update((h, i) for i, h in conn.execute(select(STRUCTURES.c.id, STRUCTURES.c.exact_hash).where(STRUCTURES.c.exact_hash.in_(chunk))))
    plain_keys = {it["structure"]["canonical_hash"] for _, it in fresh
                  if it["calculation"] is None and it["structure"]["exact_hash"] not in by_exact}
    candidates = _candidates(conn, plain_keys)  # canonical hash -> [(id or exact hash, structures row)]
    alias: dict[str, str | int] = {}  # exact hash of a record -> existing id, or exact hash of a new row in this batch
    new_rows: dict[str, dict[str, Any]] = {}
    new_elements: dict[str, dict[str, float]] = {}
    for _, item in fresh:
        row = item["structure"]
        h = row["exact_hash"]
        if h in by_exact or h in new_rows or h in alias:
            result.duplicates += 1
            continue
        if item["calculation"] is None:
            matcher.note_letters(h, item.get("letters"))
        if item["calculation"] is None and candidates.get(row["canonical_hash"]):
            match = matcher.first_match(h, row, candidates[row["canonical_hash"]][:MAX_CANDIDATES])
            if match is not None:
                alias[h] = match
                result.duplicates += 1
                continue
        new_rows[h] = {**row, "run_id": run_id}
        new_elements[h] = item["elements"]
        result.inserted += 1
        if item["calculation"] is None:
            candidates.setdefault(row["canonical_hash"], []).append((h, row))
    by_exact.update((h, i) for (h,), i in insert_ids(conn, STRUCTURES, list(new_rows.values()), ("exact_hash",)).items())
    result.new_structure_ids.extend(by_exact[h] for h in new_rows)
    for h in new_rows:  # later batches meet these rows as stored candidates, keyed by id
        matcher.rekey(h, by_exact[h])
    bulk_insert(conn, ELEMENTS, [{"structure_id": by_exact[h], "element": el, "amount": amount}
                                 for h, els in new_elements.items() for el, amount in els.items()], ["structure_id", "element"])
    for h, target in alias.items():
        by_exact[h] = target if isinstance(target, int) else by_exact[target]
    return by_exact


def _candidates(conn: Connection, keys: set[str]) -> dict[str, list[tuple[Any, Any]]]:
    """Stored plain structures (no calculation attached) with one of the canonical ``keys``."""
    out: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    cols = [STRUCTURES.c.id, STRUCTURES.c.canonical_hash, STRUCTURES.c.nsites, STRUCTURES.c.cell, STRUCTURES.c.numbers,
            STRUCTURES.c.frac_coords, STRUCTURES.c.site_occupancies, STRUCTURES.c.symprec]
    has_calc = exists().where(CALCULATIONS.c.structure_id == STRUCTURES.c.id)
    for chunk in chunks(sorted(keys)):
        for row in conn.execute(select(*cols).where(STRUCTURES.c.canonical_hash.in_(chunk), ~has_calc).order_by(STRUCTURES.c.id)):
            out[row.canonical_hash].append((row.id, row))
    return out
