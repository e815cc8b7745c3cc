"""Read-only SQL for people who query the database directly, within a time and row budget.

:func:`run_readonly` executes one statement so that it cannot change anything,
with independent guards:

1. the text (:mod:`xtalbase.platform.sql_text`) must be exactly one statement
   starting with ``SELECT``, ``WITH``, ``VALUES``, ``TABLE``, ``EXPLAIN`` or
   ``SHOW``, and may not call functions that are not pure reads (server files,
   large objects, replication, backend signalling, ``set_config``, statistics
   resets, ``load_extension``, ``fts3_tokenizer``, ...), matched outside
   strings and comments;
2. the connection cannot write: SQLite opens the file with ``mode=ro`` and
   ``PRAGMA query_only`` plus an authorizer that denies every action but
   reading (and those functions by name), with extension loading off;
   PostgreSQL runs the statement in a ``READ ONLY`` transaction that is always
   rolled back, as a least-privilege reader role (``SET LOCAL ROLE``, see
   :mod:`xtalbase.platform.sql_roles`), refusing to run as a superuser;
3. PostgreSQL gets the statement through the extended protocol, which the
   server refuses to hold more than one command in.

Budgets: ``timeout`` seconds of execution (PostgreSQL ``statement_timeout``,
a SQLite progress handler) and ``max_rows`` rows (the result says when it was
truncated); SQLite values are capped at :data:`SQLITE_MAX_VALUE_BYTES`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtalbase.errors import XtalbaseError
from xtalbase.platform.sql_roles import DEFAULT_ROLE, assume_reader, grant_readonly
from xtalbase.platform.sql_text import READ_KEYWORDS, ReadOnlyViolation, check_readonly_statement, split_statements

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

__all__ = ["DEFAULT_MAX_ROWS", "DEFAULT_ROLE", "DEFAULT_TIMEOUT_S", "READ_KEYWORDS", "QueryBudgetExceeded",
           "ReadOnlyViolation", "SqlResult", "check_readonly_statement", "grant_readonly", "run_readonly",
           "split_statements"]

#: Rows returned at most unless the caller asks for another cap.
DEFAULT_MAX_ROWS = 100_000
#: Seconds a statement may run unless the caller asks for another budget.
DEFAULT_TIMEOUT_S = 30.0
#: Largest string or blob a SQLite statement may build (SQLITE_LIMIT_LENGTH), bytes.
SQLITE_MAX_VALUE_BYTES = 64 * 1024 * 1024

# SQLite authorizer action codes (sqlite3.h); only reading is allowed.
_SQLITE_ALLOWED = {20: "READ", 21: "SELECT", 31: "FUNCTION", 33: "RECURSIVE"}
_SQLITE_PRAGMA = 19
_SQLITE_FUNCTION = 31
_SQLITE_UPDATE = 23
_SQLITE_REFUSED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}
_SCHEMA_COLUMNS = {"type", "name", "tbl_name", "rootpage", "sql"}
_READ_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
                 "collation_list", "function_list", "table_list", "compile_options"}
_SQLITE_ACTIONS = {1: "CREATE INDEX", 2: "CREATE TABLE", 5: "CREATE TEMP TABLE", 8: "CREATE VIEW", 9: "DELETE",
                   10: "DROP INDEX", 11: "DROP TABLE", 16: "DROP VIEW", 18: "INSERT", 19: "PRAGMA", 22: "TRANSACTION",
                   23: "UPDATE", 24: "ATTACH", 25: "DETACH", 26: "ALTER TABLE", 27: "REINDEX", 28: "ANALYZE",
                   29: "CREATE VIRTUAL TABLE", 30: "DROP VIRTUAL TABLE", 32: "SAVEPOINT", 7: "CREATE TRIGGER",
                   15: "DROP TRIGGER"}
# how many SQLite VM steps pass between two looks at the clock
_PROGRESS_STEPS = 10_000


class QueryBudgetExceeded(XtalbaseError):
    """A read-only statement ran past its time budget and was stopped (nothing was changed)."""


@dataclass
class SqlResult:
    """Rows of a read-only query: ``columns`` (names), ``rows`` (tuples), ``truncated`` (more rows than the cap)."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool = False

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, r)) for r in self.rows]


# --------------------------------------------------------------------------- execution


def run_readonly(db: "Database", sql: str, *, max_rows: int | None = DEFAULT_MAX_ROWS,
                 timeout: float | None = DEFAULT_TIMEOUT_S, role: str = DEFAULT_ROLE) -> SqlResult:
    """Run one read-only statement and return at most ``max_rows`` rows (``None``: all).

    ``timeout`` is the execution budget in seconds (``None``: none);
    ``role`` is the PostgreSQL reader role to assume (ignored on SQLite).
    Raises :class:`ReadOnlyViolation` for anything that is not a single pure
    read or that tries to write, :class:`QueryBudgetExceeded` past the time
    budget; other database errors (syntax, unknown table) surface as the
    driver's or SQLAlchemy's error with the server's message.
    """
    if max_rows is not None and max_rows < 0:
        raise XtalbaseError(f"max_rows must be >= 0, got {max_rows}")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise XtalbaseError(f"timeout must be a positive number of seconds, got {timeout}")
    statement = check_readonly_statement(sql, "sqlite" if db.backend == "sqlite" else "postgresql")
    if db.backend == "sqlite":
        return _run_sqlite(db, statement, max_rows, timeout)
    return _run_postgresql(db, statement, max_rows, timeout, role)


def _collect(rows: Any, max_rows: int | None) -> tuple[list[tuple], bool]:
    """Up to ``max_rows`` rows of the iterator ``rows``, and whether one more was there."""
    out = []
    for row in rows:
        if max_rows is not None and len(out) >= max_rows:
            return out, True
        out.append(tuple(row))
    return out, False


def _stopped(timeout: float | None) -> QueryBudgetExceeded:
    return QueryBudgetExceeded(f"read-only SQL: the query was stopped after {timeout:g} s, its time budget "
                               "(raise it with --timeout, or narrow the query; nothing was changed)")


def _run_sqlite(db: "Database", statement: str, max_rows: int | None, timeout: float | None) -> SqlResult:
    import sqlite3

    denied: list[str] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        if action == _SQLITE_FUNCTION and (arg2 or "").lower() in _SQLITE_REFUSED_FUNCTIONS:
            denied.append(f"function {arg2.lower()}")
            return sqlite3.SQLITE_DENY
        if action in _SQLITE_ALLOWED:
            return sqlite3.SQLITE_OK
        if action == _SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
            return sqlite3.SQLITE_OK  # pragma_table_info('t') and friends only read
        if action == _SQLITE_UPDATE and arg1 == "sqlite_master" and arg2 in _SCHEMA_COLUMNS:
            return sqlite3.SQLITE_OK  # SQLite asks this while preparing pragma table functions; the file is read-only

        denied.append(" ".join(x for x in (_SQLITE_ACTIONS.get(action, f"action {action}"), arg1) if x))
        return sqlite3.SQLITE_DENY

    deadline = math.inf if timeout is None else time.monotonic() + timeout

    def progress() -> int:
        return 1 if time.monotonic() > deadline else 0  # non-zero interrupts the statement

    with db.read_only_engine().connect() as conn:
        raw = conn.connection.driver_connection
        raw.execute("PRAGMA query_only = ON")  # also for an in-memory database, which is not opened mode=ro
        if hasattr(raw, "enable_load_extension"):
            raw.enable_load_extension(False)
        old_length = raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQLITE_MAX_VALUE_BYTES)
        raw.set_authorizer(authorize)
        raw.set_progress_handler(progress, _PROGRESS_STEPS)
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(statement)
                if cursor.description is None:
                    return SqlResult([], [])
                columns = [d[0] for d in cursor.description]
                rows, truncated = _collect(_rows(cursor), max_rows)
                return SqlResult(columns, rows, truncated)
            except sqlite3.DatabaseError as exc:
                if denied or "readonly" in str(exc) or "not authorized" in str(exc):
                    what = denied[0] if denied else str(exc)
                    raise ReadOnlyViolation(f"read-only SQL: {what} is not allowed (nothing was changed)") from None
                if str(exc) == "interrupted" and time.monotonic() > deadline:
                    raise _stopped(timeout) from None
                if "too big" in str(exc):
                    raise QueryBudgetExceeded(f"read-only SQL: a value grew past {SQLITE_MAX_VALUE_BYTES // 2**20} MiB, "
                                              "the size budget of one string or blob (nothing was changed)") from None
                raise
            finally:
                cursor.close()
        finally:
            raw.set_progress_handler(None, 0)
            raw.set_authorizer(None)
            raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, old_length)
            conn.rollback()


def _rows(cursor: Any) -> Any:
    while batch := cursor.fetchmany(1000):
        yield from batch


def _run_postgresql(db: "Database", statement: str, max_rows: int | None, timeout: float | None, role: str) -> SqlResult:
    import psycopg

    with db.read_only_engine().connect() as conn:
        raw = conn.connection.driver_connection
        broken = False
        try:
            with raw.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                ms = 0 if timeout is None else max(1, int(timeout * 1000))
                cursor.execute(f"SET LOCAL statement_timeout = {ms}")
                assume_reader(cursor, role)
                try:
                    stream = cursor.stream(statement)  # extended protocol: one command only
                    try:
                        rows, truncated = _collect(stream, max_rows)
                    finally:
                        stream.close()  # cancels the rest of a truncated result
                    if cursor.description is not None:
                        columns = [c.name for c in cursor.description]
                    else:  # no row came back: ask the server for the statement's columns
                        described = raw.pgconn.describe_prepared(b"")
                        columns = [described.fname(i).decode() for i in range(described.nfields)]
                    return SqlResult(columns, rows, truncated)
                except psycopg.errors.QueryCanceled:
                    raise _stopped(timeout) from None
                except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege) as exc:
                    raise ReadOnlyViolation(f"read-only SQL: {exc.diag.message_primary} (nothing was changed)") from None
                except psycopg.errors.SyntaxError as exc:
                    if "multiple commands" in str(exc):
                        raise ReadOnlyViolation("only one statement may run at a time (nothing was executed)") from None
                    raise
                except psycopg.OperationalError as exc:
                    broken = raw.closed or raw.broken
                    if not broken:
                        raise
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    raise XtalbaseError(f"read-only SQL: the database closed the connection during the query ({first}); "
                                        "nothing was changed") from None
        finally:
            if broken or raw.closed or raw.broken:
                conn.invalidate()  # no rollback on a dead connection: the pool would log a traceback for it
            else:
                raw.rollback()
