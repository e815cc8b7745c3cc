"""``xtalbase ingest PATH...`` and ``xtalbase quarantine list|show``."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, get_type_hints

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json, print_table, progress
from xtalbase.ingest.options import IngestOptions

quarantine_app = typer.Typer(help="Inspect records rejected by ingest, with their reason codes.", no_args_is_help=True)


def with_ingest_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with one typer option per CLI field of :class:`IngestOptions` (``max_sites`` -> ``--max-sites``,
    the field's default and help), gathered into its ``options`` parameter: the flags are defined nowhere else."""
    hints = get_type_hints(command, include_extras=True)
    option_types = get_type_hints(IngestOptions)
    own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values() if p.name != "options"]
    added = []
    for f in dataclasses.fields(IngestOptions):
        if not f.metadata["cli"]:
            continue
        flag = typer.Option(f"--{f.name.replace('_', '-')}", help=f.metadata["help"], **f.metadata["typer"])
        added.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                       annotation=Annotated[option_types[f.name], flag]))
    names = [p.name for p in added]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        chosen = {name: kwargs.pop(name) for name in names if name in kwargs}
        return command(*args, options=IngestOptions(**chosen), **kwargs)

    wrapper.__signature__ = inspect.Signature(own + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    del wrapper.__wrapped__  # typer must read the signature above, not the command's own
    return wrapper


@with_ingest_options
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (recursed) to read.", show_default=False)],
    db: DbOpt = None,
    as_json: JsonOpt = False,
    *,
    options: IngestOptions,
) -> None:
    """Read, validate, deduplicate and store structure and DFT files; print read/inserted/duplicates/quarantined."""
    handle = open_db(ctx, db)
    with progress() as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the report's notes are printed below, once
        task = bar.add_task("ingest", total=None)
        report = handle.ingest(paths, options,
                               on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    for note in report.notes:
        sys.stderr.write(f"note: {note}\n")
    summary = report.to_dict()
    if as_json:
        print_json(summary)
        return
    out = console()
    out.print(f"run {summary['run_id']}: read {summary['read']}, inserted {summary['inserted']}, "
              f"duplicates {summary['duplicates']}, quarantined {summary['quarantined']} in {summary['seconds']:.1f} s")
    skipped = summary["skipped"]
    if skipped["count"]:  # paths met but not read: never a silent skip
        shown = ", ".join(f"{e['path']} ({e['why']})" for e in skipped["examples"])
        more = skipped["count"] - len(skipped["examples"])
        out.print(f"skipped {skipped['count']} path(s) not read: {shown}" + (f" and {more} more" if more > 0 else ""),
                  markup=False, highlight=False)
    if summary["quarantined_by_reason"]:
        print_table([{"reason": k, "records": v} for k, v in summary["quarantined_by_reason"].items()], ["reason", "records"],
                    title="quarantined by reason (xtalbase quarantine list --reason CODE)")


@quarantine_app.command("list")
def list_quarantine(
    ctx: typer.Context,
    db: DbOpt = None,
    reason: Annotated[Optional[str], typer.Option("--reason", help="Only this reason code (e.g. low_precision).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N rows, newest first (a note on stderr says when more match).")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List quarantined records: id, reason, file, record and message."""
    from xtalbase.ingest.records import REASONS
    from xtalbase.platform.repositories.structures import quarantine_count, quarantine_rows

    if reason and reason not in REASONS:
        raise typer.BadParameter(f"{reason!r} is not a reason code; choose one of {', '.join(REASONS)}", param_hint="--reason")
    with open_db(ctx, db).session() as s:
        rows = [{"id": q["id"], "reason": q["reason"], "file": q["file_path"], "record": q["record_locator"], "run": q["run_id"],
                 "message": q["message"]} for q in quarantine_rows(s, reason or None, limit)]
        total = quarantine_count(s, reason or None) if len(rows) == limit else len(rows)
    if total > len(rows):
        sys.stderr.write(f"{len(rows)} of {total} quarantined records shown (newest first); --limit {total} shows all\n")
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["message"] = r["message"][-90:]
    print_table(rows, ["id", "reason", "file", "record", "message"])


@quarantine_app.command("show")
def show_quarantine(
    ctx: typer.Context,
    quarantine_id: Annotated[int, typer.Argument(metavar="ID", help="Quarantine row id (from `quarantine list`).")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one quarantined record in full, with its raw text when it was kept."""
    from xtalbase.platform.repositories.structures import quarantine_record

    with open_db(ctx, db).session() as s:
        row = quarantine_record(s, quarantine_id)
    if as_json:
        print_json(row)
        return
    out = console()
    for key, value in row.items():
        if key != "raw_text":
            out.print(f"{key}: {value}", markup=False, highlight=False)
    if row["raw_text"]:
        out.print("raw_text:")
        out.print(row["raw_text"], markup=False, highlight=False)
