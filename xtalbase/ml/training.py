"""Train an XRD model on a split or dataset, evaluate it on the held-out folds and register it.

>>> report = train_xrd(db, target="crystal_system", split="demo", algorithm="xgboost")   # doctest: +SKIP
>>> report.metrics["test"]["accuracy"]                                                 # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.ml import artifacts, registry
from xtalbase.ml.algorithms import make_estimator
from xtalbase.ml.evaluation import classification_metrics, regression_metrics
from xtalbase.ml.features import AUGMENTED_KINDS, FeatureRecipe
from xtalbase.ml.targets import Target, get_target
from xtalbase.ml.xrd_inputs import Fold, dataset_ids, get_dataset, get_split, load_fold, split_fold_ids
from xtalbase.platform.provenance import code_version
from xtalbase.schema import Model, Split
from xtalbase.xrd.recipe import resolve_recipe

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

EVAL_FOLDS = ("val", "test")


@dataclass
class TrainReport:
    """What :func:`train_xrd` did: the new model's id, its metrics per fold and timings (seconds)."""

    model_id: int
    run_id: int
    target: str
    algorithm: str
    metrics: dict[str, Any]
    artifact_sha256: str
    n_train: int
    fit_seconds: float
    total_seconds: float
    feature_recipe: dict[str, Any] = field(default_factory=dict)


def fit_and_evaluate(estimator: Any, train: Fold, evals: dict[str, Fold], target: str | Target,
                     eval_set: Fold | None = None) -> tuple[Any, dict[str, Any], float]:
    """Fit ``estimator`` on ``train`` and compute metrics on every fold in ``evals``.

    ``eval_set`` (rows of the val fold) goes to ``fit`` of an early-stopping estimator. Returns
    ``(fitted estimator, metrics, fit seconds)``; metrics hold only deterministic numbers.
    """
    target = target if isinstance(target, Target) else get_target(target)
    start = time.perf_counter()
    if eval_set is not None and len(eval_set):
        estimator.fit(train.X, train.y, eval_set=(eval_set.X, eval_set.y))
    else:
        estimator.fit(train.X, train.y)
    fit_seconds = time.perf_counter() - start
    # augmented rows repeat structures: n counts the structures (the set the training-set hash covers)
    metrics: dict[str, Any] = {"train": {"n": len(train.exact_hashes)}}
    if len(train) != len(train.exact_hashes):
        metrics["train"]["n_rows"] = len(train)
    for fold, data in evals.items():
        if len(data) == 0:
            metrics[fold] = {"n": 0}
            continue
        if target.task == "classification":
            proba = estimator.predict_proba(data.X)
            pred = np.asarray(estimator.classes_)[np.argmax(proba, axis=1)]
            metrics[fold] = classification_metrics(data.y, pred, proba, estimator.classes_, top=5,
                                                   confusion=target.confusion, train_labels=train.y)
        else:
            pred = np.asarray(estimator.predict(data.X)).reshape(len(data), -1)
            metrics[fold] = regression_metrics(data.y, pred, list(target.outputs))
            cubic = data.crystal_systems == "cubic"
            if target.cubic_subset and cubic.sum() >= 2:
                sub = regression_metrics(data.y.reshape(len(data), -1)[cubic, :1], pred[cubic, :1], ["cubic_a"])
                metrics[fold].update({k: v for k, v in sub.items() if k != "n"}, n_cubic=int(cubic.sum()))
    if eval_set is not None and len(eval_set) and "val" in metrics:
        metrics["val"]["used_for_early_stopping"] = True
    return estimator, metrics, fit_seconds


def train_xrd(db: "Database", *, target: str = "crystal_system", split: str | None = None, dataset: str | None = None,
              fold: str = "train", features: str = "peaks11", feature_options: dict[str, Any] | None = None,
              algorithm: str = "extratrees", recipe: str | int | None = None, seed: int = 0,
              params: dict[str, Any] | None = None, name: str | None = None,
              parent_model_id: int | None = None) -> TrainReport:
    """Train ``algorithm`` on XRD ``features`` of the ``fold`` of ``split`` (or the members of ``dataset``).

    Evaluates on the split's ``val`` and ``test`` folds (a dataset's split when it has one), stores the model
    row with its artifact inside a ``train`` run and returns a :class:`TrainReport`. A dataset extended from
    another records the newest model trained on the parent as ``parent_model_id``. An augmented ``features``
    kind (``peaks11_aug``, ``profile_aug``) trains on synthetic scans of the fold's patterns, seeded by ``seed``
    unless ``feature_options`` names one; an early-stopping algorithm (``cnn``) stops on the val fold.
    """
    if (split is None) == (dataset is None):
        raise XtalbaseError("give exactly one of --split NAME or --dataset NAME")
    spec = get_target(target)
    task = spec.task
    feature_options = dict(feature_options or {})
    if features in AUGMENTED_KINDS:
        feature_options.setdefault("seed", seed)  # one seed makes the run: the synthetic scans follow it unless given
    recipe_obj = FeatureRecipe.make(features, **feature_options)
    feature_recipe = recipe_obj.to_dict()
    try:
        estimator = make_estimator(algorithm, task, params, seed)
    except ValueError as exc:
        raise XtalbaseError(str(exc)) from exc
    started = time.perf_counter()
    with db.session() as s:
        xrd_recipe = resolve_recipe(s, recipe)
        sel = select_folds(s, split=split, dataset=dataset, fold=fold)
        split_row, dataset_row, train_ids, fold_name, where = sel.split, sel.dataset, sel.train_ids, sel.fold, sel.where
        if not train_ids:
            raise XtalbaseError(f"{where} has no structures to train on")
        train = load_fold(s, train_ids, spec, xrd_recipe.id, recipe_obj, what=f"structures of {where}")
        evals = {f: load_fold(s, ids, spec, xrd_recipe.id, recipe_obj, what=f"structures of fold {f!r}")
                 for f, ids in sel.held.items() if ids}
        if task == "classification" and len(np.unique(train.y)) < 2:
            raise XtalbaseError(f"{where} has a single {target} class; a classifier needs at least two")
        train, early = _augmented_inputs(s, train, evals, xrd_recipe, recipe_obj, algorithm)
        parent = parent_model_id or registry.parent_model_for(s, dataset_row, target)
        split_id, split_hash, split_row_name = (split_row.id, split_row.hash, split_row.name) if split_row else (None, None, None)
        dataset_id, dataset_hash, dataset_row_name = (
            (dataset_row.id, dataset_row.hash, dataset_row.name) if dataset_row else (None, None, None))
        recipe_id, recipe_hash = xrd_recipe.id, xrd_recipe.hash

    run_params = {"target": target, "algorithm": algorithm, "split": split, "dataset": dataset, "fold": fold_name,
                  "features": feature_recipe, "xrd_recipe_id": recipe_id, "seed": seed, "params": params or {}}
    with db.run("train", run_params) as run:
        # inputs first: they are committed at once, so a failed fit still shows what it was given
        if split_id:
            run.link_input("split", split_id, label=split_row_name, sha256=split_hash)
        if dataset_id:
            run.link_input("dataset", dataset_id, label=dataset_row_name, sha256=dataset_hash)
        run.link_input("xrd_recipe", recipe_id, sha256=recipe_hash)
        run.link_input("training_set", label=train.set_hash[:16], sha256=train.set_hash)
        if parent:
            run.link_input("model", parent)
        fitted, metrics, fit_seconds = fit_and_evaluate(estimator, train, evals, spec, eval_set=early)
        blob, fmt = artifacts.dump(fitted)
        digest = artifacts.sha256(blob)
        hyper = {k: v for k, v in fitted.get_params().items() if k not in ("task", "random_state")}
        model = Model(name=name, task=task, target=target, algorithm=algorithm, hyperparameters=hyper, seed=seed,
                      feature_recipe=feature_recipe, xrd_recipe_id=recipe_id, split_id=split_id, dataset_id=dataset_id,
                      fold=fold_name, training_set_hash=train.set_hash, metrics=metrics,
                      library_versions=registry.library_versions(), code_version=code_version(), artifact=blob,
                      artifact_format=fmt, artifact_sha256=digest, parent_model_id=parent, run_id=run.id)
        run.session.add(model)
        run.session.flush()
        run.link_output("model", model.id, label=name, sha256=digest)
        run.summary.update(model_id=model.id, n_train=len(train.exact_hashes), fit_seconds=round(fit_seconds, 3),
                           **{f"{f}_{k}": v for f, m in metrics.items() for k, v in m.items()
                              if k in ("accuracy", "top5_accuracy", "r2_a", "n")})
        model_id = model.id
    return TrainReport(model_id=model_id, run_id=run.id, target=target, algorithm=algorithm, metrics=metrics,
                       artifact_sha256=digest, n_train=len(train.exact_hashes), fit_seconds=fit_seconds,
                       total_seconds=time.perf_counter() - started, feature_recipe=feature_recipe)


def _augmented_inputs(session: Any, train: Fold, evals: dict[str, Fold], xrd_recipe: Any, recipe: FeatureRecipe,
                      algorithm: str) -> tuple[Fold, Fold | None]:
    """The training rows and the early-stopping rows for ``recipe`` and ``algorithm``.

    An augmented recipe replaces each training pattern by its synthetic scans (in the structure's fold, seeded
    by its exact hash); an early-stopping algorithm gets the val fold, augmented the same way (one copy
    besides the clean rows) so that it stops on data like the training rows. Held-out metrics stay on
    ``evals``, the features ``xtalbase predict`` computes for the same structures.
    """
    from xtalbase.ml.algorithms import get_algorithm

    if recipe.augmented and abs(float(recipe.params["wavelength"]) - float(xrd_recipe.wavelength)) > 1e-6:
        raise XtalbaseError(f"feature recipe wavelength {recipe.params['wavelength']} Å differs from XRD recipe {xrd_recipe.id}'s "
                            f"{xrd_recipe.wavelength} Å; the augmentation converts the stored 2θ through d-spacings at that wavelength")
    val = evals.get("val")
    early = val if get_algorithm(algorithm).early_stopping and val is not None and len(val) else None
    if recipe.augmented:
        from xtalbase.ml.xrd_augment import augment_fold

        train = augment_fold(session, train, xrd_recipe.id, recipe)
        if early is not None:
            early = augment_fold(session, early, xrd_recipe.id, recipe, copies=[0])
    return train, early


@dataclass(frozen=True)
class FoldSelection:
    """What a training run reads: the training ids, the held-out ids per evaluation fold, the split and dataset rows."""

    train_ids: list[int]
    held: dict[str, list[int]]
    fold: str
    where: str
    split: Split | None
    dataset: Any


def select_folds(session: Any, *, split: str | None, dataset: str | None, fold: str = "train") -> FoldSelection:
    """The structures of ``fold`` of ``split`` (or of ``dataset``, evaluated on its root split) and of the held-out folds."""
    split_row = get_split(session, split) if split else None
    dataset_row = get_dataset(session, dataset) if dataset else None
    if dataset_row is not None:
        train_ids = dataset_ids(session, dataset_row)
        split_row = root_split(session, dataset_row)
        fold_name = dataset_row.fold or "train"
        where = f"dataset {dataset_row.name!r}"
    else:
        train_ids = split_fold_ids(session, split_row, fold)
        fold_name = fold
        where = f"fold {fold!r} of split {split_row.name!r}"
    held: dict[str, list[int]] = {}
    if split_row is not None:
        for f in EVAL_FOLDS:
            if f != fold_name:
                # an extended dataset may have absorbed held-out structures: never evaluate on training data
                held[f] = sorted(set(split_fold_ids(session, split_row, f)) - set(train_ids))
    return FoldSelection(train_ids, held, fold_name, where, split_row, dataset_row)


def root_split(session, dataset: Any) -> Split | None:
    """The split a dataset (or the nearest ancestor that has one) was cut from; its val/test folds evaluate it."""
    from xtalbase.schema import Dataset

    seen = set()
    while dataset is not None and dataset.id not in seen:
        if dataset.split_id is not None:
            return session.get(Split, dataset.split_id)
        seen.add(dataset.id)
        dataset = session.get(Dataset, dataset.parent_id) if dataset.parent_id else None
    return None


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["n_estimators=200", "max_depth=None"]`` to a dict; values read as int, float, bool, None or text."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise XtalbaseError(f"--param expects key=value, got {pair!r}")
        out[key.strip()] = _value(text.strip())
    return out


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text
