"""The text checks of read-only SQL: one statement, a reading keyword, and no function that is not a pure read.

A small tokenizer walks the statement the way the server will (single-quoted,
``E''``, ``U&''`` and ``$tag$`` strings, double-quoted identifiers, ``--`` and
``/* */`` comments), so that a name inside a string (``'lo_x'``) is not taken
for a call while a quoted or schema-qualified call (``"pg_read_file"(...)``,
``pg_catalog.pg_read_file (...)``) is. Where the tokenizer and the server could
disagree it errs towards seeing more code (comments do not nest here), so a
disagreement refuses a statement rather than hiding a call.

These checks are the second layer: the first is the connection (a read-only
transaction under a least-privilege role on PostgreSQL, ``mode=ro`` with an
authorizer on SQLite), see :mod:`xtalbase.platform.sql`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from xtalbase.errors import XtalbaseError

READ_KEYWORDS = ("select", "with", "values", "table", "explain", "show")

#: Functions refused by name (called as ``name(...)``): server files, large objects, replication, backend
#: signalling, settings, statistics resets, locks that outlive the transaction, and SQL run from a text value.
REFUSED_FUNCTIONS = frozenset({
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_file_write", "pg_file_rename", "pg_file_unlink",
    "pg_file_sync", "pg_logdir_ls", "pg_current_logfile",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_log_backend_memory_contexts",
    "set_config", "pg_drop_replication_slot", "pg_replication_slot_advance", "pg_switch_wal", "pg_promote",
    "pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "pg_create_restore_point",
    "pg_import_system_collations", "pg_notify", "nextval", "setval", "txid_current", "pg_current_xact_id",
    "ts_stat", "ts_rewrite", "dblink",
})
#: SQLite's own functions refused the same way, on SQLite only (on PostgreSQL these names are ordinary, unknown ones).
SQLITE_REFUSED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
#: Name prefixes refused the same way (``lo_import``, ``pg_stat_reset_shared``, ``pg_ls_waldir``, ...).
REFUSED_PREFIXES = ("lo_", "pg_ls_", "pg_stat_reset", "pg_create_", "pg_copy_", "pg_logical_", "pg_replication_origin",
                    "pg_advisory", "pg_try_advisory", "pg_wal_replay", "dblink", "query_to_xml", "table_to_xml",
                    "cursor_to_xml", "schema_to_xml", "database_to_xml", "pg_file_")
#: Catalogs and views refused wherever they are named: passwords, server files and settings, raw large objects.
REFUSED_RELATIONS = frozenset({"pg_authid", "pg_shadow", "pg_user_mapping", "pg_largeobject", "pg_hba_file_rules",
                               "pg_ident_file_mappings", "pg_file_settings", "pg_config", "pg_statistic"})


class ReadOnlyViolation(XtalbaseError):
    """A statement given to the read-only SQL path would write, or is not a single query."""


@dataclass(frozen=True)
class Token:
    """A piece of SQL outside strings and comments: ``word`` (an identifier, lower case unless quoted) or ``punct``."""

    kind: str
    text: str
    pos: int


def tokens(sql: str, dialect: str = "postgresql") -> Iterator[Token]:
    """Identifiers and punctuation of ``sql`` (``dialect`` ``postgresql`` or ``sqlite``); strings and comments skipped."""
    i, n = 0, len(sql)
    pg = dialect != "sqlite"
    while i < n:
        ch = sql[i]
        if ch in " \t\r\n\f":
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "'":
            escapes = pg and i > 0 and sql[i - 1] in "Ee" and (i < 2 or not _word_char(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", escapes)
        elif ch == '"' or (not pg and ch == "`"):
            end = _skip_quoted(sql, i, ch, False)
            name = sql[i + 1:end - 1].replace(ch * 2, ch)
            unicode = pg and i >= 2 and sql[i - 2:i].upper() == "U&"
            yield Token("word", _decode_unicode(name, i) if unicode else name, i)
            i = end
        elif not pg and ch == "[":
            end = sql.find("]", i + 1)
            end = n if end < 0 else end
            yield Token("word", sql[i + 1:end], i)
            i = end + 1
        elif pg and ch == "$" and (m := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])):
            end = sql.find(m.group(0), i + len(m.group(0)))
            i = n if end < 0 else end + len(m.group(0))
        elif _word_char(ch):
            m = re.compile(r"[\w$]+").match(sql, i)
            yield Token("word", m.group(0).lower(), i)
            i = m.end()
        else:
            yield Token("punct", ch, i)
            i += 1


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _skip_quoted(sql: str, start: int, quote: str, backslash: bool) -> int:
    """Index just past the literal opened at ``start`` (doubled quotes, and ``\\x`` when ``backslash``)."""
    i, n = start + 1, len(sql)
    while i < n:
        if backslash and sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _decode_unicode(name: str, pos: int) -> str:
    r"""A ``U&"..."`` identifier with ``\XXXX`` / ``\+XXXXXX`` escapes decoded (so they cannot hide a name)."""
    def one(m: re.Match) -> str:
        return "\\" if m.group(0) == "\\\\" else chr(int(m.group(1) or m.group(2), 16))

    try:
        return re.sub(r"\\\\|\\([0-9A-Fa-f]{4})|\\\+([0-9A-Fa-f]{6})", one, name)
    except (ValueError, OverflowError):
        raise ReadOnlyViolation(f"read-only SQL: unreadable U& identifier at position {pos + 1} (nothing was executed)") from None


def split_statements(sql: str, dialect: str = "postgresql") -> list[str]:
    """Split ``sql`` on top-level ``;`` (outside quotes, comments and ``$tag$`` strings); drop empty parts."""
    parts, start = [], 0
    for tok in tokens(sql, dialect):
        if tok.kind == "punct" and tok.text == ";":
            parts.append(sql[start:tok.pos])
            start = tok.pos + 1
    parts.append(sql[start:])
    return [p for p in parts if any(True for _ in tokens(p, dialect))]


def check_readonly_statement(sql: str, dialect: str = "postgresql") -> str:
    """The single statement in ``sql`` (without a trailing ``;``), or :class:`ReadOnlyViolation`.

    Refuses stacked statements, statements that do not start with a reading
    keyword, and calls of functions or names of catalogs that are not pure
    reads (:data:`REFUSED_FUNCTIONS`, :data:`REFUSED_PREFIXES`, :data:`REFUSED_RELATIONS`, and on SQLite
    :data:`SQLITE_REFUSED_FUNCTIONS`).
    """
    statements = split_statements(sql, dialect)
    if not statements:
        raise ReadOnlyViolation("no SQL statement given (nothing was executed)")
    if len(statements) > 1:
        raise ReadOnlyViolation(f"only one statement may run at a time; found {len(statements)} separated by ';' "
                                "(nothing was executed)")
    statement = statements[0].strip()
    words = [t for t in tokens(statement, dialect) if t.kind == "word"]
    keyword = words[0].text if words else ""
    if keyword not in READ_KEYWORDS:
        shown = keyword.upper() if re.fullmatch(r"[a-z]+", keyword) else statement[:20]
        raise ReadOnlyViolation(f"read-only SQL: {shown} statements are refused; only "
                                f"{', '.join(k.upper() for k in READ_KEYWORDS)} may run (nothing was executed)")
    refused = refused_name(statement, dialect)
    if refused is not None:
        name, pos, what = refused
        raise ReadOnlyViolation(f"read-only SQL: {what} {name} (position {pos + 1}) is refused: it is not a pure read "
                                "(nothing was executed)")
    return statement


def refused_name(statement: str, dialect: str = "postgresql") -> tuple[str, int, str] | None:
    """``(name, position, "function"|"catalog"|"clause")`` of the first refused call, catalog or ``UESCAPE``
    clause in ``statement``, else ``None``.

    A name followed by ``(`` is a call unless it is a name being declared: a common table expression
    (``WITH lo_x(a) AS (...)``, also after a ``,`` in the WITH list) or an alias with a column list
    (``... AS lo_s(a, b)``)."""
    toks = list(tokens(statement, dialect))
    declared = _declared_names(toks, statement)
    functions = REFUSED_FUNCTIONS | SQLITE_REFUSED_FUNCTIONS if dialect == "sqlite" else REFUSED_FUNCTIONS
    for k, tok in enumerate(toks):
        if tok.kind != "word":
            continue
        name = tok.text.lower()
        if name in REFUSED_RELATIONS:
            return name, tok.pos, "catalog"
        if name == "uescape":  # another escape character could spell any name in a U&"..." identifier
            return "UESCAPE", tok.pos, "clause"
        called = k + 1 < len(toks) and toks[k + 1].text == "(" and k not in declared
        if called and (name in functions or name.startswith(REFUSED_PREFIXES)):
            return name, tok.pos, "function"
    return None


def _declared_names(toks: list[Token], sql: str) -> set[int]:
    """Indexes of the names in ``toks`` that declare rather than call: an alias right after the keyword ``AS``,
    and each CTE name of a WITH list whose whole shape ``name [(cols)] AS [[NOT] MATERIALIZED] (...)`` is there
    (anything else, such as ``FROM f(...) AS (a int)``, is not a declaration and stays a call)."""
    def keyword(j: int, *words: str) -> bool:  # an unquoted keyword, not a "quoted" identifier spelled the same
        return j < len(toks) and toks[j].kind == "word" and toks[j].text in words and sql[toks[j].pos] not in "\"`["

    def after_parens(j: int) -> int:  # index past the ")" matching the "(" at j, or len(toks)
        depth = 0
        for m in range(j, len(toks)):
            if toks[m].kind == "punct" and toks[m].text in "()":
                depth += 1 if toks[m].text == "(" else -1
                if depth == 0:
                    return m + 1
        return len(toks)

    def punct(j: int, ch: str) -> bool:
        return j < len(toks) and toks[j].kind == "punct" and toks[j].text == ch

    declared = {k for k in range(1, len(toks)) if toks[k].kind == "word" and keyword(k - 1, "as")}
    for k in range(len(toks)):
        if not keyword(k, "with"):
            continue
        j = k + 2 if keyword(k + 1, "recursive") else k + 1
        while j < len(toks) and toks[j].kind == "word":
            name, j = j, j + 1
            if punct(j, "("):
                j = after_parens(j)
            if not keyword(j, "as"):
                break
            j += 1
            j += 1 if keyword(j, "not") else 0
            j += 1 if keyword(j, "materialized") else 0
            if not punct(j, "("):
                break
            j = after_parens(j)
            declared.add(name)
            if not punct(j, ","):
                break
            j += 1
    return declared
