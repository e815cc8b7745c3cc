"""``xtalbase describe``: descriptor vectors of stored structures, computed once per recipe and cached."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, SchedulerOpt, open_db, print_json, print_table, progress

#: Formats by file suffix.
SUFFIXES = (".parquet", ".csv", ".json")


def describe(
    ctx: typer.Context,
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Preset (xenonpy, magpie, crystalnn, rdf, adf) or a stored "
                                        "recipe's id, name or hash prefix.")] = "xenonpy",
    filter: Annotated[Optional[str], typer.Option("--filter", help="OPTIMADE filter of the structures (default: all).")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Recipe parameter KEY=VALUE (repeatable), e.g. basis=cell "
                                                       "or stats=ave,var,gmean; a changed parameter is a new stored recipe.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the matrix (index structure_id) to .parquet, .csv "
                                                "or .json.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes for structural recipes.")] = 1,
    scheduler: SchedulerOpt = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Compute again the structures stored with an error.")] = False,
    list_recipes: Annotated[bool, typer.Option("--list", help="List the stored recipes and exit.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute (or read from the cache) descriptor vectors and print a summary or write the matrix."""
    from xtalbase.errors import XtalbaseError
    from xtalbase.ml.training import parse_params

    handle = open_db(ctx, db)
    store = handle.descriptors
    if list_recipes:
        rows = store.recipes()
        if as_json:
            print_json(rows)
        else:
            print_table([{**r, "hash": r["hash"][:12]} for r in rows], ["id", "name", "kind", "version", "n_features", "hash"],
                        title="descriptor recipes")
        return
    if out is not None and out.suffix.lower() not in SUFFIXES:
        raise XtalbaseError(f"--out must end in one of {', '.join(SUFFIXES)} (got {out.name})")
    stored = store.recipe(recipe, **parse_params(param))
    with progress() as bar:
        task = bar.add_task(f"describing ({stored.name})", total=None)
        frame = store.frame(stored, filter=filter, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                            on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    errors = frame.attrs.get("errors", {})
    if out is not None:
        suffix = out.suffix.lower()
        if suffix == ".parquet":
            frame.to_parquet(out)
        elif suffix == ".csv":
            frame.to_csv(out)
        else:
            frame.reset_index().to_json(out, orient="records", indent=1)
    summary = {"recipe": stored.name, "recipe_id": stored.id, "hash": stored.hash, "structures": len(frame),
               "features": frame.shape[1], "failed": len(errors), "out": str(out) if out else None}
    if as_json:
        print_json({**summary, "errors": {str(k): v for k, v in list(errors.items())[:100]}})
        return
    print_table([summary], list(summary), title="descriptors")
    if errors:
        print_table([{"structure_id": k, "reason": v} for k, v in list(errors.items())[:20]], ["structure_id", "reason"],
                    title=f"{len(errors)} structure(s) without a vector")
