"""Apply a registered model to stored structures or to measured patterns and store ``predictions`` rows.

Structures are described by their computed pattern for the model's XRD recipe; a measured pattern by its
picked peaks, moved onto the recipe's wavelength through their d-spacings (so a scan taken with another
anode is still comparable) and cut to the recipe's 2θ range. Both then go through the model's feature recipe.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.ml.evaluation import top_k
from xtalbase.ml.features import FeatureRecipe
from xtalbase.ml.registry import get_model, load_estimator
from xtalbase.ml.targets import get_target
from xtalbase.ml.xrd_inputs import load_fold
from xtalbase.platform.repositories.models import structure_formulas
from xtalbase.schema import Model, Prediction, XrdPattern, XrdRecipe
from xtalbase.schema.arrays import unpack

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

TOP_K = 5


@dataclass
class PredictReport:
    """Stored predictions of one ``predict`` run: ids, the rows as dicts, and a summary."""

    run_id: int
    model_id: int
    prediction_ids: list[int]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def predict_structures(db: "Database", model_id: int | str, structure_ids: Sequence[int], *, source: str = "ids") -> PredictReport:
    """Predict for stored structures (each needs a computed pattern for the model's XRD recipe).

    ``source`` says how the structures were chosen (``split demo/test``, ``filter ...``) for the run record.
    When the structures carry the true label, the summary includes the accuracy (or R²/MAE) against it.
    """
    if not structure_ids:
        raise XtalbaseError("no structures to predict for (the selection is empty)")
    with db.session() as s:
        model = get_model(s, model_id)
        estimator = load_estimator(model)
        if _is_property_model(model):
            fold = None
        else:
            fold = load_fold(s, structure_ids, model.target, model.xrd_recipe_id, model.feature_recipe, what="selected structures",
                             training=False)
            formulas = structure_formulas(s, fold.ids.tolist())
    if fold is None:
        from xtalbase.ml.property import property_inputs

        fold = property_inputs(db, model, structure_ids)
        with db.session() as s:
            formulas = structure_formulas(s, fold.ids.tolist())
    outputs = _outputs(model, estimator, fold.X)
    rows = [dict(o, structure_id=int(sid), formula=formulas.get(int(sid))) for sid, o in zip(fold.ids, outputs)]
    summary = _summary(model, outputs, fold.y)
    return _store(db, model, rows, {"source": source, "n_structures": len(rows)}, summary)


def predict_patterns(db: "Database", model_id: int | str, pattern_ids: Sequence[int]) -> PredictReport:
    """Predict for stored measured (or any) patterns from their picked peaks."""
    with db.session() as s:
        model = get_model(s, model_id)
        if _is_property_model(model):
            raise XtalbaseError(f"model {model.id} predicts {model.target} from {model.feature_recipe.get('recipe_name')} descriptors "
                                "of stored structures, not from XRD patterns: use --split/--filter/--ids")
        estimator = load_estimator(model)
        recipe = s.get(XrdRecipe, model.xrd_recipe_id) if model.xrd_recipe_id else None
        patterns = [s.get(XrdPattern, int(pid)) for pid in pattern_ids]
        missing = [pid for pid, p in zip(pattern_ids, patterns) if p is None]
        if missing:
            raise NotFound(f"no XRD pattern with id {missing[0]}")
        peaks = [peaks_for_recipe(p, recipe) for p in patterns]
        names = [p.name or p.file_path or f"pattern {p.id}" for p in patterns]
    outputs = _outputs(model, estimator, FeatureRecipe.from_dict(model.feature_recipe).transform(peaks))
    rows = [dict(o, pattern_id=int(p.id), name=n, npeaks_used=len(pk[0])) for o, p, n, pk in zip(outputs, patterns, names, peaks)]
    return _store(db, model, rows, {"source": "patterns", "pattern_ids": [int(p) for p in pattern_ids]}, _summary(model, outputs, None))


def peaks_for_recipe(pattern: XrdPattern, recipe: XrdRecipe | None) -> tuple[np.ndarray, np.ndarray]:
    """A pattern's peaks as (2θ degrees, intensity) at the recipe's wavelength and within its 2θ range."""
    tt = unpack(pattern.two_theta)
    inten = unpack(pattern.intensity)
    d = unpack(pattern.d_spacing)
    if recipe is None:
        return tt, inten
    if d is not None and len(d) == len(tt):
        ratio = recipe.wavelength / (2.0 * np.where(d > 0, d, np.inf))
        ok = ratio < 1.0
        tt = np.degrees(2.0 * np.arcsin(np.clip(ratio, 0.0, 1.0)))
        tt, inten = tt[ok], inten[ok]
    keep = (tt >= recipe.two_theta_min) & (tt <= recipe.two_theta_max)
    order = np.argsort(tt[keep], kind="stable")
    return tt[keep][order], inten[keep][order]


def _is_property_model(model: Model) -> bool:
    """A model of ``xtalbase train property``: descriptor features of structures, a source property as target."""
    return (model.feature_recipe or {}).get("kind") == "descriptor"


def _outputs(model: Model, estimator: Any, X: np.ndarray) -> list[dict[str, Any]]:
    """One dict per row: ``label`` + ``top_k`` (classification) or ``value`` + per-output values (regression)."""
    if len(X) == 0:
        return []
    if model.task == "classification":
        proba = estimator.predict_proba(X)
        ranked = top_k(proba, estimator.classes_, TOP_K)
        return [{"label": str(r[0][0]), "probability": r[0][1], "top_k": [[c, round(p, 6)] for c, p in r]} for r in ranked]
    names = [model.target] if _is_property_model(model) else get_target(model.target).outputs
    values = np.asarray(estimator.predict(X), dtype=float).reshape(len(X), -1)
    return [{"value": float(v[0]), "values": {n: float(x) for n, x in zip(names, v)}} for v in values]


def _summary(model: Model, outputs: list[dict[str, Any]], truth: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(outputs)}
    if model.task == "classification":
        out["predicted"] = dict(Counter(o["label"] for o in outputs).most_common())
        if truth is not None and len(truth):
            out["accuracy_vs_stored"] = float(np.mean([o["label"] == str(t) for o, t in zip(outputs, truth)]))
            out["top5_vs_stored"] = float(np.mean([str(t) in [str(c) for c, _ in o["top_k"]] for o, t in zip(outputs, truth)]))
    elif truth is not None and len(truth):
        pred = np.array([o["value"] for o in outputs])
        true = np.asarray(truth, dtype=float).reshape(len(truth), -1)[:, 0]
        known = np.isfinite(true)  # a property model's structures may lack the stored value
        if known.any():
            out["mae_vs_stored"] = float(np.mean(np.abs(pred[known] - true[known])))
            out["n_with_stored_value"] = int(known.sum())
    return out


def _store(db: "Database", model: Model, rows: list[dict[str, Any]], params: dict[str, Any], summary: dict[str, Any]) -> PredictReport:
    with db.run("predict", {"model_id": model.id, **params}) as run:
        run.link_input("model", model.id, sha256=model.artifact_sha256)
        objs = []
        for row in rows:
            payload = {k: v for k, v in row.items() if k in ("top_k", "probability", "values", "npeaks_used")}
            objs.append(Prediction(model_id=model.id, structure_id=row.get("structure_id"), pattern_id=row.get("pattern_id"),
                                   target=model.target, value=row.get("value"), label=row.get("label"), payload=payload,
                                   run_id=run.id))
        run.session.add_all(objs)
        run.session.flush()
        for obj, row in zip(objs, rows):
            row["prediction_id"] = obj.id
        run.summary.update({k: v for k, v in summary.items() if k != "predicted"})
        run.link_output("predictions", label=f"{objs[0].id}-{objs[-1].id}" if objs else "none")
    return PredictReport(run_id=run.id, model_id=model.id, prediction_ids=[o.id for o in objs], rows=rows, summary=summary)


def structures_of_split(db: "Database", split: str, fold: str) -> list[int]:
    """Structure ids of ``fold`` of the split named ``split``."""
    from xtalbase.ml.xrd_inputs import get_split, split_fold_ids

    with db.session() as s:
        ids = split_fold_ids(s, get_split(s, split), fold)
    if not ids:
        raise XtalbaseError(f"fold {fold!r} of split {split!r} is empty")
    return ids


