"""Potentials in the model registry: train on stored DFT, import n2p2 models, evaluate, predict with provenance.

A potential is a ``models`` row with ``task="potential"``, ``target="energy_forces"``, its recipe (with hash) as
``feature_recipe``, the training options as ``hyperparameters``, the training-set hash over the chosen
calculations (:func:`~xtalbase.mlip.configurations.training_set_hash`) and the artifact of
:func:`xtalbase.mlip.model.to_bytes`. The train run lists the calculation ids it used in its parameters, so
the provenance chain reaches from a prediction to the source files of every calculation.

Validation: the split's ``val`` fold when it has one (for a dataset: the val fold of the split it was cut
from, minus training members); otherwise 10 % of the training configurations drawn with the seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.ml.registry import library_versions
from xtalbase.mlip.configurations import Configuration, load_configurations, select_structure_ids, training_set_hash
from xtalbase.mlip.recipe import PotentialRecipe, preset
from xtalbase.platform.hashing import json_ready

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

TASK = "potential"
TARGET = "energy_forces"
VAL_FRACTION = 0.1
#: Libraries whose versions change a potential's numbers; recorded on the model row.
POTENTIAL_LIBRARIES = ("numpy", "torch", "ase", "scipy", "pymatgen")


@dataclass
class PotentialReport:
    """What a training or import did: the model id, run id, metrics per fold, artifact hash, timings."""

    model_id: int
    run_id: int
    metrics: dict[str, Any]
    artifact_sha256: str
    n_train: int = 0
    n_val: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    stop_reason: str | None = None
    best_epoch: int | None = None


def load_recipe(source: str | Path, elements: Sequence[str]) -> PotentialRecipe:
    """A preset name (``default``, ``sakoda2026``, ``mlearn-Mo``) or a recipe JSON file."""
    path = Path(source)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise XtalbaseError(f"recipe file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise XtalbaseError(f"recipe file {path}: not JSON ({exc})") from exc
        recipe = PotentialRecipe.from_dict(data)
        missing = sorted(set(elements) - set(recipe.elements))
        if missing:
            raise XtalbaseError(f"recipe file {path} has no functions for {missing}, present in the training data")
        return recipe
    return preset(str(source), elements)


def _split_val(configs: list[Configuration], seed: int) -> tuple[list[Configuration], list[Configuration]]:
    """10 % of the configurations for validation, drawn with ``seed`` within each group (so a small group such as
    surfaces is represented); none below 10 configurations."""
    if len(configs) < 10:
        return configs, []
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for k, c in enumerate(configs):
        groups.setdefault(str(c.group), []).append(k)
    val: set[int] = set()
    for _, members in sorted(groups.items()):
        n_val = int(round(VAL_FRACTION * len(members)))
        if n_val == 0 and len(members) >= 5:
            n_val = 1
        val |= {members[i] for i in rng.permutation(len(members))[:n_val]}
    if not val:
        val = {int(rng.integers(len(configs)))}
    return [c for k, c in enumerate(configs) if k not in val], [c for k, c in enumerate(configs) if k in val]


def _validation(sel: "_Selection", seed: int) -> tuple[list[Configuration], list[Configuration], str]:
    """(train, validation, rule): the split's val fold unless it is tiny next to the training fold.

    Splits that group by canonical hash can put almost everything on one side (181 of the 217 mlearn Mo AIMD
    snapshots share one canonical hash), so a val fold under 5 % of the training configurations (or under 3)
    is replaced by a grouped 10 % of the training fold.
    """
    held = sel.held.get("val", [])
    if held and len(held) >= max(3, 0.05 * len(sel.configs)):
        return sel.configs, held, "split val fold"
    train, val = _split_val(sel.configs, seed)
    return train, val, f"seeded {VAL_FRACTION:.0%} of the training fold per group" + (
        f" (the split's val fold had only {len(held)})" if held else "")


@dataclass
class _Selection:
    """What a training run reads: the configurations, held-out folds, split/dataset rows, the parent model."""

    configs: list[Configuration]
    held: dict[str, list[Configuration]]
    info: dict[str, Any]
    split: tuple[int, str, str] | None
    dataset: tuple[int, str, str] | None
    parent: int | None


def _gather(db: "Database", *, split: str | None, fold: str, dataset: str | None, filter: str | None,
            parent_model_id: int | None) -> _Selection:
    from xtalbase.ml import registry
    from xtalbase.ml.training import root_split
    from xtalbase.ml.xrd_inputs import get_dataset, get_split, split_fold_ids

    ids, info = select_structure_ids(db, split=split, fold=fold, dataset=dataset, filter=filter)
    with db.session() as s:
        configs = list(load_configurations(s, ids, require_forces=True, what=info.get("what", "training structures")))
        split_row = get_split(s, split) if split else None
        dataset_row = get_dataset(s, dataset) if dataset else None
        if dataset_row is not None:
            split_row = root_split(s, dataset_row)
        held: dict[str, list[Configuration]] = {}
        for f in ("val", "test") if split_row is not None else ():
            try:
                fold_ids = sorted(set(split_fold_ids(s, split_row, f)) - set(ids)) if f != fold else []
            except XtalbaseError:
                fold_ids = []
            if fold_ids:
                held[f] = list(load_configurations(s, fold_ids, require_forces=True, what=f"fold {f!r}"))
        parent = parent_model_id or registry.parent_model_for(s, dataset_row, TARGET)
        return _Selection(configs=configs, held=held, info=info, parent=parent,
                          split=(split_row.id, split_row.hash, split_row.name) if split_row else None,
                          dataset=(dataset_row.id, dataset_row.hash, dataset_row.name) if dataset_row else None)


def _stage(on_progress: Callable[[str, int, int], None] | None, stage: str, total: int) -> Callable[[int], None] | None:
    """A per-configuration callback reporting ``(stage, done, total)``."""
    if on_progress is None:
        return None
    count = [0]

    def step(n: int) -> None:
        count[0] += n
        on_progress(stage, count[0], total)
    return step


def train_potential(db: "Database", *, split: str | None = None, fold: str = "train", dataset: str | None = None,
                    filter: str | None = None, recipe: str | Path = "default", options: Any = None,
                    name: str | None = None, parent_model_id: int | None = None, warm_start: bool = False,
                    on_progress: Callable[[str, int, int], None] | None = None,
                    on_epoch: Callable[[dict[str, float]], None] | None = None) -> PotentialReport:
    """Train an HDNNP on the calculations of a split fold, dataset or filter and register it.

    ``options`` is a :class:`~xtalbase.mlip.training.TrainOptions`; ``warm_start`` starts from the parent
    model's weights (same recipe). ``on_progress(stage, done, total)`` reports descriptor progress.
    """
    from xtalbase.mlip import training
    from xtalbase.mlip.acsf import element_symbols

    options = options or training.TrainOptions()
    started = time.perf_counter()
    sel = _gather(db, split=split, fold=fold, dataset=dataset, filter=filter, parent_model_id=parent_model_id)
    if not sel.configs:
        raise XtalbaseError(f"{sel.info.get('what', 'the selection')} holds no configurations to train on")
    init = None
    if warm_start:
        if sel.parent is None:
            raise XtalbaseError("--warm-start needs a parent model (give --parent or train on an extended dataset)")
        init = load_potential(db, sel.parent)
    elements = sorted({str(s) for c in sel.configs for s in element_symbols(c.numbers)})
    recipe_obj = init.recipe if init is not None else load_recipe(recipe, elements)
    train_cfgs, val_cfgs, val_rule = _validation(sel, options.seed)
    t0 = time.perf_counter()
    train_data = training.prepare(recipe_obj, train_cfgs, what="training set",
                                  on_progress=_stage(on_progress, "descriptors (train)", len(train_cfgs)))
    val_data = training.prepare(recipe_obj, val_cfgs, what="validation set",
                                on_progress=_stage(on_progress, "descriptors (val)", len(val_cfgs))) if val_cfgs else None
    descriptor_seconds = time.perf_counter() - t0
    run_params = {"task": TASK, "selection": sel.info, "recipe": recipe_obj.name or "custom", "recipe_hash": recipe_obj.hash(),
                  "options": options.to_dict(), "n_train": len(train_cfgs), "n_val": len(val_cfgs), "validation": val_rule,
                  "calculation_ids": sorted(int(c.calculation_id) for c in sel.configs if c.calculation_id is not None)}
    with db.run("train", run_params) as run:
        set_hash = training_set_hash(train_cfgs)
        _link_inputs(run, sel, set_hash)
        result = training.fit(recipe_obj, train_data, val_data, options, on_epoch=on_epoch,
                              descriptor_seconds=descriptor_seconds, init=init)
        metrics = _fit_metrics(result, train_cfgs, val_cfgs, sel.held.get("test"))
        metrics["training"]["validation"] = val_rule
        model_id, digest = _register(run, result.model, name=name, options=options, sel=sel,
                                     fold=fold if split else None, set_hash=set_hash, metrics=metrics)
        run.summary.update(model_id=model_id, n_train=len(train_cfgs), n_val=len(val_cfgs),
                           fit_seconds=round(result.fit_seconds, 2), descriptor_seconds=round(descriptor_seconds, 2))
    return PotentialReport(model_id=model_id, run_id=run.id, metrics=metrics, artifact_sha256=digest,
                           n_train=len(train_cfgs), n_val=len(val_cfgs),
                           seconds={"descriptors": descriptor_seconds, "fit": result.fit_seconds,
                                    "total": time.perf_counter() - started},
                           stop_reason=result.stop_reason, best_epoch=result.best_epoch)


def _link_inputs(run: Any, sel: _Selection, set_hash: str) -> None:
    if sel.split:
        run.link_input("split", sel.split[0], label=sel.split[2], sha256=sel.split[1])
    if sel.dataset:
        run.link_input("dataset", sel.dataset[0], label=sel.dataset[2], sha256=sel.dataset[1])
    run.link_input("training_set", label=set_hash[:16], sha256=set_hash)
    if sel.parent:
        run.link_input("model", sel.parent)


def _fit_metrics(result: Any, train_cfgs: list[Configuration], val_cfgs: list[Configuration],
                 test_cfgs: list[Configuration] | None) -> dict[str, Any]:
    """Metrics per fold, the mean-energy baseline on test and how training ended."""
    from xtalbase.mlip.evaluation import baseline, evaluate

    metrics: dict[str, Any] = {"train": {"n": len(train_cfgs)}}
    if val_cfgs:
        metrics["val"] = evaluate(result.model, val_cfgs).summary()
    if test_cfgs:
        test_eval = evaluate(result.model, test_cfgs)
        metrics["test"] = {**test_eval.summary(), "groups": test_eval.groups}
        metrics["baseline_test"] = baseline(train_cfgs, test_cfgs)
    metrics["training"] = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                           "stop_reason": result.stop_reason, "loss_weights": result.weights,
                           "last": result.history[-1] if result.history else None}
    return json_ready(metrics)


def _register(run: Any, model: Any, *, name: str | None, options: Any, sel: _Selection, fold: str | None, set_hash: str,
              metrics: dict[str, Any]) -> tuple[int, str]:
    """Write the ``models`` row (artifact included) in the run's session; returns (model id, artifact sha256)."""
    from xtalbase.mlip import model as model_io
    from xtalbase.platform.hashing import sha256_bytes
    from xtalbase.platform.provenance import code_version
    from xtalbase.schema import Model

    blob = model_io.to_bytes(model)
    digest = sha256_bytes(blob)
    row = Model(name=name, task=TASK, target=TARGET, algorithm="hdnnp", hyperparameters=options.to_dict(),
                seed=options.seed, feature_recipe={**model.recipe.to_dict(), "hash": model.recipe.hash()},
                split_id=sel.split[0] if sel.split else None, dataset_id=sel.dataset[0] if sel.dataset else None,
                fold=fold, training_set_hash=set_hash, metrics=metrics, library_versions=library_versions(POTENTIAL_LIBRARIES),
                code_version=code_version(), artifact=blob, artifact_format=model_io.ARTIFACT_FORMAT,
                artifact_sha256=digest, parent_model_id=sel.parent, run_id=run.id)
    run.session.add(row)
    run.session.flush()
    run.link_output("model", row.id, label=name, sha256=digest)
    return row.id, digest



def import_n2p2(db: "Database", folder: str | Path, *, name: str, units: str = "bohr-hartree") -> PotentialReport:
    """Register the n2p2 model in ``folder`` (input.nn, scaling.data, weights.NNN.data) as a potential."""
    from xtalbase.mlip import model as model_io
    from xtalbase.mlip.n2p2 import load_model
    from xtalbase.platform.hashing import file_sha256, sha256_bytes
    from xtalbase.platform.provenance import code_version
    from xtalbase.schema import Model

    folder = Path(folder)
    if not folder.is_dir():
        raise XtalbaseError(f"{folder} is not a folder (an n2p2 model folder holds input.nn, scaling.data, weights.NNN.data)")
    model = load_model(folder, units=units, name=name)
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.name in ("input.nn", "scaling.data")
                                                                   or (p.name.startswith("weights.") and p.suffix == ".data")))
    blob = model_io.to_bytes(model)
    digest = sha256_bytes(blob)
    origin = {"format": "n2p2", "folder": str(folder.resolve()), "units": units,
              "files": {p.name: file_sha256(p) for p in files}}
    with db.run("import", {"task": TASK, "origin": origin}) as run:
        for p in files:
            run.link_input("file", path=str(p.resolve()), sha256=origin["files"][p.name])
        row = Model(name=name, task=TASK, target=TARGET, algorithm="hdnnp-n2p2", hyperparameters={"origin": origin},
                    seed=None, feature_recipe={**model.recipe.to_dict(), "hash": model.recipe.hash()}, metrics={},
                    library_versions=library_versions(POTENTIAL_LIBRARIES), code_version=code_version(), artifact=blob,
                    artifact_format=model_io.ARTIFACT_FORMAT, artifact_sha256=digest, run_id=run.id)
        run.session.add(row)
        run.session.flush()
        run.link_output("model", row.id, label=name, sha256=digest)
        run.summary.update(model_id=row.id)
        model_id = row.id
    return PotentialReport(model_id=model_id, run_id=run.id, metrics={}, artifact_sha256=digest)


def load_potential(db: "Database", model_id: int | str, device: str = "cpu") -> Any:
    """The network of a registered potential (sha256-checked, ``weights_only`` load)."""
    from xtalbase.mlip.model import from_bytes

    blob, digest = potential_artifact(db, model_id)
    return from_bytes(blob, expected_sha256=digest, device=device)


def potential_artifact(db: "Database", model_id: int | str) -> tuple[bytes, str]:
    """``(artifact bytes, recorded sha256)`` of a registered potential: what workers load it from."""
    from xtalbase.ml.registry import get_model

    with db.session() as s:
        row = get_model(s, model_id)
        if row.task != TASK:
            raise XtalbaseError(f"model {row.id} is a {row.task} model, not a potential")
        if row.artifact is None:
            raise XtalbaseError(f"model {row.id} has no stored artifact")
        return bytes(row.artifact), row.artifact_sha256


def selected_configurations(db: "Database", *, split: str | None = None, fold: str = "test", dataset: str | None = None,
                            filter: str | None = None, require_forces: bool = True, require_energy: bool = True
                            ) -> tuple[list[Configuration], dict[str, Any]]:
    """The configurations of a split fold, dataset or filter with their chosen calculations (structures without
    one are kept, unlabelled, when neither energy nor forces are required)."""
    ids, info = select_structure_ids(db, split=split, fold=fold, dataset=dataset, filter=filter)
    if not ids:
        raise XtalbaseError(f"{info.get('what', 'the selection')} is empty")
    with db.session() as s:
        configs = list(load_configurations(s, ids, require_energy=require_energy, require_forces=require_forces,
                                           what=info.get("what", "structures")))
    return configs, info


def evaluate_potential(db: "Database", model_id: int | str, *, on_progress: Callable[[int], None] | None = None,
                       workers: int = 1, scheduler: str | None = None, **selection: Any) -> Any:
    """An :class:`~xtalbase.mlip.evaluation.Evaluation` of a potential on selected stored configurations, predicted
    here, by ``workers`` local processes or on a Dask ``scheduler``'s workers (the same numbers on each)."""
    from xtalbase.mlip.evaluation import predict_on_workers, score

    blob, digest = potential_artifact(db, model_id)
    configs, _ = selected_configurations(db, **selection)
    return score(configs, predict_on_workers(blob, digest, configs, workers=workers, scheduler=scheduler,
                                             on_progress=on_progress))


def predict_potential(db: "Database", model_id: int | str, *, source: str, on_progress: Callable[[int], None] | None = None,
                      **selection: Any) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Store predicted energy, forces and stress of selected structures as ``predictions``; returns (run id, rows, summary).

    Structures without a stored calculation are predicted too (``require_forces=False``, energy optional).
    """
    from xtalbase.ml.registry import get_model
    from xtalbase.mlip.evaluation import _metrics, predict_configurations
    from xtalbase.schema import Prediction

    model = load_potential(db, model_id)
    ids, info = select_structure_ids(db, **selection)
    if not ids:
        raise XtalbaseError(f"{info.get('what', 'the selection')} is empty")
    with db.session() as s:
        configs = list(load_configurations(s, ids, require_energy=False, what=info.get("what", "structures")))
        row = get_model(s, model_id)
        mid, digest = row.id, row.artifact_sha256
    preds = predict_configurations(model, configs, on_progress=on_progress)
    labelled = [(c, p) for c, p in zip(configs, preds) if c.energy is not None and c.forces is not None]
    summary: dict[str, Any] = {"n": len(preds)}
    if labelled:
        summary.update({f"{k}_vs_stored": v for k, v in _metrics([c for c, _ in labelled], [p for _, p in labelled]).summary().items()
                        if k not in ("n_structures", "n_atoms")})
    rows: list[dict[str, Any]] = []
    with db.run("predict", {"model_id": mid, "source": source, "selection": info,
                            "calculation_ids": sorted(int(c.calculation_id) for c in configs if c.calculation_id)}) as run:
        run.link_input("model", mid, sha256=digest)
        objs = []
        for c, p in zip(configs, preds):
            payload = {"energy_per_atom": p.energy / len(c.numbers), "forces": np.round(p.forces, 10).tolist(),
                       "stress": None if p.stress is None else np.round(p.stress, 12).tolist(),
                       "extrapolating_atoms": p.extrapolating_atoms, "calculation_id": c.calculation_id,
                       "stored_energy": c.energy}
            objs.append(Prediction(model_id=mid, structure_id=c.structure_id, target="energy", value=p.energy,
                                   payload=json_ready(payload), run_id=run.id))
        run.session.add_all(objs)
        run.session.flush()
        for c, p, o in zip(configs, preds, objs):
            rows.append({"prediction_id": o.id, "structure_id": c.structure_id, "n_atoms": len(c.numbers), "energy": p.energy,
                         "energy_per_atom": p.energy / len(c.numbers), "stored_energy": c.energy,
                         "extrapolating_atoms": p.extrapolating_atoms})
        run.summary.update(json_ready(summary))
        run.link_output("predictions", label=f"{objs[0].id}-{objs[-1].id}" if objs else "none")
        run_id = run.id
    return run_id, rows, json_ready(summary)


def parity_plots(configs: Sequence[Configuration], preds: Sequence[Any], folder: Path, stem: str) -> list[Path]:
    """Energy and force parity plots (PNG) of predictions against stored values."""
    from xtalbase.platform.figures import new_figure, save_figure

    folder.mkdir(parents=True, exist_ok=True)
    pairs = [(c, p) for c, p in zip(configs, preds) if c.energy is not None]
    written = []
    if pairs:
        fig, ax = _axes(new_figure((4.5, 4.5)))
        true = np.array([c.energy / len(c.numbers) for c, _ in pairs])
        pred = np.array([p.energy / len(c.numbers) for c, p in pairs])
        ax.scatter(true, pred, s=8)
        _diagonal(ax, true, pred)
        ax.set_xlabel("DFT energy (eV/atom)")
        ax.set_ylabel("predicted energy (eV/atom)")
        written.append(save_figure(fig, folder / f"{stem}_energy_parity.png"))
    fpairs = [(np.asarray(c.forces).ravel(), p.forces.ravel()) for c, p in pairs if c.forces is not None]
    if fpairs:
        fig, ax = _axes(new_figure((4.5, 4.5)))
        true = np.concatenate([t for t, _ in fpairs])
        pred = np.concatenate([q for _, q in fpairs])
        ax.scatter(true, pred, s=2)
        _diagonal(ax, true, pred)
        ax.set_xlabel("DFT force component (eV/Å)")
        ax.set_ylabel("predicted force component (eV/Å)")
        written.append(save_figure(fig, folder / f"{stem}_force_parity.png"))
    return written


def _axes(fig: Any) -> tuple[Any, Any]:
    return fig, fig.add_subplot(1, 1, 1)


def _diagonal(ax: Any, a: np.ndarray, b: np.ndarray) -> None:
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
