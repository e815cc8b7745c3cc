"""``xtalbase potential import-n2p2 | evaluate``: bring in published potentials and measure any potential."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import (
    DbOpt,
    JsonOpt,
    SchedulerOpt,
    ThreadsOpt,
    console,
    open_db,
    print_json,
    print_table,
    progress,
    torch_threads,
)

app = typer.Typer(help="Machine-learning potentials: import n2p2 models, evaluate on stored DFT.", no_args_is_help=True)


@app.command("import-n2p2")
def import_n2p2(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder with input.nn, scaling.data and weights.NNN.data.")],
    name: Annotated[str, typer.Option(help="Name of the registered potential.")],
    units: Annotated[str, typer.Option(help="Units the files use: bohr-hartree (as mlearn wrote them) | angstrom-ev.")] = "bohr-hartree",
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an n2p2 potential (converted to Å and eV) as a model with its files' hashes as origin."""
    torch_threads(threads)
    from xtalbase.mlip.potentials import import_n2p2 as do_import

    report = do_import(open_db(ctx, db), folder, name=name, units=units)
    if as_json:
        print_json({"model_id": report.model_id, "run_id": report.run_id, "artifact_sha256": report.artifact_sha256})
        return
    console().print(f"model {report.model_id}: n2p2 potential {name!r} from {folder} ({units}); "
                    f"artifact sha256 {report.artifact_sha256[:16]}...")


@app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="Potential id (or name) from `xtalbase models list`.")],
    split: Annotated[Optional[str], typer.Option(help="Evaluate on this split's --fold.")] = None,
    fold: Annotated[str, typer.Option(help="Fold of --split.")] = "test",
    dataset: Annotated[Optional[str], typer.Option(help="Evaluate on a dataset's members.")] = None,
    filter: Annotated[Optional[str], typer.Option("--filter", help="Evaluate on the structures an OPTIMADE filter selects.")] = None,
    threads: ThreadsOpt = 1,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes (one torch thread each; 1: "
                                         "in this process on --threads).")] = 1,
    scheduler: SchedulerOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Energy (meV/atom) and force (eV/Å) errors, per group when the data carry one, and the extrapolating atoms."""
    torch_threads(threads)
    from xtalbase.errors import XtalbaseError
    from xtalbase.mlip.potentials import evaluate_potential

    if sum(x is not None for x in (split, dataset, filter)) != 1:
        raise XtalbaseError("give exactly one of --split NAME [--fold F], --dataset NAME or --filter F")
    handle = open_db(ctx, db)
    with progress() as bar:
        task = bar.add_task(f"evaluating potential {model_id}", total=None)
        result = evaluate_potential(handle, model_id, split=split, fold=fold, dataset=dataset, filter=filter,
                                    workers=workers, scheduler=scheduler, on_progress=lambda n: bar.advance(task, n))
    if as_json:
        print_json(result.summary())
        return
    rows = [{"group": "all", **_row(result.summary())}] + [{"group": g, **_row(m)} for g, m in result.groups.items()]
    print_table(rows, list(rows[0]))


def _row(m: dict) -> dict:
    def f(v: object, digits: int) -> str:
        return "" if v is None else f"{v:.{digits}f}"
    return {"n": m["n_structures"], "atoms": m["n_atoms"], "E RMSE meV/atom": f(m["energy_rmse_mev"], 2),
            "E MAE meV/atom": f(m["energy_mae_mev"], 2), "F RMSE eV/Å": f(m["force_rmse"], 4),
            "F MAE eV/Å": f(m["force_mae"], 4), "extrapolating": m["extrapolating_atoms"]}
