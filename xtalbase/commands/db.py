"""``xtalbase init`` and ``xtalbase db ...``: create, upgrade and inspect the database."""

from __future__ import annotations

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json, print_table

app = typer.Typer(help="Inspect and administer the database.", no_args_is_help=True)


def init(ctx: typer.Context, db: DbOpt = None) -> None:
    """Create the database schema, or upgrade it to the newest revision (idempotent)."""
    handle = open_db(ctx, db, require_schema=False)
    result = handle.init()
    if result["before"] == result["revision"]:
        console().print(f"{handle!r}: already at revision {result['revision']}; nothing to do")
    else:
        console().print(f"{handle!r}: upgraded {result['before'] or 'empty database'} -> {result['revision']}")
    reader = result.get("reader_role") or {}
    if handle.backend == "postgresql" and "skipped" in reader:
        console(stderr=True).print(f"note: reader role {reader['role']!r} for `xtalbase sql` not made ({reader['skipped']}); "
                                   f"an administrator can run `xtalbase db grant-readonly {reader['role']}`")
    elif handle.backend == "postgresql":
        console().print(f"reader role {reader['role']!r} for `xtalbase sql`: SELECT on {reader['readable_relations']} "
                        f"tables/views in schema {reader['schema']!r}, nothing else")


@app.command("status")
def status(ctx: typer.Context, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Show the URL (password hidden), schema revision and row counts per table."""
    info = open_db(ctx, db, require_schema=False).status()
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(f"url:      {info['url']}")
    out.print(f"backend:  {info['backend']}")
    rev = info["revision"] or "none (run `xtalbase init`)"
    out.print(f"revision: {rev}" + (" (head)" if info["up_to_date"] else f" (head is {info['head']})"))
    if info["counts"]:
        print_table([{"table": k, "rows": v} for k, v in info["counts"].items()], ["table", "rows"])


@app.command("grant-readonly")
def grant_readonly(
    ctx: typer.Context,
    role: str = typer.Argument(..., help="PostgreSQL role to create or update."),
    login: bool = typer.Option(False, "--login/--no-login", help="Let the role connect (asks for a password)."),
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or update a PostgreSQL ROLE that can read every table and view and write nothing (PostgreSQL only).

    The default role `xtalbase sql` switches to is xtalbase_readonly (made by `xtalbase init` when the user may).
    """
    from xtalbase.platform.sql_roles import grant_readonly as grant

    handle = open_db(ctx, db)
    password = typer.prompt(f"password for {role}", hide_input=True, confirmation_prompt=True) if login and handle.backend == "postgresql" else None
    info = grant(handle, role, login=login, password=password)
    if as_json:
        print_json(info)
        return
    verb = "created" if info["created"] else "updated"
    console().print(f"{verb} read-only role {info['role']!r}: SELECT on {info['readable_relations']} tables/views in "
                    f"schema {info['schema']!r}, no writes" + (", can log in" if info["login"] else " (NOLOGIN; GRANT it to users)"))
