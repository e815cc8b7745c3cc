"""Read-only SQL for people who query the database directly, and read-only PostgreSQL roles.

:func:`run_readonly` executes one statement so that it cannot change anything,
with three independent guards:

1. the text must be exactly one statement starting with ``SELECT``, ``WITH``,
   ``VALUES``, ``TABLE``, ``EXPLAIN`` or ``SHOW`` (a quote-, comment- and
   dollar-quote-aware scan, so ``;`` inside strings is fine);
2. the connection cannot write: SQLite opens the file with ``mode=ro`` and
   ``PRAGMA query_only`` plus an authorizer that denies every action but
   reading (no ATTACH, no writing PRAGMA); PostgreSQL runs the statement in a
   ``READ ONLY`` transaction that is always rolled back;
3. PostgreSQL gets the statement as a server-side prepared statement, which
   the server refuses to hold more than one command in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

READ_KEYWORDS = ("select", "with", "values", "table", "explain", "show")

# SQLite authorizer action codes (sqlite3.h); only reading is allowed.
_SQLITE_ALLOWED = {20: "READ", 21: "SELECT", 31: "FUNCTION", 33: "RECURSIVE"}
_SQLITE_PRAGMA = 19
_SQLITE_UPDATE = 23
_SCHEMA_COLUMNS = {"type", "name", "tbl_name", "rootpage", "sql"}
_READ_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
                 "collation_list", "function_list", "table_list", "compile_options"}
_SQLITE_ACTIONS = {1: "CREATE INDEX", 2: "CREATE TABLE", 5: "CREATE TEMP TABLE", 8: "CREATE VIEW", 9: "DELETE",
                   10: "DROP INDEX", 11: "DROP TABLE", 16: "DROP VIEW", 18: "INSERT", 19: "PRAGMA", 22: "TRANSACTION",
                   23: "UPDATE", 24: "ATTACH", 25: "DETACH", 26: "ALTER TABLE", 27: "REINDEX", 28: "ANALYZE",
                   29: "CREATE VIRTUAL TABLE", 30: "DROP VIRTUAL TABLE", 32: "SAVEPOINT", 7: "CREATE TRIGGER",
                   15: "DROP TRIGGER"}

_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ReadOnlyViolation(XtalbaseError):
    """A statement given to the read-only SQL path would write, or is not a single query."""


@dataclass
class SqlResult:
    """Rows of a read-only query: ``columns`` (names) and ``rows`` (tuples)."""

    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, r)) for r in self.rows]


# --------------------------------------------------------------------------- statement check


def split_statements(sql: str) -> list[str]:
    """Split ``sql`` on top-level ``;`` (outside quotes, comments and ``$tag$`` strings); drop empty parts."""
    parts, start, i, n = [], 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            i = end + 1
        elif ch == "[":  # SQLite [identifier]
            end = sql.find("]", i + 1)
            i = n if end < 0 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])
            if m:
                end = sql.find(m.group(0), i + len(m.group(0)))
                i = n if end < 0 else end + len(m.group(0))
            else:
                i += 1
        elif ch == ";":
            parts.append(sql[start:i])
            start = i = i + 1
        else:
            i += 1
    parts.append(sql[start:])
    return [p for p in parts if _strip_comments(p).strip()]


def _strip_comments(sql: str) -> str:
    out = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", out)


def check_readonly_statement(sql: str) -> str:
    """The single statement in ``sql`` (without a trailing ``;``), or :class:`ReadOnlyViolation`."""
    statements = split_statements(sql)
    if not statements:
        raise ReadOnlyViolation("no SQL statement given")
    if len(statements) > 1:
        raise ReadOnlyViolation(f"only one statement may run at a time; found {len(statements)} separated by ';' "
                                "(nothing was executed)")
    statement = statements[0].strip()
    head = _strip_comments(statement).lstrip(" \t\r\n(")
    word = re.match(r"[A-Za-z]+", head)
    keyword = word.group(0).lower() if word else ""
    if keyword not in READ_KEYWORDS:
        shown = keyword.upper() or head[:20]
        raise ReadOnlyViolation(f"read-only SQL: {shown} statements are refused; only "
                                f"{', '.join(k.upper() for k in READ_KEYWORDS)} may run (nothing was executed)")
    return statement


# --------------------------------------------------------------------------- execution


def run_readonly(db: "Database", sql: str, *, max_rows: int | None = None) -> SqlResult:
    """Run one read-only statement and return its rows (at most ``max_rows`` when given).

    Raises :class:`ReadOnlyViolation` for anything that is not a single query
    or that tries to write; other database errors (syntax, unknown table)
    surface as SQLAlchemy ``DBAPIError`` with the server's message.
    """
    statement = check_readonly_statement(sql)
    if db.backend == "sqlite":
        return _run_sqlite(db, statement, max_rows)
    return _run_postgresql(db, statement, max_rows)


def _fetch(cursor: Any, max_rows: int | None) -> SqlResult:
    if cursor.description is None:
        return SqlResult([], [])
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows)
    return SqlResult(columns, [tuple(r) for r in rows])


def _run_sqlite(db: "Database", statement: str, max_rows: int | None) -> SqlResult:
    import sqlite3

    denied: list[str] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        if action in _SQLITE_ALLOWED:
            return sqlite3.SQLITE_OK
        if action == _SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
            return sqlite3.SQLITE_OK  # pragma_table_info('t') and friends only read
        if action == _SQLITE_UPDATE and arg1 == "sqlite_master" and arg2 in _SCHEMA_COLUMNS:
            return sqlite3.SQLITE_OK  # SQLite asks this while preparing pragma table functions; the file is read-only

        denied.append(" ".join(x for x in (_SQLITE_ACTIONS.get(action, f"action {action}"), arg1) if x))
        return sqlite3.SQLITE_DENY

    with db.read_only_engine().connect() as conn:
        raw = conn.connection.driver_connection
        raw.set_authorizer(authorize)
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(statement)
                return _fetch(cursor, max_rows)
            except sqlite3.DatabaseError as exc:
                if denied or "readonly" in str(exc) or "not authorized" in str(exc):
                    what = denied[0] if denied else str(exc)
                    raise ReadOnlyViolation(f"read-only SQL: {what} is not allowed (nothing was changed)") from None
                raise
            finally:
                cursor.close()
        finally:
            raw.set_authorizer(None)
            conn.rollback()


def _run_postgresql(db: "Database", statement: str, max_rows: int | None) -> SqlResult:
    import psycopg

    with db.read_only_engine().connect() as conn:
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                try:
                    cursor.execute(statement, prepare=True)
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    raise ReadOnlyViolation(f"read-only SQL: {exc.diag.message_primary} (nothing was changed)") from None
                except psycopg.errors.SyntaxError as exc:
                    if "multiple commands" in str(exc):
                        raise ReadOnlyViolation("only one statement may run at a time (nothing was executed)") from None
                    raise
                return _fetch(cursor, max_rows)
        finally:
            raw.rollback()


# --------------------------------------------------------------------------- roles


def grant_readonly(db: "Database", role: str, *, login: bool = False, password: str | None = None) -> dict[str, Any]:
    """Create or update PostgreSQL ``role`` so it can read every table and view of the schema and write nothing.

    The role gets ``USAGE`` on the current schema and ``SELECT`` on all its
    tables and views (and on those created later by the current user), loses
    every other table privilege, and defaults to read-only transactions.
    ``login`` lets it connect (with ``password`` when given). Superuser roles
    are refused: nothing can stop them writing.
    """
    if db.backend != "postgresql":
        raise XtalbaseError("grant-readonly is PostgreSQL-only: SQLite has no roles; "
                            "readers of a SQLite file use `xtalbase sql` (read-only) or open it with mode=ro")
    if not _ROLE_NAME.match(role or ""):
        raise XtalbaseError(f"invalid role name {role!r}: use letters, digits and _ (at most 63, not starting with a digit)")
    from psycopg import sql as pgsql
    from sqlalchemy import text

    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        found = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        if found is not None and found[0]:
            raise XtalbaseError(f"role {role!r} is a superuser and can always write; choose another role name")
        r, s = pgsql.Identifier(role), pgsql.Identifier(schema)
        statements = []
        if found is None:
            statements.append(pgsql.SQL("CREATE ROLE {} NOLOGIN").format(r))
        statements += [
            pgsql.SQL("ALTER ROLE {} " + ("LOGIN" if login else "NOLOGIN")).format(r),
            pgsql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r),
            pgsql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(s, r),
            pgsql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, r),
            pgsql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(s, r),
            pgsql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(s, r),
            pgsql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(s, r),
            pgsql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(r),
        ]
        if password is not None:
            statements.append(pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(r, pgsql.Literal(password)))
        with raw.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        relations = conn.execute(text(
            "SELECT count(*) FROM information_schema.role_table_grants "
            "WHERE grantee = :r AND table_schema = :s AND privilege_type = 'SELECT'"), {"r": role, "s": schema}).scalar_one()
    return {"role": role, "created": found is None, "schema": schema, "login": login, "readable_relations": int(relations)}
