"""``xtalbase runs ...``: the provenance record of every activity."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, open_db, print_json, print_table

app = typer.Typer(help="List and inspect recorded runs (provenance).", no_args_is_help=True)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    db: DbOpt = None,
    kind: Annotated[Optional[str], typer.Option(help="Only runs of this kind (ingest, xrd, split, train, ...).")] = None,
    status: Annotated[Optional[str], typer.Option(help="Only runs with this status (running, succeeded, failed).")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    from sqlalchemy import select

    from xtalbase.schema import Run

    handle = open_db(ctx, db)
    stmt = select(Run).order_by(Run.id.desc()).limit(limit)
    if kind:
        stmt = stmt.where(Run.kind == kind)
    if status:
        stmt = stmt.where(Run.status == status)
    with handle.session() as s:
        rows = [
            {"id": r.id, "kind": r.kind, "status": r.status, "started": r.started_at, "ended": r.ended_at,
             "version": r.package_version, "git": (r.git_revision or "")[:12], "host": r.host, "user": r.user,
             "parent": r.parent_id, "params": r.params, "summary": r.summary, "error": r.error}
            for r in s.scalars(stmt)
        ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["started"] = r["started"].strftime("%Y-%m-%d %H:%M:%S") if r["started"] else ""
        r["error"] = (r["error"] or "")[:60]
    print_table(rows, ["id", "kind", "status", "started", "version", "git", "host", "parent", "error"])
