"""``xtalbase train xrd``: train a crystal-system, space-group or lattice-constant model on XRD features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from xtalbase.commands._common import (
    RECIPE_HELP,
    DbOpt,
    JsonOpt,
    ThreadsOpt,
    console,
    open_db,
    print_json,
    print_table,
    progress,
    torch_threads,
)
from xtalbase.ml.algorithms import algorithm_help
from xtalbase.ml.targets import metric_names, targets_help

app = typer.Typer(help="Train models and register them with their provenance.", no_args_is_help=True)


@app.command("xrd")
def train_xrd(
    ctx: typer.Context,
    target: Annotated[str, typer.Option(help=targets_help() + ".")] = "crystal_system",
    split: Annotated[Optional[str], typer.Option(help="Split to train on (its --fold) and evaluate on (val, test).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset to train on instead of a split fold (evaluated on its split).")] = None,
    fold: Annotated[str, typer.Option(help="Training fold of --split.")] = "train",
    features: Annotated[str, typer.Option(help="peaks11 (first 10 peak positions + peak count) | profile (broadened pattern) | "
                                               "peaks11_aug / profile_aug (trained on synthetic measured-like scans; "
                                               "profile_aug with --algorithm cnn).")] = "peaks11",
    algorithm: Annotated[str, typer.Option(help=algorithm_help())] = "extratrees",
    recipe: Annotated[Optional[str], typer.Option(help=RECIPE_HELP)] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same inputs + seed = same model and artifact hash).")] = 0,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Hyperparameter key=value (repeatable), e.g. n_estimators=300.")] = None,
    min_intensity: Annotated[Optional[float], typer.Option(help="Count only peaks >= this % of the strongest (default 0: every reflection).")] = None,
    merge_tol: Annotated[Optional[float], typer.Option(help="Merge peaks closer than this (2θ degrees) before counting (default 0).")] = None,
    name: Annotated[Optional[str], typer.Option(help="A name for the model.")] = None,
    parent: Annotated[Optional[int], typer.Option(help="Parent model id (default: the newest model on the dataset's parent).")] = None,
    plots: Annotated[Optional[Path], typer.Option(help="Write confusion matrix, importances and surrogate-tree PNGs here.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on XRD features of a split fold or dataset, print its metrics and register it."""
    from xtalbase.ml.training import parse_params
    from xtalbase.ml.training import train_xrd as train

    handle = open_db(ctx, db)
    options = {"min_intensity": min_intensity, "merge_tol": merge_tol}
    with progress() as bar:
        task = bar.add_task(f"training {algorithm} for {target}", total=1)
        report = train(handle, target=target, split=split, dataset=dataset, fold=fold, features=features,
                       feature_options={k: v for k, v in options.items() if v is not None}, algorithm=algorithm,
                       recipe=recipe, seed=seed, params=parse_params(param), name=name, parent_model_id=parent)
        bar.advance(task)
    written = write_plots(handle, report.model_id, plots) if plots else []
    if as_json:
        print_json({"model_id": report.model_id, "run_id": report.run_id, "metrics": report.metrics,
                    "artifact_sha256": report.artifact_sha256, "fit_seconds": report.fit_seconds, "plots": [str(p) for p in written]})
        return
    out = console()
    out.print(f"model {report.model_id}: {algorithm} {target} on {report.n_train} structures "
              f"(fit {report.fit_seconds:.2f} s, artifact sha256 {report.artifact_sha256[:16]}...)")
    print_metrics(report.metrics)
    for path in written:
        out.print(f"plot: {path}")


def print_metrics(metrics: dict[str, Any], title: str | None = None) -> None:
    """Metrics per fold as a table, then the test (else val) confusion matrix when there is one."""
    folds = [f for f in ("val", "test") if metrics.get(f, {}).get("n")]
    keys = [k for k in metric_names() if any(k in metrics[f] for f in folds)]
    rows = [{"fold": f, "n": metrics[f]["n"], **{k: _fmt(metrics[f].get(k)) for k in keys}} for f in folds]
    if rows:
        print_table(rows, ["fold", "n", *keys], title=title)
    for f in ("test", "val"):
        m = metrics.get(f, {})
        if "confusion_matrix" in m:
            labels = [str(x) for x in m["confusion_labels"]]
            print_table([{"true \\ predicted": lab, **{p[:5]: v for p, v in zip(labels, row)}}
                         for lab, row in zip(labels, m["confusion_matrix"])],
                        ["true \\ predicted", *[p[:5] for p in labels]], title=f"confusion matrix ({f})")
            break


def write_plots(handle: Any, model_id: int, folder: Path) -> list[Path]:
    """Confusion matrix, feature importances and (for crystal-system models) the surrogate tree."""
    from xtalbase.ml.plots import plots_for_model

    return plots_for_model(handle, model_id, folder)


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command("potential")
def train_potential(
    ctx: typer.Context,
    split: Annotated[Optional[str], typer.Option(help="Split whose --fold holds the training configurations (val/test folds evaluate).")] = None,
    fold: Annotated[str, typer.Option(help="Training fold of --split.")] = "train",
    dataset: Annotated[Optional[str], typer.Option(help="Dataset to train on (a retraining set: its parent's model is the parent).")] = None,
    filter: Annotated[Optional[str], typer.Option("--filter", help="Train on the structures an OPTIMADE filter selects.")] = None,
    preset: Annotated[str, typer.Option(help="Descriptor/network preset: default | sakoda2026 | mlearn-Mo | mlearn-Si.")] = "default",
    recipe: Annotated[Optional[Path], typer.Option(help="A potential recipe JSON file (instead of --preset).")] = None,
    optimizer: Annotated[str, typer.Option(help="lbfgs (full batch, the study's optimiser) | adam (mini-batches).")] = "lbfgs",
    epochs: Annotated[int, typer.Option(help="Maximum epochs (L-BFGS: one step of --lbfgs-iterations iterations).")] = 100,
    lbfgs_iterations: Annotated[int, typer.Option(help="L-BFGS iterations per epoch.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Configurations per Adam step.")] = 32,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    energy_weight: Annotated[Optional[float], typer.Option(help="Loss weight of MSE(E/atom) (default 1/Var over training).")] = None,
    force_weight: Annotated[Optional[float], typer.Option(help="Loss weight of MSE(force components) (default 1/Var).")] = None,
    stress_weight: Annotated[float, typer.Option(help="Loss weight of MSE(stress, eV/Å³); 0 leaves stress out.")] = 0.0,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a better validation loss.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the weights and batch order (same inputs + seed = same artifact hash).")] = 0,
    name: Annotated[Optional[str], typer.Option(help="A name for the model.")] = None,
    parent: Annotated[Optional[int], typer.Option(help="Parent model id (default: the newest potential on the dataset's parent).")] = None,
    warm_start: Annotated[bool, typer.Option(help="Start from the parent model's weights.")] = False,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a Behler–Parrinello potential on stored energies and forces and register it."""
    torch_threads(threads)
    from xtalbase.mlip.potentials import train_potential as train
    from xtalbase.mlip.training import TrainOptions

    handle = open_db(ctx, db)
    options = TrainOptions(optimizer=optimizer, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           lbfgs_iterations=lbfgs_iterations, energy_weight=energy_weight, force_weight=force_weight,
                           stress_weight=stress_weight, patience=patience, seed=seed)
    with progress() as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        fit_task = bar.add_task(f"training ({optimizer})", total=epochs)

        def on_epoch(row: dict[str, float]) -> None:
            text = f"training ({optimizer}) loss {row['train_loss']:.4g}"
            if "val_loss" in row:
                text += f", val E {row['val_energy_rmse_mev']:.2f} meV/atom, F {row['val_force_rmse']:.3f} eV/Å"
            bar.update(fit_task, completed=row["epoch"], description=text)

        report = train(handle, split=split, fold=fold, dataset=dataset, filter=filter, recipe=recipe or preset,
                       options=options, name=name, parent_model_id=parent, warm_start=warm_start,
                       on_progress=on_progress, on_epoch=on_epoch)
    if as_json:
        print_json({"model_id": report.model_id, "run_id": report.run_id, "metrics": report.metrics,
                    "artifact_sha256": report.artifact_sha256, "seconds": report.seconds})
        return
    out = console()
    out.print(f"model {report.model_id}: HDNNP on {report.n_train} configurations ({report.n_val} for validation); "
              f"best epoch {report.best_epoch}, stopped: {report.stop_reason}; descriptors {report.seconds['descriptors']:.1f} s, "
              f"fit {report.seconds['fit']:.1f} s; artifact sha256 {report.artifact_sha256[:16]}...")
    print_potential_metrics(report.metrics)


def print_potential_metrics(metrics: dict[str, Any]) -> None:
    """Energy/force errors per fold (and the mean-energy baseline on test) as one table."""
    rows = []
    for fold in ("val", "test", "baseline_test"):
        m = metrics.get(fold)
        if not m:
            continue
        rows.append({"fold": fold, "n": m.get("n_structures", ""),
                     "E RMSE meV/atom": _fmt(m.get("energy_rmse_mev")), "E MAE meV/atom": _fmt(m.get("energy_mae_mev")),
                     "F RMSE eV/Å": _fmt(m.get("force_rmse")), "F MAE eV/Å": _fmt(m.get("force_mae")),
                     "extrapolating atoms": m.get("extrapolating_atoms", "")})
    if rows:
        print_table(rows, list(rows[0]))


@app.command("property")
def train_property(
    ctx: typer.Context,
    target: Annotated[str, typer.Option(help="Numeric source property to predict, e.g. formation_energy_per_atom, heat_ref, dir_gap.")],
    split: Annotated[Optional[str], typer.Option(help="Split to train on (its --fold) and evaluate on (val, test).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset to train on instead of a split fold (evaluated on its split).")] = None,
    fold: Annotated[str, typer.Option(help="Training fold of --split.")] = "train",
    descriptor: Annotated[str, typer.Option(help="Descriptor recipe: magpie (132) | xenonpy (290) | crystalnn | rdf | adf | a stored recipe name.")] = "magpie",
    algorithm: Annotated[str, typer.Option(help="xgboost | mlp (torch network; early-stops on the val fold) | extratrees.")] = "xgboost",
    seed: Annotated[int, typer.Option(help="Random seed (same inputs + seed = same model and artifact hash).")] = 0,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Hyperparameter key=value (repeatable), e.g. max_epochs=300.")] = None,
    init_from: Annotated[Optional[str], typer.Option(help="Start the mlp from this registered mlp (id or name): transfer learning.")] = None,
    freeze: Annotated[bool, typer.Option(help="With --init-from: keep the pretrained body fixed and train a new head only.")] = False,
    name: Annotated[Optional[str], typer.Option(help="A name for the model.")] = None,
    parent: Annotated[Optional[int], typer.Option(help="Parent model id (default: --init-from, else the newest on the dataset's parent).")] = None,
    threads: ThreadsOpt = 1,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model of a numeric source property on descriptor features, print its errors and register it."""
    from xtalbase.errors import XtalbaseError
    from xtalbase.ml.property import train_property as train
    from xtalbase.ml.training import parse_params

    params = parse_params(param)
    if freeze:
        if init_from is None:
            raise XtalbaseError("--freeze keeps a pretrained body fixed: give --init-from MODEL")
        params["freeze"] = "body"
    if algorithm == "mlp":
        torch_threads(threads)
    handle = open_db(ctx, db)
    ref: int | str | None = int(init_from) if init_from is not None and init_from.isdigit() else init_from
    with progress() as bar:
        task = bar.add_task(f"training {algorithm} for {target}", total=1)
        report = train(handle, target=target, split=split, dataset=dataset, fold=fold, descriptor=descriptor, algorithm=algorithm,
                       seed=seed, params=params, init_from=ref, name=name, parent_model_id=parent)
        bar.advance(task)
    if as_json:
        print_json({"model_id": report.model_id, "run_id": report.run_id, "parent_model_id": report.parent_model_id,
                    "metrics": report.metrics, "artifact_sha256": report.artifact_sha256, "fit_seconds": report.fit_seconds})
        return
    out = console()
    out.print(f"model {report.model_id}: {algorithm} {target} on {descriptor} of {report.n_train} structures "
              f"(fit {report.fit_seconds:.2f} s, artifact sha256 {report.artifact_sha256[:16]}...)"
              + (f"; started from model {report.parent_model_id}" if init_from is not None else ""))
    print_property_metrics(report.metrics)


def print_property_metrics(metrics: dict[str, Any]) -> None:
    """MAE, RMSE, R² per held-out fold beside the constant (training mean and median) baselines."""
    rows = [{"fold": f + (" (early stopping)" if m.get("used_for_early_stopping") else ""), "n": m["n"], "MAE": _fmt(m.get("mae")),
             "RMSE": _fmt(m.get("rmse")), "R²": _fmt(m.get("r2")), "mean-baseline MAE": _fmt(m.get("baseline_mean_mae")),
             "median-baseline MAE": _fmt(m.get("baseline_median_mae"))}
            for f in ("val", "test") if (m := metrics.get(f)) and m.get("n")]
    if rows:
        print_table(rows, list(rows[0]))
