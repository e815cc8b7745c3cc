"""The ``xtalbase`` command: a thin root that joins one module per command group.

Command modules import only typer at load time, so ``xtalbase --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Annotated, Optional

import typer

from xtalbase.commands import csp as csp_commands
from xtalbase.commands import dataset as dataset_commands
from xtalbase.commands import db as db_commands
from xtalbase.commands import demo as demo_commands
from xtalbase.commands import describe as describe_commands
from xtalbase.commands import ingest as ingest_commands
from xtalbase.commands import mlip as mlip_commands
from xtalbase.commands import models as models_commands
from xtalbase.commands import potential as potential_commands
from xtalbase.commands import predict as predict_commands
from xtalbase.commands import provenance as provenance_commands
from xtalbase.commands import query as query_commands
from xtalbase.commands import runs as runs_commands
from xtalbase.commands import serve as serve_commands
from xtalbase.commands import split as split_commands
from xtalbase.commands import train as train_commands
from xtalbase.commands import xrd as xrd_commands
from xtalbase.commands._common import AppState
from xtalbase.errors import Terminated

app = typer.Typer(
    name="xtalbase",
    help="A materials database: structures, XRD patterns, DFT calculations, splits, models and predictions with provenance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[Optional[str], typer.Option("--db", help="Database URL (default: $XTALBASE_DB_URL, else sqlite:///./xtalbase.db).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")] = False,
) -> None:
    ctx.obj = AppState(db_url=db, debug=debug)


@app.command("version")
def version() -> None:
    """Print the xtalbase version and the git revision it runs from."""
    from xtalbase.platform.provenance import git_revision, package_version

    rev = git_revision()
    typer.echo(f"xtalbase {package_version()}" + (f" (git {rev})" if rev else ""))


app.command("init")(db_commands.init)
app.command("demo")(demo_commands.demo)
app.add_typer(db_commands.app, name="db")
app.add_typer(runs_commands.app, name="runs")
app.command("ingest")(ingest_commands.ingest)
app.add_typer(ingest_commands.quarantine_app, name="quarantine")
app.add_typer(split_commands.app, name="split")
app.add_typer(dataset_commands.app, name="dataset")
app.add_typer(xrd_commands.app, name="xrd")
app.command("query")(query_commands.query)
app.command("describe")(describe_commands.describe)
app.command("sql")(query_commands.sql)
app.add_typer(train_commands.app, name="train")
app.command("predict")(predict_commands.predict)
app.add_typer(models_commands.app, name="models")
app.add_typer(potential_commands.app, name="potential")
app.add_typer(mlip_commands.app, name="mlip")
app.add_typer(csp_commands.app, name="csp")
app.add_typer(provenance_commands.app, name="provenance")
app.command("serve")(serve_commands.serve)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line on stderr and exit code 1.

    Usage errors exit 2 with click's message, Ctrl-C exits 130 with ``aborted``, SIGTERM exits 143 with
    ``terminated`` after marking the current run failed and stopping its workers.
    """
    # spglib's C-level notes on stderr and moyo's per-cell log notes (through logging's last-resort handler)
    # would drown the progress bars; the command owns its process (and the workers inherit it), whereas
    # library callers keep their own settings
    os.environ.setdefault("SPGLIB_WARNING", "OFF")
    logging.getLogger("moyo").setLevel(logging.ERROR)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    usage_errors, aborts = _click_exceptions()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = app(args=args, prog_name="xtalbase", standalone_mode=False)
    except Terminated:
        sys.stderr.write("terminated\n")
        sys.exit(128 + signal.SIGTERM)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except usage_errors as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (*aborts, KeyboardInterrupt):
        code = 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        if debug:
            raise
        sys.stderr.write(f"error: {_describe(exc)}\n")
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    # without standalone mode typer returns the exit code of typer.Exit, and 130 for Ctrl-C
    code = code if isinstance(code, int) and not isinstance(code, bool) else 0
    if code == 130:
        sys.stderr.write("aborted\n")
    sys.exit(code)


def _raise_terminated(signum: int, frame: object) -> None:
    # the default action would end the process at once: no run marked failed, workers left behind
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once, mid-cleanup or not
    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Click's error classes: those of the ``click`` package and of the copy typer ships (typer >= 0.29)."""
    import click

    usage: list[type] = [click.ClickException]
    aborts: list[type] = [click.exceptions.Abort]
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        pass
    else:
        usage.append(vendored.ClickException)
        if hasattr(vendored, "Abort"):
            aborts.append(vendored.Abort)
    aborts.append(typer.Abort)
    return tuple(usage), tuple(aborts)


def _describe(exc: Exception) -> str:
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from xtalbase.errors import XtalbaseError

    if isinstance(exc, XtalbaseError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        text = str(exc.orig).strip().splitlines()
        return f"database error: {text[0] if text else type(exc.orig).__name__}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {str(exc).splitlines()[0]}"
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''} (run with --debug for the traceback)"


if __name__ == "__main__":
    main()
