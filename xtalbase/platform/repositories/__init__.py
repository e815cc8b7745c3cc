"""Repositories: the SQL of each table family, in one module per family.

* :mod:`.structures`: structures, sites, calculations, sources and quarantine.
* :mod:`.patterns`: XRD recipes, patterns and peaks.
* :mod:`.models`: models and predictions.

Runs and their links live in :mod:`.runs`; splits and datasets keep their SQL beside their stores
(:mod:`xtalbase.ml.splits`, :mod:`xtalbase.ml.datasets`). This module holds the helpers every family
shares: the one insert-or-ignore, the one ``IN (...)`` chunking rule and the one named-row lookup.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import Connection, Insert, Table, select

from xtalbase.errors import NotFound

T = TypeVar("T")

#: Most values bound in one ``IN (...)`` list. SQLite allows 32766 variables per statement and PostgreSQL
#: 65535; 5000 leaves room for a tuple IN of two columns and the statement's other parameters.
IN_CHUNK = 5000


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``values`` in consecutive lists of at most ``size`` (default :data:`IN_CHUNK`), order kept."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def insert_ignore_statement(conn: Connection, table: Table | Any, keys: Sequence[str] | None) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` for the connection's backend (plain INSERT when ``keys`` is empty).

    Returned unexecuted so a caller can add ``.returning(...)``.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    return stmt.on_conflict_do_nothing(index_elements=list(keys)) if keys else stmt


def insert_ignore(conn: Connection, table: Table | Any, rows: Iterable[dict[str, Any]], keys: Sequence[str] | None,
                  returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Insert ``rows`` into ``table``, skipping those that collide on the unique columns ``keys``.

    Rows whose JSON columns hold ``None`` are sent without those keys (in groups), so the column default
    (SQL NULL) is stored rather than the JSON literal ``null``. ``returning`` names columns returned for the
    rows actually inserted. (PostgreSQL bulk writes go through :func:`.bulk.bulk_insert`, which streams with COPY.)
    """
    rows = list(rows)
    if not rows:
        return []
    json_cols = {c.name for c in table.columns if c.type.__class__.__name__ in ("JSON", "JSONB") or "JSON" in repr(c.type)}
    groups: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        nulls = frozenset(k for k in json_cols if k in row and row[k] is None)
        groups[nulls].append({k: v for k, v in row.items() if k not in nulls} if nulls else row)
    stmt = insert_ignore_statement(conn, table, keys)
    if returning:
        stmt = stmt.returning(*(table.c[c] for c in returning))
    out: list[tuple[Any, ...]] = []
    for group in groups.values():
        result = conn.execute(stmt, group)
        if returning:
            out.extend(tuple(r) for r in result.all())
    return out


def named_row(session: Any, model: type, name: str, kind: str) -> Any:
    """The row of ``model`` whose ``name`` is ``name``; :class:`NotFound` naming up to 20 known names otherwise.

    ``kind`` is the word users know the table by (``split``, ``dataset``), used in the message.
    """
    row = session.scalars(select(model).where(model.name == name)).first()
    if row is None:
        known = list(session.scalars(select(model.name).order_by(model.name).limit(20)))
        listed = f"; known {kind}s: {', '.join(known)}" if known else f"; none stored yet (create one with `xtalbase {kind} create`)"
        raise NotFound(f"no {kind} named {name!r}{listed}")
    return row


__all__ = ["IN_CHUNK", "chunks", "insert_ignore", "insert_ignore_statement", "named_row"]
