"""``xtalbase csp train | sample | import | evaluate | leaderboard``: crystal-structure prediction compared on one split."""

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

app = typer.Typer(help="Crystal-structure prediction: train, sample, import, evaluate and compare models on one stored split.",
                  no_args_is_help=True)

ModeOpt = Annotated[str, typer.Option(help="reference (CDVAE/DiffCSP definitions) | strict (also volume, space group, misses).")]
WorkersOpt = Annotated[int, typer.Option(help="Matcher worker processes.")]
OxidationOpt = Annotated[str, typer.Option(help="SMACT table of the composition gate: installed (the reference code under the "
                                                "installed SMACT) | smact14 (the SMACT 2.x table behind the published numbers).")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds per (prediction, reference) pair before it is stopped and stored as a timeout; "
                                                "0: none. Local workers only: a Dask cluster does not stop a pair.")]


def _split(handle, name: str):  # noqa: ANN001, ANN202
    return handle.splits.get(name)


@app.command("train")
def train(
    ctx: typer.Context,
    split: Annotated[str, typer.Option(help="Split whose train fold the model learns from (val: model selection).")],
    model: Annotated[str, typer.Option(help="random | template | diffcsp (or a registered model).")],
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (diffcsp).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Model parameter KEY=VALUE (repeatable), e.g. hidden=64 "
                                                                       "or device=cuda for diffcsp.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name of the registered model.")] = None,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit a CSP model and register it (models row with its artifact, the split and the training-set hash)."""
    torch_threads(threads)
    from xtalbase.ml.training import parse_params

    handle = open_db(ctx, db)
    params = parse_params(param)
    if epochs is not None:
        params["epochs"] = epochs
    with progress() as bar:
        bar.add_task(f"training {model} on {split}", total=None)
        model_id = handle.csp.train(_split(handle, split), model, seed=seed, name=name, params=params)
    if as_json:
        print_json({"model_id": model_id})
        return
    console().print(f"model {model_id}: {model} trained on split {split} (seed {seed})")


@app.command("sample")
def sample(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="CSP model id (or name) from `xtalbase csp train`.")],
    split: Annotated[str, typer.Option(help="Split whose --fold compositions are predicted.")],
    fold: Annotated[str, typer.Option(help="Fold of --split.")] = "test",
    k: Annotated[int, typer.Option(help="Samples per composition.")] = 1,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    name: Annotated[Optional[str], typer.Option(help="Name of the CSP run.")] = None,
    device: Annotated[str, typer.Option(help="Torch device of a torch model (cpu, cuda, cuda:1...).")] = "cpu",
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Sampling parameter KEY=VALUE (repeatable), e.g. "
                                                                       "timesteps=250 for diffcsp; stored with the run.")] = None,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample k structures per composition of the fold and store them as an immutable CSP run."""
    torch_threads(threads)
    from xtalbase.ml.training import parse_params

    handle = open_db(ctx, db)
    with progress() as bar:
        bar.add_task(f"sampling model {model_id}, k = {k}", total=None)
        info = handle.csp.sample(model_id, _split(handle, split), fold=fold, k=k, seed=seed, name=name, device=device,
                                 params=parse_params(param))
    if as_json:
        print_json(info.to_dict())
        return
    console().print(f"CSP run {info.id} {info.name!r}: {info.n_samples} samples of {info.n_structures} structures "
                    f"in {info.seconds:.1f} s (split hash {info.split_hash[:16]})")


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Folder of <material_id>__<k>.{cif,vasp,extxyz}, a CSV (material_id, sample, cif), "
                                              "an xtalbase npz/JSON interchange file, or a CDVAE/DiffCSP eval_*.pt.")],
    split: Annotated[str, typer.Option(help="Split the predictions were made for.")],
    name: Annotated[str, typer.Option(help="Name of the CSP run (and the model label unless --model).")],
    fold: Annotated[str, typer.Option(help="Fold of --split.")] = "test",
    k: Annotated[Optional[int], typer.Option(help="Samples per structure (default: the largest sample index + 1).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model label on the leaderboard.")] = None,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="Allow a .pt file (a pickle: loading it runs any code it holds).")] = False,
    order: Annotated[Optional[Path], typer.Option(help="The test CSV a .pt was made from (its rows give the crystals' order).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store predictions made elsewhere as a CSP run (every row checked against its target's atoms)."""
    handle = open_db(ctx, db)
    if trust_pickle:
        console(stderr=True).print(f"[yellow]warning:[/] loading {path} with pickle runs any code it contains")
    info = handle.csp.import_predictions(_split(handle, split), path, name=name, fold=fold, k=k, model=model,
                                         trust_pickle=trust_pickle, order=str(order) if order else None)
    if as_json:
        print_json(info.to_dict())
        return
    console().print(f"CSP run {info.id} {info.name!r}: {info.n_samples} samples of {info.n_structures} structures imported")


@app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="CSP run id or name.")],
    mode: ModeOpt = "reference",
    k: Annotated[Optional[int], typer.Option(help="Best of the first k samples (default: the run's k).")] = None,
    gating: Annotated[str, typer.Option(help="diffcsp (reference and prediction valid at k = 1) | cdvae (prediction only).")] = "diffcsp",
    oxidation_states: OxidationOpt = "installed",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    timeout: TimeoutOpt = 60.0,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Match rate and RMSE of a CSP run (pairs matched once and stored; later evaluations read them)."""
    from xtalbase.csp.matching import MatchSettings

    handle = open_db(ctx, db)
    info = handle.csp.get(run)
    with progress() as bar:
        task = bar.add_task(f"matching {info.name}", total=info.n_structures)
        result = handle.csp.evaluate(run, mode=mode, k=k, gating=gating, workers=workers, scheduler=scheduler,
                                     timeout=timeout or None,
                                     settings=MatchSettings(oxidation_states=oxidation_states),
                                     progress=lambda n: bar.update(task, completed=n))
    if as_json:
        print_json(result)
        return
    keys = [key for key in result if key not in ("status_counts", "options")]
    print_table([{"metric": key, "value": result[key]} for key in keys], title=f"CSP run {info.name}")
    console().print(f"pairs by status: {result['status_counts']}")


@app.command("leaderboard")
def leaderboard(
    ctx: typer.Context,
    split: Annotated[str, typer.Option(help="Split whose runs are compared (by its content hash).")],
    mode: ModeOpt = "reference",
    k: Annotated[Optional[list[int]], typer.Option("--k", help="k values (repeatable; default 1 and each run's k).")] = None,
    fold: Annotated[str, typer.Option(help="Fold of --split.")] = "test",
    run: Annotated[Optional[list[str]], typer.Option("--run", help="Only this CSP run (repeatable; default every run on the split).")] = None,
    format: Annotated[str, typer.Option("--format", help="md | csv | json.")] = "md",
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG of match rate vs k.")] = None,
    oxidation_states: OxidationOpt = "installed",
    workers: WorkersOpt = 2,
    scheduler: SchedulerOpt = None,
    timeout: TimeoutOpt = 60.0,
    db: DbOpt = None,
) -> None:
    """Every CSP run on the split's hash side by side; runs on other split hashes listed apart."""
    import sys

    from xtalbase.csp.leaderboard import plot as draw
    from xtalbase.csp.leaderboard import to_csv, to_markdown
    from xtalbase.csp.matching import MatchSettings

    handle = open_db(ctx, db)
    board = handle.csp.leaderboard(_split(handle, split), mode=mode, ks=k, fold=fold, runs=run, workers=workers, scheduler=scheduler,
                                   timeout=timeout or None,
                                   settings=MatchSettings(oxidation_states=oxidation_states))
    if board["elsewhere"]:
        console(stderr=True).print(f"[yellow]warning:[/] {len(board['elsewhere'])} CSP run(s) on other split hashes are not "
                                   "comparable and are listed apart")
    if format == "json":
        print_json(board)
    elif format == "csv":
        sys.stdout.write(to_csv(board))
    else:
        typer.echo(to_markdown(board))
    if plot is not None:
        console(stderr=True).print(f"plot: {draw(board, plot)}")
