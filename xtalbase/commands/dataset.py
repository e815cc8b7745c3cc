"""``xtalbase dataset ...``: training sets from split folds, retraining sets with reasons, lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, console, open_db, print_json, print_table

app = typer.Typer(help="Create, extend and trace training and retraining sets.", no_args_is_help=True)


def _print(info: dict, as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    origin = f"split {info['split']}:{info['fold']}" if info["split"] else f"parent {info['parent']}"
    console().print(f"dataset {info['name']}  hash {info['hash']}  {info['n_members']} structures  ({origin})")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique dataset name.")],
    split: Annotated[str, typer.Option(help="Split to take the structures from.")],
    fold: Annotated[str, typer.Option(help="Fold of the split (train, val, test, fold0, ...).")] = "train",
    description: Annotated[Optional[str], typer.Option(help="Free text kept with the dataset.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a dataset holding one fold of a split."""
    _print(open_db(ctx, db).datasets.create(name, split=split, fold=fold, description=description).summary(), as_json)


@app.command("extend")
def extend(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Parent dataset.")],
    new_name: Annotated[str, typer.Argument(help="Name of the new (child) dataset.")],
    reason: Annotated[str, typer.Option(help="Why these structures are added (stored with each).")],
    ids: Annotated[Optional[Path], typer.Option("--ids", help="File of structure ids, one per line, optionally 'id,score'.")] = None,
    filter: Annotated[Optional[str], typer.Option("--filter", help="OPTIMADE filter selecting structures to add.")] = None,
    score: Annotated[Optional[float], typer.Option(help="Score for every added structure (the id file's scores win).")] = None,
    source_run: Annotated[Optional[int], typer.Option(help="Run that proposed the additions (e.g. a prediction run).")] = None,
    description: Annotated[Optional[str], typer.Option(help="Free text kept with the dataset.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create NEW_NAME = NAME plus the given structures, each carrying the reason, score and source run."""
    from xtalbase.commands.split import read_id_file
    from xtalbase.errors import XtalbaseError

    if ids is None and filter is None:
        raise XtalbaseError("give the structures to add with --ids FILE and/or --filter F")
    listed = read_id_file(ids) if ids else {}
    scores = {i: (s if s is not None else score) for i, s in listed.items()}
    per_id = any(s is not None for s in listed.values())
    handle = open_db(ctx, db).datasets.extend(
        name, new_name, ids=list(listed) if ids else None, filter=filter, reason=reason,
        score={i: s for i, s in scores.items() if s is not None} if per_id else score,
        source_run=source_run, description=description,
    )
    _print(handle.summary(), as_json)


@app.command("lineage")
def lineage(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The chain from NAME back to its root: counts, hashes and the reasons for each addition."""
    chain = open_db(ctx, db).datasets.lineage(name)
    if as_json:
        print_json(chain)
        return
    rows = [{"dataset": c["name"], "hash": c["hash"][:16], "members": c["n_members"], "added": c["added"],
             "from": f"{c['split']}:{c['fold']}" if c["split"] else c["parent"],
             "reasons": "; ".join(f"{r} ({n})" for r, n in c["reasons"].items())} for c in chain]
    print_table(rows, ["dataset", "hash", "members", "added", "from", "reasons"])


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a dataset: hash, size and origin."""
    _print(open_db(ctx, db).datasets.get(name).summary(), as_json)


@app.command("list")
def list_datasets(ctx: typer.Context, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List every dataset."""
    rows = open_db(ctx, db).datasets.list()
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["hash"] = r["hash"][:16]
    print_table(rows, ["name", "hash", "n_members", "parent", "split", "fold", "created_at"])
