"""The model registry: ``models`` rows (with their artifacts) and ``predictions`` rows.

A model row is written once, inside the ``train`` run that produced it, and never updated; its artifact is
loaded only after its sha256 matches the row.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from xtalbase.errors import NotFound
from xtalbase.ml import artifacts
from xtalbase.platform.repositories import models as models_repo
from xtalbase.platform.repositories.models import get_model
from xtalbase.schema import Dataset, Model

__all__ = ["MODEL_LIBRARIES", "get_model", "library_versions", "lineage", "list_models", "load_estimator", "parent_model_for",
           "summary"]

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from xtalbase.platform.database import Database

#: Libraries whose versions can change a model's predictions; recorded on every model row.
MODEL_LIBRARIES = ("numpy", "scipy", "scikit-learn", "xgboost", "skops", "spglib", "pymatgen")


def library_versions(libraries: tuple[str, ...] = MODEL_LIBRARIES) -> dict[str, str]:
    """Versions of ``libraries`` (default :data:`MODEL_LIBRARIES`) and Python, as recorded on model rows."""
    from xtalbase.platform.provenance import dependency_versions

    found = dependency_versions()
    out = {name: found[name] for name in libraries if name in found}
    out["python"] = sys.version.split()[0]
    return out


def load_estimator(model: Model) -> Any:
    """The fitted estimator of a model row, from its artifact (hash-checked, never unpickled)."""
    if model.artifact is None:
        raise NotFound(f"model {model.id} has no stored artifact")
    return artifacts.load(bytes(model.artifact), model.artifact_format, model.artifact_sha256, model.algorithm)


def parent_model_for(session: "Session", dataset: Dataset | None, target: str) -> int | None:
    """The newest model for ``target`` trained on the parent of ``dataset`` (the model this one retrains)."""
    return models_repo.parent_model_id(session, dataset, target)


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
    split, dataset = models_repo.training_origin(session, model)
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
        "n_predictions": models_repo.count_predictions(session, model.id),
    }


def list_models(db: "Database", *, target: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Summaries of models, newest first, each with its lineage (ids back to the root)."""
    with db.session() as s:
        out = []
        for m in models_repo.newest_models(s, target=target, limit=limit):
            row = summary(s, m)
            row["lineage"] = [x.id for x in lineage(s, m)]
            out.append(row)
        return out
