"""The model registry: ``models`` rows (with their artifacts) and ``predictions`` rows.

A model row is written once, inside the ``train`` run that produced it, and never updated; its artifact is
loaded only after its sha256 matches the row.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from xtalbase.errors import NotFound
from xtalbase.ml import artifacts
from xtalbase.schema import Dataset, Model, Prediction, Split

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from xtalbase.platform.database import Database

#: Libraries whose versions can change a model's predictions; recorded on every model row.
MODEL_LIBRARIES = ("numpy", "scipy", "scikit-learn", "xgboost", "skops", "spglib", "pymatgen")


def library_versions() -> dict[str, str]:
    """Versions of :data:`MODEL_LIBRARIES` and Python, as recorded on model rows."""
    from xtalbase.platform.provenance import dependency_versions

    found = dependency_versions()
    out = {name: found[name] for name in MODEL_LIBRARIES if name in found}
    out["python"] = sys.version.split()[0]
    return out


def get_model(session: "Session", model_id: int | str) -> Model:
    """The model with id ``model_id`` (or, for a non-numeric string, the newest one with that name)."""
    text = str(model_id)
    model = session.get(Model, int(text)) if text.isdigit() else session.scalars(
        select(Model).where(Model.name == text).order_by(Model.id.desc())).first()
    if model is None:
        raise NotFound(f"no model {text!r} (see `xtalbase models list`)")
    return model


def load_estimator(model: Model) -> Any:
    """The fitted estimator of a model row, from its artifact (hash-checked, never unpickled)."""
    if model.artifact is None:
        raise NotFound(f"model {model.id} has no stored artifact")
    return artifacts.load(bytes(model.artifact), model.artifact_format, model.artifact_sha256, model.algorithm)


def parent_model_for(session: "Session", dataset: Dataset | None, target: str) -> int | None:
    """The newest model for ``target`` trained on the parent of ``dataset`` (the model this one retrains)."""
    if dataset is None or dataset.parent_id is None:
        return None
    return session.scalars(select(Model.id).where(Model.dataset_id == dataset.parent_id, Model.target == target)
                           .order_by(Model.id.desc())).first()


def lineage(session: "Session", model: Model) -> list[Model]:
    """The model and its ancestors through ``parent_model_id``, newest first."""
    chain = [model]
    seen = {model.id}
    while chain[-1].parent_model_id is not None and chain[-1].parent_model_id not in seen:
        parent = session.get(Model, chain[-1].parent_model_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
    return chain


def summary(session: "Session", model: Model) -> dict[str, Any]:
    """One JSON-ready dict describing a model row (without the artifact bytes)."""
    split = session.get(Split, model.split_id) if model.split_id else None
    dataset = session.get(Dataset, model.dataset_id) if model.dataset_id else None
    return {
        "id": model.id, "name": model.name, "task": model.task, "target": model.target, "algorithm": model.algorithm,
        "hyperparameters": model.hyperparameters, "seed": model.seed, "feature_recipe": model.feature_recipe,
        "xrd_recipe_id": model.xrd_recipe_id, "split": split.name if split else None,
        "split_hash": split.hash if split else None, "dataset": dataset.name if dataset else None,
        "dataset_hash": dataset.hash if dataset else None, "fold": model.fold,
        "training_set_hash": model.training_set_hash, "metrics": model.metrics, "library_versions": model.library_versions,
        "code_version": model.code_version, "artifact_format": model.artifact_format,
        "artifact_sha256": model.artifact_sha256, "artifact_bytes": len(model.artifact or b""),
        "parent_model_id": model.parent_model_id, "created_at": model.created_at, "run_id": model.run_id,
        "n_predictions": session.scalar(select(func.count()).select_from(Prediction).where(Prediction.model_id == model.id)),
    }


def list_models(db: "Database", *, target: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Summaries of models, newest first, each with its lineage (ids back to the root)."""
    with db.session() as s:
        stmt = select(Model).order_by(Model.id.desc()).limit(limit)
        if target:
            stmt = stmt.where(Model.target == target)
        out = []
        for m in s.scalars(stmt):
            row = summary(s, m)
            row["lineage"] = [x.id for x in lineage(s, m)]
            out.append(row)
        return out
