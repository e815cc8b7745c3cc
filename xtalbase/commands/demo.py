"""``xtalbase demo``: the main job end to end on a fresh embedded (SQLite) database."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import console, print_table


def demo(
    folder: Annotated[Optional[Path], typer.Argument(help="Folder for the demo database (default: a new temporary folder).")] = None,
) -> None:
    """Create a fresh SQLite database, initialise it and show its status."""
    from xtalbase.api import Database

    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="xtalbase-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "xtalbase.db"
    if path.exists():
        raise typer.BadParameter(f"{path} already exists; give an empty folder", param_hint="FOLDER")
    out = console()
    db = Database(f"sqlite:///{path}")
    db.init()
    info = db.status()
    out.print(f"database: {path}")
    out.print(f"revision: {info['revision']}")
    print_table([{"table": k, "rows": v} for k, v in info["counts"].items()], ["table", "rows"])
