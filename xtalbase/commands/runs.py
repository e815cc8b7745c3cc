"""``xtalbase runs ...``: the provenance record of every activity (list, show, note)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json, print_table

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
    from xtalbase.platform.repositories import runs as repo

    handle = open_db(ctx, db)
    with handle.session() as s:
        rows = [
            {"id": r.id, "kind": r.kind, "status": r.status, "started": r.started_at, "ended": r.ended_at,
             "version": r.package_version, "git": (r.git_revision or "")[:12], "host": r.host, "user": r.user,
             "parent": r.parent_id, "params": r.params, "summary": r.summary, "error": r.error}
            for r in repo.list_runs(s, kind=kind, status=status, limit=limit)
        ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["started"] = r["started"].strftime("%Y-%m-%d %H:%M:%S") if r["started"] else ""
        r["error"] = (r["error"] or "")[:60]
    print_table(rows, ["id", "kind", "status", "started", "version", "git", "host", "parent", "error"])


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id (see `xtalbase runs list`).")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One run: status, params, versions, linked inputs and outputs, and notes."""
    from xtalbase.platform.repositories import runs as repo

    with open_db(ctx, db).session() as s:
        detail = repo.run_detail(s, run_id)
    if as_json:
        print_json(detail)
    else:
        print_run(detail)


@app.command("note")
def note(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    text: Annotated[str, typer.Argument(help="The note (quote it).")],
    db: DbOpt = None,
) -> None:
    """Attach a note to a run; notes can be added at any time, the run's own record never changes."""
    from xtalbase.platform.repositories import runs as repo

    with open_db(ctx, db).session() as s:
        added = repo.add_note(s, run_id, text)
        s.commit()
        console().print(f"note {added.id} added to run {run_id}")


def print_run(d: dict[str, Any]) -> None:
    """A run detail (:func:`~xtalbase.platform.repositories.runs.run_detail`) as indented lines."""
    out = console()
    ended = f" → {d['ended_at']:%Y-%m-%d %H:%M:%S}" if d["ended_at"] else ""
    out.print(f"run {d['id']}: {d['kind']} {d['status']}, {d['started_at']:%Y-%m-%d %H:%M:%S}{ended}, "
              f"{d['user']}@{d['host']} pid {d['pid']}" + (f", parent {d['parent_id']}" if d["parent_id"] else ""))
    if d["error"]:
        out.print(f"  error: {d['error']}", markup=False)
    out.print(f"  params: {d['params']}", markup=False)
    out.print(f"  xtalbase {d['package_version']}, git {d['git_revision'] or 'unknown'}; "
              + ", ".join(f"{k} {v}" for k, v in (d["dependency_versions"] or {}).items()), markup=False)
    if d["summary"]:
        out.print(f"  summary: {d['summary']}", markup=False)
    for title in ("inputs", "outputs"):
        for link in d[title]:
            ref = link["path"] or link["ref"]
            row = f" (id {link['id']})" if link["id"] is not None and str(link["id"]) != link["ref"] else ""
            digest = f" sha256 {link['sha256'][:16]}" if link["sha256"] else ""
            out.print(f"  {title[:-1]} {link['kind']} {ref}{row}{digest}", markup=False)
    for n in d["notes"]:
        out.print(f"  note {n['id']} ({n['created_at']:%Y-%m-%d %H:%M:%S}): {n['text']}", markup=False)
