"""``xtalbase mlip gap | expand | label | loop``: key-motif data expansion of a potential's training set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, ThreadsOpt, console, open_db, print_json, print_table, torch_threads

app = typer.Typer(help="Key-motif data expansion: coverage gap, surrogate design, oracle labels, retraining loop.",
                  no_args_is_help=True)

StrategyOpt = Annotated[str, typer.Option(help="key-motif | gap | outlier | random.")]
QuantileOpt = Annotated[Optional[float], typer.Option(
    help="Outliers outside the [q, 1-q] quantile range of the training descriptors (default: the model's min-max).")]
AngleOpt = Annotated[Optional[float], typer.Option(help="Cutoff (Å) of the angle distributions (default 3.5).")]
EnergyOpt = Annotated[Optional[str], typer.Option(
    help="Source of E_atom in the energy penalty: potential (default with --model) | oracle | none.")]
PrototypeOpt = Annotated[Optional[list[str]], typer.Option("--prototype", help="Limit the generators (repeatable).")]


@app.command("gap")
def gap(
    ctx: typer.Context,
    train: Annotated[str, typer.Option(help="Training dataset.")],
    target: Annotated[str, typer.Option(help="Target dataset (the environments the potential must cover).")],
    model: Annotated[Optional[str], typer.Option(help="Potential id or name: finds the target's outlier atoms.")] = None,
    quantile: QuantileOpt = None,
    rc_angle: AngleOpt = None,
    top: Annotated[int, typer.Option(help="How many motifs to list.")] = 10,
    plots: Annotated[Optional[Path], typer.Option(help="Write RDF/ADF plots with the gap shaded to this folder.")] = None,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The coverage gap of --target against --train: bins, top motifs with scores, outlier atoms per element."""
    torch_threads(threads)
    from xtalbase.mlip.expansion import gap_report, plot_gap

    report = gap_report(open_db(ctx, db), train=train, target=target, model_id=model, quantile=quantile, rc_angle=rc_angle)
    info = report.to_dict(top)
    if plots is not None:
        info["plots"] = [str(p) for p in plot_gap(report, plots)]
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(f"gap of {target!r} against {train!r}: {len(info['types'])} types, rc {report.rc:g} Å, "
              f"angles within {report.rc_angle:g} Å; {info['n_outlier_atoms']} outlier atoms"
              + ("" if model else " (no --model: outliers unknown)"))
    print_table([{"element": e, **v} for e, v in info["outliers"].items()], title="target atoms")
    print_table([{"motif": m["label"], "score": f"{m['score']:.4g}", "gap": f"{m['gap']:.4g}"} for m in info["top_motifs"]],
                title=f"top motifs ({info['strategy']})")
    for path in info.get("plots", []):
        out.print(f"plot: {path}")


@app.command("expand")
def expand(
    ctx: typer.Context,
    train: Annotated[str, typer.Option(help="Training dataset (the parent of the new one).")],
    target: Annotated[str, typer.Option(help="Target dataset.")],
    name: Annotated[str, typer.Option(help="Name of the new (child) dataset.")],
    out: Annotated[Path, typer.Option(help="Labelling folder to write (manifest, POSCARs, labels).")],
    model: Annotated[Optional[str], typer.Option(help="Potential id or name (needed by key-motif and outlier).")] = None,
    strategy: StrategyOpt = "key-motif",
    n: Annotated[int, typer.Option(help="How many surrogates to add.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the random strategy and of the displacements.")] = 0,
    oracle: Annotated[str, typer.Option(help="emt | chgnet | files (write inputs; `mlip label` ingests the outputs).")] = "emt",
    pool: Annotated[Optional[str], typer.Option(help="Choose from this dataset's labelled structures instead.")] = None,
    template: Annotated[Optional[list[int]], typer.Option("--template", help="A stored structure id as an extra generator.")] = None,
    prototype: PrototypeOpt = None,
    quantile: QuantileOpt = None,
    rc_angle: AngleOpt = None,
    energy: EnergyOpt = None,
    diverse: Annotated[bool, typer.Option(help="Pick greedily: each pick's motifs score zero for the next picks.")] = False,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Design, select and label N surrogates and store the child dataset (each member with its reason)."""
    torch_threads(threads)
    from xtalbase.mlip.expansion import expand as do_expand
    from xtalbase.mlip.expansion import gap_report

    handle = open_db(ctx, db)
    report = gap_report(handle, train=train, target=target, model_id=model, quantile=quantile, rc_angle=rc_angle)
    result = do_expand(handle, train=train, target=target, strategy=strategy, n=n, oracle=oracle, out=out, name=name,
                       model_id=model, seed=seed, quantile=quantile, energy=energy, prototypes=prototype,
                       template_ids=template or (), pool=pool, report=report, diverse=diverse)
    rows = [{"key": s.key, "formula": s.atoms.get_chemical_formula(), "score": round(s.score, 4),
             "top motif": s.top_motif or "", "generator": s.label, "structure_id": result.structure_ids.get(s.key)}
            for s in result.selected]
    info = {"folder": str(result.folder), "dataset": result.dataset.summary() if result.dataset else None,
            "oracle": result.oracle, "selected": rows}
    if as_json:
        print_json(info)
        return
    print_table(rows, title=f"{strategy}: {len(rows)} surrogates")
    if result.dataset is None:
        console().print(f"inputs written to {result.folder}; run DFT in each candidate folder, then "
                        f"`xtalbase mlip label {result.folder}` creates {name!r}")
    else:
        console().print(f"dataset {name!r}: {result.dataset.n_members} members ({len(rows)} added), "
                        f"hash {result.dataset.hash[:12]}; labels in {result.folder}")


@app.command("label")
def label(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A labelling folder written by `mlip expand --oracle files`.")],
    partial: Annotated[bool, typer.Option(help="Create the dataset from the candidates labelled so far.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest the DFT outputs (vasprun.xml, OUTCAR, extxyz) in a labelling folder and create its dataset."""
    from xtalbase.mlip.expansion import finish

    handle = finish(open_db(ctx, db), folder, partial=partial)
    if as_json:
        print_json(handle.summary())
        return
    console().print(f"dataset {handle.name!r}: {handle.n_members} members, parent {handle.parent!r}, hash {handle.hash[:12]}")


@app.command("loop")
def loop(
    ctx: typer.Context,
    train: Annotated[str, typer.Option(help="Training dataset.")],
    target: Annotated[str, typer.Option(help="Target dataset (drives the motif analysis).")],
    holdout: Annotated[str, typer.Option(help="Hold-out dataset every model is scored on (never seen by the analysis).")],
    out: Annotated[Path, typer.Option(help="Folder for labelling folders, results table and plot.")],
    prefix: Annotated[str, typer.Option(help="Prefix of the dataset and model names this run creates.")] = "loop",
    strategies: Annotated[str, typer.Option(
        help="Comma-separated strategies; NAME:diverse selects greedily (e.g. key-motif:diverse).")] = "key-motif,gap,outlier,random",
    n: Annotated[str, typer.Option(help="N values: 1..10 or a comma list.")] = "1..10",
    seeds: Annotated[int, typer.Option(help="Number of seeds (0, 1, ...).")] = 3,
    oracle: Annotated[str, typer.Option(help="emt | chgnet.")] = "emt",
    pool: Annotated[Optional[str], typer.Option(help="Choose from this dataset's labelled structures instead.")] = None,
    preset: Annotated[str, typer.Option(help="Potential preset (or --recipe).")] = "default",
    recipe: Annotated[Optional[Path], typer.Option(help="A potential recipe JSON file.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of every potential.")] = 100,
    lbfgs_iterations: Annotated[int, typer.Option(help="L-BFGS iterations per epoch.")] = 20,
    prototype: PrototypeOpt = None,
    quantile: QuantileOpt = None,
    energy: EnergyOpt = None,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare strategies: for each seed, strategy and N, extend, label, retrain from scratch, score on --holdout."""
    torch_threads(threads)
    from xtalbase.mlip.loop import run_loop
    from xtalbase.mlip.training import TrainOptions

    out_console = console(stderr=True)
    result = run_loop(open_db(ctx, db), train=train, target=target, holdout=holdout, out=out, prefix=prefix,
                      strategies=[s.strip() for s in strategies.split(",") if s.strip()], n_values=_n_values(n),
                      seeds=list(range(seeds)), oracle=oracle, recipe=recipe or preset, pool=pool,
                      options=TrainOptions(epochs=epochs, lbfgs_iterations=lbfgs_iterations), quantile=quantile,
                      energy=energy, prototypes=prototype,
                      on_row=lambda r: out_console.print(f"{r['strategy']} N={r['n']} seed {r['seed']}: "
                                                         f"E {r['energy_rmse_mev']:.2f} meV/atom, F {r['force_rmse']:.3f} eV/Å"))
    if as_json:
        print_json({"run_id": result.run_id, "table": result.table, "files": [str(p) for p in result.files],
                    "seconds": round(result.seconds, 1)})
        return
    console().print(result.markdown())
    console().print(f"run {result.run_id}, {result.seconds:.0f} s; files: {', '.join(str(p) for p in result.files)}")


def _n_values(text: str) -> list[int]:
    """``1..10`` or ``1,2,4``."""
    from xtalbase.errors import XtalbaseError

    try:
        if ".." in text:
            lo, hi = text.split("..")
            return list(range(int(lo), int(hi) + 1))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise XtalbaseError(f"--n {text!r}: give a range like 1..10 or a list like 1,2,4") from None
