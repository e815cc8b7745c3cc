"""Bulk writes: PostgreSQL ``COPY ... FROM STDIN`` through psycopg, SQLite's executemany otherwise.

:func:`bulk_insert` has the meaning of :func:`xtalbase.platform.repositories.insert_ignore` (rows colliding on
``keys`` are skipped, a JSON ``None`` is SQL NULL, Python-side column defaults are filled) and runs in the
caller's transaction, so the writer's batch boundaries and locks are unchanged: a killed process leaves the
whole transaction, staged rows included, rolled back.

On PostgreSQL the rows are streamed with ``COPY`` (text format; psycopg escapes tabs, newlines, backslashes)
into a temporary staging table created for this call (``ON COMMIT DROP``, dropped at the end of the call too),
then moved with one ``INSERT ... SELECT ... ORDER BY ordinal ON CONFLICT (keys) DO NOTHING``: ids are assigned
in the rows' order, and a row met twice keeps its first copy, as with the executemany path. Without ``keys``
(plain inserts such as ``xrd_peaks``) the rows are copied straight into the table.

:func:`insert_tuples` is the plain insert for many narrow rows given as tuples (``xrd_peaks``: hundreds per
pattern): no per-row dictionaries, defaults or JSON handling, straight to ``COPY`` or the driver's executemany.
"""

from __future__ import annotations

import json
from itertools import count
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, Table, select, tuple_

from xtalbase.platform.repositories import chunks, insert_ignore

#: Set to ``False`` to send PostgreSQL bulk writes through the executemany path (benchmarks compare the two).
ENABLED = True
#: Fewer rows than this go through executemany: a staging table costs more than it saves on a handful of rows.
MIN_COPY_ROWS = 8
_names = count()


def uses_copy(conn: Connection, n_rows: int) -> bool:
    """Whether :func:`bulk_insert` streams ``n_rows`` rows with COPY on ``conn``."""
    return ENABLED and conn.dialect.name == "postgresql" and n_rows >= MIN_COPY_ROWS


def bulk_insert(conn: Connection, table: Table | Any, rows: Iterable[dict[str, Any]], keys: Sequence[str] | None,
                returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Insert ``rows`` into ``table`` in the caller's transaction, skipping those that collide on ``keys``.

    ``returning`` names columns to return for the rows actually inserted (in no promised order).
    """
    rows = list(rows)
    if not rows:
        return []
    if not uses_copy(conn, len(rows)):
        return insert_ignore(conn, table, rows, keys, returning)
    return _copy_insert(conn, table, rows, keys, returning)


def insert_ids(conn: Connection, table: Table | Any, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[tuple[Any, ...], int]:
    """``{values of keys: id}`` of every row in ``rows`` after :func:`bulk_insert` on the unique ``keys``: the ids of
    inserted rows come back from the insert, those of rows already stored (skipped) are read."""
    key_cols = [table.c[k] for k in keys]
    ids = {tuple(r[1:]): r[0] for r in bulk_insert(conn, table, rows, keys, returning=("id", *keys))}
    skipped = sorted({tuple(r[k] for k in keys) for r in rows} - ids.keys())
    for chunk in chunks(skipped):
        where = key_cols[0].in_([k[0] for k in chunk]) if len(keys) == 1 else tuple_(*key_cols).in_(chunk)
        ids.update((tuple(r[1:]), r[0]) for r in conn.execute(select(table.c.id, *key_cols).where(where)))
    return ids


def insert_tuples(conn: Connection, table: Table | Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """Insert ``rows`` (tuples of ``columns``' values, no JSON columns) into ``table`` in the caller's transaction.

    Plain inserts (a collision is an error). Returns the number of rows sent.
    """
    unknown = [c for c in columns if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {unknown}")
    if ENABLED and conn.dialect.name == "postgresql":
        return _copy_tuples(conn, table, columns, rows)
    rows = rows if isinstance(rows, list) else list(rows)
    if rows:
        marks = ", ".join("?" if conn.dialect.paramstyle == "qmark" else "%s" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {_target(conn, table)} ({_listed(conn, columns)}) VALUES ({marks})", rows)
    return len(rows)


def _copy_tuples(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    n = 0
    with conn.connection.dbapi_connection.cursor() as cursor, \
            cursor.copy(f"COPY {_target(conn, table)} ({_listed(conn, columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _target(conn: Connection, table: Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)


def _listed(conn: Connection, columns: Sequence[str]) -> str:
    quote = conn.dialect.identifier_preparer.quote_identifier
    return ", ".join(quote(c) for c in columns)


def _columns(table: Table, rows: list[dict[str, Any]]) -> list[str]:
    """Columns given by any row, plus those with a Python-side default (which COPY would not fill)."""
    given = {k for r in rows for k in r}
    return [c.name for c in table.columns if c.name in given or (c.default is not None and not c.primary_key)]


def _defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for c in table.columns:
        if c.name not in row and c.default is not None and not c.primary_key:
            out[c.name] = c.default.arg(None) if c.default.is_callable else c.default.arg
    return out


def _copy_insert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str] | None,
                 returning: Sequence[str]) -> list[tuple[Any, ...]]:
    names = _columns(table, rows)
    json_cols = {c.name for c in table.columns if "JSON" in type(c.type).__name__.upper() or "JSON" in repr(c.type)}
    listed, target = _listed(conn, names), _target(conn, table)
    cursor = conn.connection.dbapi_connection.cursor()  # the same DBAPI connection: the caller's transaction
    try:
        values = (_row_values(table, r, names, json_cols) for r in rows)
        if not keys and not returning:
            with cursor.copy(f"COPY {target} ({listed}) FROM STDIN") as copy:
                for v in values:
                    copy.write_row(v)
            return []
        stage = f"xtalbase_stage_{table.name}_{next(_names)}"
        cursor.execute(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT 0::bigint AS xb_ord, {listed} FROM {target} WITH NO DATA")
        with cursor.copy(f"COPY {stage} (xb_ord, {listed}) FROM STDIN") as copy:
            for i, v in enumerate(values):
                copy.write_row((i, *v))
        conflict = f" ON CONFLICT ({', '.join(keys)}) DO NOTHING" if keys else ""
        back = f" RETURNING {', '.join(returning)}" if returning else ""
        cursor.execute(f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {stage} ORDER BY xb_ord{conflict}{back}")
        out = [tuple(r) for r in cursor.fetchall()] if returning else []
        cursor.execute(f"DROP TABLE {stage}")
        return out
    finally:
        cursor.close()


def _row_values(table: Table, row: dict[str, Any], names: list[str], json_cols: set[str]) -> tuple[Any, ...]:
    missing = _defaults(table, row)
    out = []
    for n in names:
        v = row[n] if n in row else missing.get(n)
        if n in json_cols and v is not None:
            v = json.dumps(v)  # text COPY into json/jsonb parses the document; None stays SQL NULL
        out.append(v)
    return tuple(out)


__all__ = ["ENABLED", "MIN_COPY_ROWS", "bulk_insert", "insert_ids", "insert_tuples", "uses_copy"]
