"""PostgreSQL roles for read-only SQL: create a least-privilege reader, check one, and switch to it.

The model (``docs/sql.md``, "The PostgreSQL role model"): ``xtalbase sql`` never
runs a statement with the connecting user's rights when those include more than
reading. It switches with ``SET LOCAL ROLE`` to a reader role (default
:data:`DEFAULT_ROLE`) that is not a superuser, cannot create roles or databases,
cannot replicate or bypass row security, and is not a member of the predefined
roles that read or write server files, run programs or signal backends. That
role is made by ``xtalbase db grant-readonly ROLE`` or, for the default name, by
``xtalbase init`` when the connecting user may create roles.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from xtalbase.errors import XtalbaseError
from xtalbase.platform.sql_text import ReadOnlyViolation

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

#: The reader role ``xtalbase sql`` assumes on PostgreSQL unless told another (``--role``).
DEFAULT_ROLE = "xtalbase_readonly"

#: Predefined roles whose membership is more than reading the schema.
UNSAFE_MEMBERSHIPS = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
                      "pg_signal_backend", "pg_write_all_data", "pg_checkpoint")
_UNSAFE_ATTRIBUTES = (("rolsuper", "superuser"), ("rolcreaterole", "CREATEROLE"), ("rolcreatedb", "CREATEDB"),
                      ("rolreplication", "REPLICATION"), ("rolbypassrls", "BYPASSRLS"))
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# one key for every grant in the cluster: concurrent inits (roles are cluster-wide) queue instead of failing
_GRANT_LOCK = 0x7874616C  # "xtal"


def check_role_name(role: str) -> str:
    """``role`` if it is a plain PostgreSQL identifier, else :class:`XtalbaseError`."""
    if not _ROLE_NAME.match(role or ""):
        raise XtalbaseError(f"invalid role name {role!r}: use letters, digits and _ (at most 63, not starting with a digit)")
    return role


def role_problems(cursor: Any, role: str) -> list[str] | None:
    """What makes ``role`` more than a reader (``[]`` when nothing), or ``None`` when it does not exist.

    ``cursor`` is a psycopg cursor on the database.
    """
    cursor.execute("SELECT " + ", ".join(a for a, _ in _UNSAFE_ATTRIBUTES) + " FROM pg_roles WHERE rolname = %s", (role,))
    row = cursor.fetchone()
    if row is None:
        return None
    problems = [label for (_, label), on in zip(_UNSAFE_ATTRIBUTES, row) if on]
    if row[0]:
        return ["superuser"]  # holds every right: listing them adds nothing
    cursor.execute("SELECT r.rolname FROM pg_roles r WHERE r.rolname = ANY(%s) AND pg_has_role(%s, r.oid, 'MEMBER') "
                   "ORDER BY r.rolname", (list(UNSAFE_MEMBERSHIPS), role))
    problems += [f"member of {name}" for (name,) in cursor.fetchall()]
    return problems


def assume_reader(cursor: Any, role: str) -> str:
    """Switch the current transaction to reader ``role`` (``SET LOCAL ROLE``) and return the role queries run as.

    When ``role`` does not exist or cannot be assumed, the query runs as the
    connecting user only if that user is itself a reader; a superuser (or any
    user with more than reading rights) is refused with how to create the role.
    """
    from psycopg import sql as pgsql

    check_role_name(role)
    cursor.execute("SELECT current_user, current_schema()")
    me, schema = cursor.fetchone()
    problems = role_problems(cursor, role)
    if problems:
        raise ReadOnlyViolation(f"read-only SQL: role {role!r} is not a plain reader ({', '.join(problems)}); "
                                f"run `xtalbase db grant-readonly {role}` as an administrator or pick another --role "
                                "(nothing was executed)")
    if problems is not None:
        cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER') OR (SELECT rolsuper FROM pg_roles "
                       "WHERE rolname = current_user)", (role,))
        if cursor.fetchone()[0]:
            cursor.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, schema))
            if not cursor.fetchone()[0]:
                raise ReadOnlyViolation(f"read-only SQL: role {role!r} cannot read schema {schema!r}; run "
                                        f"`xtalbase db grant-readonly {role}` (or `xtalbase init`) on this database")
            cursor.execute(pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role)))
            return role
    mine = role_problems(cursor, me) or []
    if mine:
        why = f"role {role!r} does not exist" if problems is None else f"{me!r} cannot assume role {role!r}"
        raise ReadOnlyViolation(
            f"read-only SQL refuses to run as {me!r} ({', '.join(mine)}): {why}. Create the reader with "
            f"`xtalbase db grant-readonly {role}` (or `xtalbase init`, which makes {DEFAULT_ROLE!r} when it may), "
            "or connect as a user with reading rights only (nothing was executed)")
    return me


def grant_readonly(db: "Database", role: str, *, login: bool = False, password: str | None = None) -> dict[str, Any]:
    """Create or update PostgreSQL ``role`` so it can read every table and view of the schema and write nothing.

    The role gets ``USAGE`` on the current schema and ``SELECT`` on all its
    tables and views (and on those created later by the current user), loses
    every other table privilege, every role attribute beyond LOGIN and the
    memberships in :data:`UNSAFE_MEMBERSHIPS`, and defaults to read-only
    transactions. ``login`` lets it connect (with ``password`` when given).
    Superuser roles are refused: nothing can stop them writing.
    """
    if db.backend != "postgresql":
        raise XtalbaseError("grant-readonly is PostgreSQL-only: SQLite has no roles; "
                            "readers of a SQLite file use `xtalbase sql` (read-only) or open it with mode=ro")
    check_role_name(role)
    from psycopg import sql as pgsql
    from sqlalchemy import text

    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _GRANT_LOCK})
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        found = conn.execute(text("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
                                  "FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        if found is not None and found[0]:
            raise XtalbaseError(f"role {role!r} is a superuser and can always write; choose another role name")
        r, s = pgsql.Identifier(role), pgsql.Identifier(schema)
        statements = []
        if found is None:
            statements.append(pgsql.SQL("CREATE ROLE {} NOLOGIN").format(r))
        # only attributes that are set are taken away: a CREATEROLE granter may not touch REPLICATION/BYPASSRLS
        extra = [word for word, on in zip(("NOCREATEROLE", "NOCREATEDB", "NOREPLICATION", "NOBYPASSRLS"), found[1:])
                 if on] if found is not None else []
        statements += [
            pgsql.SQL("ALTER ROLE {} " + " ".join(["LOGIN" if login else "NOLOGIN", *extra])).format(r),
            pgsql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r),
            pgsql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(s, r),
            pgsql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(s, r),
            pgsql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(s, r),
            pgsql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(s, r),
            pgsql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(s, r),
            pgsql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(r),
        ]
        member_of = conn.execute(text("SELECT r.rolname FROM pg_roles r WHERE r.rolname = ANY(:names) "
                                      "AND pg_has_role(:role, r.oid, 'MEMBER')"),
                                 {"names": list(UNSAFE_MEMBERSHIPS), "role": role}).scalars().all() if found is not None else []
        statements += [pgsql.SQL("REVOKE {} FROM {}").format(pgsql.Identifier(m), r) for m in member_of]
        if password is not None:
            statements.append(pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(r, pgsql.Literal(password)))
        with raw.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            if not conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar_one():
                # a non-superuser may SET ROLE only to roles it is a member of
                cursor.execute(pgsql.SQL("GRANT {} TO CURRENT_USER").format(r))
        relations = conn.execute(text(
            "SELECT count(*) FROM information_schema.role_table_grants "
            "WHERE grantee = :r AND table_schema = :s AND privilege_type = 'SELECT'"), {"r": role, "s": schema}).scalar_one()
    return {"role": role, "created": found is None, "schema": schema, "login": login, "readable_relations": int(relations)}


def ensure_reader_role(db: "Database", role: str = DEFAULT_ROLE) -> dict[str, Any]:
    """Best effort for ``init``: make ``role`` a reader of this schema when the connecting user may.

    Returns :func:`grant_readonly`'s summary, or ``{"role": role, "skipped": reason}``
    when this is not PostgreSQL or the user lacks the rights (never raises for that).
    """
    if db.backend != "postgresql":
        return {"role": role, "skipped": "SQLite has no roles"}
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with db.engine.connect() as conn:
        may = conn.execute(text(
            "SELECT rolsuper OR rolcreaterole OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :r) "
            "FROM pg_roles WHERE rolname = current_user"), {"r": role}).scalar_one()
    if not may:
        return {"role": role, "skipped": "the connecting user may not create roles"}
    try:
        return grant_readonly(db, role)
    except (XtalbaseError, DBAPIError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return {"role": role, "skipped": first[0] if first else type(exc).__name__}
