"""``xtalbase predict MODEL_ID``: apply a registered model and store the predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from xtalbase.commands._common import DbOpt, JsonOpt, ThreadsOpt, console, open_db, print_json, print_table, progress, torch_threads


def predict(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="Model id (or name) from `xtalbase models list`.")],
    split: Annotated[Optional[str], typer.Option(help="Predict the structures of this split's --fold.")] = None,
    fold: Annotated[str, typer.Option(help="Fold of --split.")] = "test",
    filter: Annotated[Optional[str], typer.Option("--filter", help="Predict the structures an OPTIMADE filter selects.")] = None,
    pattern: Annotated[Optional[list[Path]], typer.Option(
        "--pattern", help="Measured scan (.xy, .xrdml) to import, peak-pick and predict (repeatable).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Predict a dataset's members (potentials).")] = None,
    plots: Annotated[Optional[Path], typer.Option(help="Potentials: write energy and force parity PNGs here.")] = None,
    show: Annotated[int, typer.Option(help="Print at most this many predictions.")] = 10,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict for a split fold, a filter or measured patterns; store the predictions and print a summary."""
    from xtalbase.errors import XtalbaseError
    from xtalbase.ml import predict as predicting

    chosen = [x for x in (split, filter, pattern, dataset) if x]
    if len(chosen) != 1:
        raise XtalbaseError("give exactly one of --split NAME [--fold F], --filter F, --dataset NAME or --pattern FILE")
    handle = open_db(ctx, db)
    if model_task(handle, model_id) == "potential":
        torch_threads(threads)
        if pattern:
            raise XtalbaseError("a potential predicts structures: give --split, --dataset or --filter")
        predict_with_potential(handle, model_id, split=split, fold=fold, dataset=dataset, filter=filter, plots=plots,
                               show=show, as_json=as_json)
        return
    if dataset:
        raise XtalbaseError("--dataset is for potentials; XRD models take --split, --filter or --pattern")
    with progress() as bar:
        task = bar.add_task(f"predicting with model {model_id}", total=1)
        if split:
            report = predicting.predict_structures(handle, model_id, predicting.structures_of_split(handle, split, fold),
                                                   source=f"split {split}/{fold}")
        elif filter:
            ids = handle.query(filter).ids()
            report = predicting.predict_structures(handle, model_id, list(ids), source=f"filter {filter}")
        else:
            report = predicting.predict_patterns(handle, model_id, import_patterns(handle, pattern))
        bar.advance(task)
    if as_json:
        print_json({"run_id": report.run_id, "model_id": report.model_id, "summary": report.summary, "predictions": report.rows})
        return
    print_predictions(report, show)


def import_patterns(handle: Any, paths: list[Path], on_progress: Any = None) -> list[int]:
    """Import measured scans with the XRD module's reader and peak picking; returns their pattern ids.

    Re-importing a file returns the pattern already stored for its content.
    """
    from xtalbase.xrd.scans import import_scans

    progress = (lambda _done: on_progress(1)) if on_progress else None  # the caller's bar advances by files
    return [int(r["pattern_id"]) for r in import_scans(handle, paths, progress=progress)]


def print_predictions(report: Any, show: int = 10) -> None:
    """The summary line and the first ``show`` predictions as a table."""
    out = console()
    s = report.summary
    line = f"stored {len(report.prediction_ids)} predictions of model {report.model_id} (run {report.run_id})"
    if "accuracy_vs_stored" in s:
        line += f"; accuracy against stored labels {s['accuracy_vs_stored']:.3f}, top-5 {s['top5_vs_stored']:.3f}"
    if "mae_vs_stored" in s:
        line += f"; MAE against stored values {s['mae_vs_stored']:.3f} Å"
    out.print(line)
    if "predicted" in s:
        out.print("predicted: " + ", ".join(f"{k} {v}" for k, v in s["predicted"].items()))
    rows = []
    for r in report.rows[:show]:
        what = r.get("name") or (f"{r.get('formula')} (#{r['structure_id']})" if r.get("structure_id") else "")
        top = ", ".join(f"{c} {p:.2f}" for c, p in r.get("top_k", [])[:3])
        rows.append({"prediction": r["prediction_id"], "input": what,
                     "output": r.get("label") or ", ".join(f"{k}={v:.3f}" for k, v in r.get("values", {}).items()), "top-3": top})
    print_table(rows, ["prediction", "input", "output", "top-3"])


def model_task(handle: Any, model_id: str) -> str:
    """The ``task`` of a registered model (``classification``, ``regression``, ``potential``)."""
    from xtalbase.ml.registry import get_model

    with handle.session() as s:
        return get_model(s, model_id).task


def predict_with_potential(handle: Any, model_id: str, *, split: str | None, fold: str, dataset: str | None,
                           filter: str | None, plots: Path | None, show: int, as_json: bool) -> None:
    """Store a potential's energies, forces and stresses as predictions; optional parity plots."""
    from xtalbase.mlip.potentials import load_potential, parity_plots, predict_potential, selected_configurations

    source = f"split {split}/{fold}" if split else f"dataset {dataset}" if dataset else f"filter {filter}"
    with progress() as bar:
        task = bar.add_task(f"predicting with potential {model_id}", total=None)
        run_id, rows, summary = predict_potential(handle, model_id, source=source, split=split, fold=fold, dataset=dataset,
                                                  filter=filter, on_progress=lambda n: bar.advance(task, n))
    written: list[Path] = []
    if plots:
        from xtalbase.mlip.evaluation import predict_configurations

        configs, _ = selected_configurations(handle, split=split, fold=fold, dataset=dataset, filter=filter,
                                             require_forces=False)
        labelled = [c for c in configs if c.energy is not None]
        written = parity_plots(labelled, predict_configurations(load_potential(handle, model_id), labelled),
                               plots, f"model{model_id}")
    if as_json:
        print_json({"run_id": run_id, "model_id": model_id, "summary": summary, "predictions": rows[:show] if show else rows,
                    "plots": [str(p) for p in written]})
        return
    out = console()
    line = f"stored {len(rows)} predictions of potential {model_id} (run {run_id})"
    if summary.get("energy_rmse_mev_vs_stored") is not None:
        line += (f"; against stored DFT: E RMSE {summary['energy_rmse_mev_vs_stored']:.2f} meV/atom, "
                 f"F RMSE {summary['force_rmse_vs_stored']:.3f} eV/Å")
    out.print(line)
    print_table([{"prediction": r["prediction_id"], "structure": r["structure_id"], "E/atom (eV)": f"{r['energy_per_atom']:.4f}",
                  "stored E/atom": "" if r["stored_energy"] is None else f"{r['stored_energy'] / r['n_atoms']:.4f}",
                  "extrapolating atoms": r["extrapolating_atoms"]} for r in rows[:show]])
    for p in written:
        out.print(f"plot: {p}")
