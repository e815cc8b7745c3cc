"""Shared pieces of the command modules: the ``--db`` option, opening the database, output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Optional

import typer

from xtalbase.platform.config import SCHEDULER_HELP

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from xtalbase.api import Database

DbOpt = Annotated[
    Optional[str],
    typer.Option("--db", help="Database URL; overrides --db before the command and $XTALBASE_DB_URL.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
#: Every bulk command's ``--scheduler`` (the Runner reads $XTALBASE_DASK_SCHEDULER when it is not given).
SchedulerOpt = Annotated[Optional[str], typer.Option("--scheduler", help=SCHEDULER_HELP, show_default=False)]


@dataclass
class AppState:
    """Options given before the sub-command (``xtalbase --db URL --debug ...``)."""

    db_url: str | None = None
    debug: bool = False


def state(ctx: typer.Context) -> AppState:
    """The root options, wherever in the command tree ``ctx`` is."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def open_db(ctx: typer.Context, url: str | None = None, *, require_schema: bool = True) -> "Database":
    """Open the database named by the command's ``--db``, the root ``--db``, or the environment."""
    from xtalbase.api import Database

    db = Database(url or state(ctx).db_url)
    if require_schema:
        db.require_schema()
    return db


def console(stderr: bool = False) -> "Console":
    """A rich console (plain text when output is not a terminal)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def progress(transient: bool = True) -> "Progress":
    """A progress bar on stderr that stays silent when stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console(stderr=True), transient=transient, disable=not sys.stderr.isatty(),
    )


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON on stdout (dates and other objects as strings)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def print_table(rows: Iterable[dict[str, Any]], columns: list[str] | None = None, title: str | None = None) -> None:
    """Print ``rows`` (dicts) as a table with ``columns`` (default: keys of the first row)."""
    from rich.table import Table
    from rich.text import Text

    rows = list(rows)
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        # Text, not markup: record names such as "[block=NaCl]" are data, not rich style tags
        table.add_row(*[Text("" if row.get(c) is None else str(row.get(c))) for c in columns])
    console().print(table)


#: Help of every ``--recipe`` option: train, xrd show and xrd match resolve it the same way.
RECIPE_HELP = "XRD recipe id, name or hash prefix (default: the default recipe, Cu Kα 2θ 0-90°)."


def torch_threads(count: int) -> None:
    """Run torch on ``count`` threads in this process (the potential commands; small tensor work slows down
    badly with more threads than free cores, e.g. 18x for a 54-atom descriptor beside one busy process)."""
    import torch

    torch.set_num_threads(max(1, int(count)))


ThreadsOpt = Annotated[int, typer.Option(help="Torch threads (1 is fastest for descriptor work on a busy machine).")]
