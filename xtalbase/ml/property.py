"""Train a model for a numeric source property (formation energy, band gap...) from descriptors, and register it.

The target is any numeric property stored with the structures' sources at ingest (``source_properties``: a
CDVAE CSV's columns, a ``properties.csv`` beside CIF files); a structure with several sources takes the
value of its oldest source carrying it, as ``split create --by`` does. The features are the vectors of a
descriptor recipe (``magpie``, ``xenonpy``: compositional statistics; or a structural one) read from the
descriptor store, which computes and caches what it lacks. Structures of a fold without the property are left
out and counted.

The model row follows the XRD models (:mod:`xtalbase.ml.training`): ``task="regression"``, the property as
``target``, the descriptor as ``feature_recipe``, the hash of the training structures, metrics per fold and a
code-free artifact, written inside a ``train`` run linked to its split or dataset and training set. A network
started from another registered network (``init_from``) names it as its parent.

Metrics per held-out fold: MAE, RMSE and R² in the property's units, beside two constant baselines fitted
on the training rows (their mean, and their median: the constant with the least MAE).

>>> report = train_property(db, target="dir_gap", split="p5", algorithm="xgboost")  # doctest: +SKIP
>>> report.metrics["test"]["mae"], report.metrics["test"]["baseline_mean_mae"]     # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.ml import artifacts, registry
from xtalbase.ml.algorithms import make_estimator
from xtalbase.ml.xrd_inputs import Fold
from xtalbase.platform.provenance import code_version
from xtalbase.platform.repositories import structures as structure_repo
from xtalbase.schema import Model

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

    from xtalbase.platform.database import Database

__all__ = ["PROPERTY_ALGORITHMS", "PropertyReport", "load_property_fold", "property_values", "regression_report",
           "train_property"]

#: Algorithms ``train property`` accepts (entries of :data:`xtalbase.ml.algorithms.ALGORITHMS`).
PROPERTY_ALGORITHMS = ("xgboost", "mlp", "extratrees")
#: Libraries whose versions change a property model's numbers (torch for the networks).
PROPERTY_LIBRARIES = (*registry.MODEL_LIBRARIES, "torch")


@dataclass
class PropertyReport:
    """What :func:`train_property` did: the model id, metrics per fold, artifact hash and timings (seconds)."""

    model_id: int
    run_id: int
    target: str
    algorithm: str
    descriptor: str
    metrics: dict[str, Any]
    artifact_sha256: str
    n_train: int
    fit_seconds: float
    total_seconds: float
    parent_model_id: int | None = None
    feature_recipe: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- inputs
def property_values(session: "Session", ids: Sequence[int], name: str, *, required: bool = True) -> dict[int, float]:
    """``{structure id: value}`` of numeric source property ``name`` (oldest source carrying it), for ``ids`` that have one.

    Raises :class:`XtalbaseError` when the property is stored only as text for these structures, or (with
    ``required``; else ``{}``) not at all, naming the stored properties.
    """
    best = structure_repo.source_property_values(session, ids, name)
    if not best and not required:
        return {}
    if not best:
        names = structure_repo.numeric_property_names(session)
        raise XtalbaseError(f"no structure of the selection has a source property {name!r}; "
                            f"numeric properties stored: {', '.join(names) or 'none'}")
    text = [sid for sid, (_, vf, _) in best.items() if vf is None]
    if text and len(text) == len(best):
        raise XtalbaseError(f"source property {name!r} is text, not a number (e.g. structure {text[0]}: {best[text[0]][2]!r})")
    return {sid: float(vf) for sid, (_, vf, _) in best.items() if vf is not None}


def _features(db: "Database", recipe: str, ids: Sequence[int]) -> "pd.DataFrame":
    """Descriptor vectors of ``ids`` (index: structure id, columns: feature names) from the descriptor store.

    The one place features are read: the store computes what it has not cached, under a stored recipe whose
    identity lands in ``frame.attrs["recipe"]``. A structure the recipe cannot describe is an error.
    """
    from xtalbase.descriptors.recipes import spec
    from xtalbase.descriptors.store import DescriptorStore

    store = DescriptorStore(db)
    stored = store.recipe(recipe)
    frame = store.frame(stored, ids=list(ids))
    errors = frame.attrs.get("errors") or {}
    if errors:
        sid, reason = next(iter(errors.items()))
        raise XtalbaseError(f"{len(errors)} of {len(frame)} structures cannot be described by {stored.name!r} "
                            f"(e.g. structure {sid}: {reason})")
    frame.attrs["recipe"] = {"id": stored.id, "name": stored.name, "hash": stored.hash, "kind": stored.recipe.kind,
                             "params": spec(stored.recipe)["params"]}
    return frame


def descriptor_recipe(recipe: str, frame: "pd.DataFrame") -> dict[str, Any]:
    """The ``feature_recipe`` of a property model: the descriptor as asked for, its stored recipe (id, name, hash,
    kind, parameters) and the hash of its column names."""
    from xtalbase.platform.hashing import lines_hash

    stored = frame.attrs.get("recipe", {})
    columns = [str(c) for c in frame.columns]
    return {"kind": "descriptor", "descriptor": recipe, "recipe_id": stored.get("id"), "recipe_name": stored.get("name"),
            "recipe_hash": stored.get("hash"), "recipe_kind": stored.get("kind"), "params": stored.get("params"),
            "n_features": len(columns), "columns_sha256": lines_hash(columns)}


def load_property_fold(db: "Database", ids: Sequence[int], target: str, descriptor: str, *,
                       what: str = "structures", required: bool = True) -> tuple[Fold | None, dict[str, Any], int]:
    """Features and values of the structures of ``ids`` that have ``target``, ordered by exact hash.

    Returns ``(fold, feature recipe, number of structures left out for want of a value)``; the fold is ``None``
    (and the recipe empty) when none has a value and not ``required``.
    """
    with db.session() as s:
        values = property_values(s, ids, target, required=required)
        keep = sorted(values)
        hashes = structure_repo.exact_hashes(s, keep)
    if not keep and not required:
        return None, {}, len(set(ids))
    if not keep:
        raise XtalbaseError(f"none of the {len(set(ids))} {what} has a value for {target!r}")
    order = sorted(keep, key=lambda i: hashes[i])
    frame = _features(db, descriptor, order)
    X = frame.loc[order].to_numpy(dtype=np.float64)
    fold = Fold(np.asarray(order, dtype=np.int64), X, np.array([values[i] for i in order]), [hashes[i] for i in order],
                np.full(len(order), None, dtype=object))
    return fold, descriptor_recipe(descriptor, frame), len(set(ids)) - len(order)


def property_inputs(db: "Database", model: Any, structure_ids: Sequence[int]) -> Fold:
    """Features of ``structure_ids`` (in order) for a registered property model, under the stored recipe it was
    trained with, and the stored values of its target where present (NaN elsewhere)."""
    from xtalbase.descriptors.store import DescriptorStore
    from xtalbase.platform.hashing import lines_hash

    feature = model.feature_recipe or {}
    store = DescriptorStore(db)
    stored = store.recipe(feature.get("recipe_hash") or feature["descriptor"])
    ids = [int(i) for i in structure_ids]
    frame = store.frame(stored, ids=ids)
    if lines_hash([str(c) for c in frame.columns]) != feature.get("columns_sha256"):
        raise XtalbaseError(f"model {model.id}: the columns of descriptor recipe {stored.name!r} differ from those it was trained on")
    errors = frame.attrs.get("errors") or {}
    if errors:
        sid, reason = next(iter(errors.items()))
        raise XtalbaseError(f"{len(errors)} of {len(ids)} structures cannot be described by {stored.name!r} (e.g. structure {sid}: {reason})")
    with db.session() as s:
        values = property_values(s, ids, model.target, required=False)
        hashes = structure_repo.exact_hashes(s, ids)
    y = np.array([values.get(i, np.nan) for i in ids])
    return Fold(np.asarray(ids, dtype=np.int64), frame.loc[ids].to_numpy(dtype=np.float64), y, [hashes[i] for i in ids],
                np.full(len(ids), None, dtype=object))


# ----------------------------------------------------------------------------------------- metrics
def regression_report(y_true: Any, y_pred: Any, y_train: Any) -> dict[str, Any]:
    """MAE, RMSE and R² of ``y_pred``, and of the training mean and median as constant predictions."""
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    y_train = np.asarray(y_train, dtype=float).ravel()
    out: dict[str, Any] = {"n": int(len(y_true))}
    if not len(y_true):
        return out
    out.update(_errors(y_true, y_pred))
    for name, constant in (("mean", float(np.mean(y_train))), ("median", float(np.median(y_train)))):
        out.update({f"baseline_{name}_{k}": v for k, v in _errors(y_true, np.full_like(y_true, constant)).items()})
    return out


def _errors(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    residual = y_pred - y_true
    out = {"mae": float(np.mean(np.abs(residual))), "rmse": float(np.sqrt(np.mean(residual ** 2)))}
    if len(y_true) >= 2:
        total = float(np.sum((y_true - y_true.mean()) ** 2))
        out["r2"] = 1.0 - float(np.sum(residual ** 2)) / total if total > 0 else float("nan")
    return out


# ----------------------------------------------------------------------------------------- training
def train_property(db: "Database", *, target: str, split: str | None = None, dataset: str | None = None, fold: str = "train",
                   descriptor: str = "magpie", algorithm: str = "xgboost", seed: int = 0, params: dict[str, Any] | None = None,
                   init_from: int | str | None = None, name: str | None = None,
                   parent_model_id: int | None = None) -> PropertyReport:
    """Train ``algorithm`` on ``descriptor`` features of the ``fold`` of ``split`` (or ``dataset``) to predict ``target``.

    Evaluates on the split's ``val`` and ``test`` folds; an ``mlp`` early-stops on ``val`` (so its val metrics
    are not independent; ``test`` is). ``init_from``: id or name of a registered ``mlp`` on the same descriptor to
    start from (fine-tuning; add ``params={"freeze": "body"}`` to train only a new head); it becomes the parent.
    """
    if (split is None) == (dataset is None):
        raise XtalbaseError("give exactly one of --split NAME or --dataset NAME")
    if algorithm not in PROPERTY_ALGORITHMS:
        raise XtalbaseError(f"algorithm {algorithm!r} cannot train a property model; choose one of {', '.join(PROPERTY_ALGORITHMS)}")
    params = dict(params or {})
    if init_from is not None and algorithm != "mlp":
        raise XtalbaseError("--init-from starts a network from another: it needs --algorithm mlp")
    started = time.perf_counter()
    source_model = _source_network(db, init_from) if init_from is not None else None
    if source_model is not None:
        params["init_from"] = source_model[1]
    try:
        estimator = make_estimator(algorithm, "regression", params, seed)
    except ValueError as exc:
        raise XtalbaseError(str(exc)) from exc

    from xtalbase.ml.training import select_folds

    with db.session() as s:
        sel = select_folds(s, split=split, dataset=dataset, fold=fold)
        split_ref = (sel.split.id, sel.split.hash, sel.split.name) if sel.split is not None else None
        dataset_ref = (sel.dataset.id, sel.dataset.hash, sel.dataset.name) if sel.dataset is not None else None
        parent = parent_model_id or (source_model[0] if source_model else None) or registry.parent_model_for(s, sel.dataset, target)
    train_ids, fold_name, where = sel.train_ids, sel.fold, sel.where
    if not train_ids:
        raise XtalbaseError(f"{where} has no structures to train on")
    train, feature_recipe, train_missing = load_property_fold(db, train_ids, target, descriptor, what=f"structures of {where}")
    evals: dict[str, tuple[Fold, int]] = {}
    for f, ids in sel.held.items():
        if ids:  # a held-out fold without the property evaluates nothing
            fold_data, _, missing = load_property_fold(db, ids, target, descriptor, what=f"structures of fold {f!r}", required=False)
            if fold_data is not None:
                evals[f] = (fold_data, missing)
    if source_model is not None:
        _check_same_features(source_model[0], source_model[2], feature_recipe)

    run_params = {"target": target, "algorithm": algorithm, "split": split, "dataset": dataset, "fold": fold_name,
                  "features": feature_recipe, "seed": seed, "init_from": source_model[0] if source_model else None,
                  "params": {k: v for k, v in params.items() if k != "init_from"}}
    with db.run("train", run_params) as run:
        if split_ref:
            run.link_input("split", split_ref[0], label=split_ref[2], sha256=split_ref[1])
        if dataset_ref:
            run.link_input("dataset", dataset_ref[0], label=dataset_ref[2], sha256=dataset_ref[1])
        run.link_input("training_set", label=train.set_hash[:16], sha256=train.set_hash)
        if parent:
            run.link_input("model", parent)
        fitted, metrics, fit_seconds = _fit_and_evaluate(estimator, train, evals, algorithm)
        metrics["train"]["n_without_target"] = train_missing
        metrics = _plain(metrics)  # JSON columns hold no NaN (an R² over a constant fold is undefined): None
        blob, fmt = artifacts.dump(fitted)
        digest = artifacts.sha256(blob)
        hyper = {k: v for k, v in fitted.get_params().items() if k not in ("task", "random_state", "init_from")}
        if source_model is not None:
            hyper["init_from_model"] = source_model[0]
        model = Model(name=name, task="regression", target=target, algorithm=algorithm, hyperparameters=_plain(hyper), seed=seed,
                      feature_recipe=feature_recipe, xrd_recipe_id=None, split_id=split_ref[0] if split_ref else None,
                      dataset_id=dataset_ref[0] if dataset_ref else None, fold=fold_name, training_set_hash=train.set_hash,
                      metrics=metrics, library_versions=registry.library_versions(PROPERTY_LIBRARIES), code_version=code_version(),
                      artifact=blob, artifact_format=fmt, artifact_sha256=digest, parent_model_id=parent, run_id=run.id)
        run.session.add(model)
        run.session.flush()
        run.link_output("model", model.id, label=name, sha256=digest)
        run.summary.update(model_id=model.id, n_train=len(train), fit_seconds=round(fit_seconds, 3),
                           **{f"{f}_{k}": v for f, m in metrics.items() for k, v in m.items()
                              if k in ("n", "mae", "rmse", "r2", "baseline_mean_mae")})
        model_id = model.id
    return PropertyReport(model_id=model_id, run_id=run.id, target=target, algorithm=algorithm, descriptor=descriptor,
                          metrics=metrics, artifact_sha256=digest, n_train=len(train), fit_seconds=fit_seconds,
                          total_seconds=time.perf_counter() - started, parent_model_id=parent, feature_recipe=feature_recipe)


def _fit_and_evaluate(estimator: Any, train: Fold, evals: dict[str, tuple[Fold, int]],
                      algorithm: str) -> tuple[Any, dict[str, Any], float]:
    """Fit (a network early-stops on ``val`` when there is one) and compute metrics per fold."""
    kwargs: dict[str, Any] = {}
    if algorithm == "mlp" and "val" in evals:
        kwargs["eval_set"] = (evals["val"][0].X, evals["val"][0].y)
    start = time.perf_counter()
    estimator.fit(train.X, train.y, **kwargs)
    fit_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {"train": {"n": len(train), "mean": float(np.mean(train.y)), "median": float(np.median(train.y)),
                                         **{k: v for k, v in _errors(train.y, estimator.predict(train.X)).items()}}}
    for f, (data, missing) in evals.items():
        metrics[f] = regression_report(data.y, estimator.predict(data.X), train.y)
        metrics[f]["n_without_target"] = missing
    if "eval_set" in kwargs:
        metrics["val"]["used_for_early_stopping"] = True
    if algorithm == "mlp":
        metrics["train"].update(epochs=int(estimator.n_iter_), best_epoch=int(estimator.best_epoch_), stop_reason=estimator.stop_reason_)
    return estimator, metrics, fit_seconds


def _source_network(db: "Database", ref: int | str) -> tuple[int, bytes, dict[str, Any]]:
    """(id, artifact bytes, feature recipe) of the registered network ``ref`` to start from (sha256-checked)."""
    from xtalbase.ml.registry import get_model

    with db.session() as s:
        row = get_model(s, ref)
        if row.algorithm != "mlp":
            raise XtalbaseError(f"model {row.id} is {row.algorithm!r}, not an mlp: only a network can start another")
        if row.artifact is None:
            raise XtalbaseError(f"model {row.id} has no stored artifact")
        blob = bytes(row.artifact)
        if artifacts.sha256(blob) != row.artifact_sha256:
            raise XtalbaseError(f"model {row.id}: artifact does not match its recorded sha256; refusing to start from it")
        return row.id, blob, dict(row.feature_recipe or {})


def _check_same_features(model_id: int, source: dict[str, Any], target: dict[str, Any]) -> None:
    """A network only starts another on the same descriptor recipe (same stored hash, same columns)."""
    if source.get("recipe_hash") != target.get("recipe_hash") or source.get("columns_sha256") != target.get("columns_sha256"):
        raise XtalbaseError(f"model {model_id} was trained on descriptor {source.get('descriptor')!r} (recipe "
                            f"{str(source.get('recipe_hash'))[:12]}), not {target.get('descriptor')!r} (recipe "
                            f"{str(target.get('recipe_hash'))[:12]}): a network starts only another on the same features")


def _plain(value: Any) -> Any:
    from xtalbase.platform.hashing import json_ready

    return json_ready(value)
