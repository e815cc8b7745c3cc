"""Models and predictions: the registry's SQL (rows only; artifacts are loaded by :mod:`xtalbase.ml.registry`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from sqlalchemy import func, select

from xtalbase.errors import NotFound
from xtalbase.platform.repositories import chunks
from xtalbase.schema import Dataset, Model, Prediction, Split, Structure, XrdPattern

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def get_model(session: "Session", model_id: int | str) -> Model:
    """The model with id ``model_id`` or, for a non-numeric string, the newest one with that name."""
    text = str(model_id)
    model = session.get(Model, int(text)) if text.isdigit() else session.scalars(
        select(Model).where(Model.name == text).order_by(Model.id.desc())).first()
    if model is None:
        raise NotFound(f"no model {text!r} (see `xtalbase models list`)")
    return model


def find_model_by_artifact(session: "Session", algorithm: str, artifact_sha256: str) -> int | None:
    """The id of the oldest model of ``algorithm`` whose artifact has this sha256, or ``None``."""
    return session.scalars(select(Model.id).where(Model.algorithm == algorithm, Model.artifact_sha256 == artifact_sha256)
                           .order_by(Model.id)).first()


def predictions_of_pattern(session: "Session", model_id: int, pattern_id: int) -> list[Prediction]:
    """The predictions of ``model_id`` for the pattern ``pattern_id``, oldest first."""
    return list(session.scalars(select(Prediction).where(Prediction.model_id == model_id, Prediction.pattern_id == pattern_id)
                                .order_by(Prediction.id)))


def predictions_of_structure(session: "Session", structure_id: int, limit: int = 50) -> list[Prediction]:
    """The newest ``limit`` predictions made for a structure or for one of its computed patterns, newest first."""
    patterns = select(XrdPattern.id).where(XrdPattern.structure_id == structure_id)
    stmt = (select(Prediction).where((Prediction.structure_id == structure_id) | Prediction.pattern_id.in_(patterns))
            .order_by(Prediction.id.desc()).limit(limit))
    return list(session.scalars(stmt))


def newest_models(session: "Session", *, target: str | None = None, limit: int = 100) -> list[Model]:
    """At most ``limit`` models, newest first, optionally only those for ``target``."""
    stmt = select(Model).order_by(Model.id.desc()).limit(limit)
    if target:
        stmt = stmt.where(Model.target == target)
    return list(session.scalars(stmt))


def parent_model_id(session: "Session", dataset: Dataset | None, target: str) -> int | None:
    """The newest model for ``target`` trained on the parent of ``dataset`` (the model a retraining replaces)."""
    if dataset is None or dataset.parent_id is None:
        return None
    return session.scalars(select(Model.id).where(Model.dataset_id == dataset.parent_id, Model.target == target)
                           .order_by(Model.id.desc())).first()


def training_origin(session: "Session", model: Model) -> tuple[Split | None, Dataset | None]:
    """The split and the dataset a model was trained on (either may be ``None``)."""
    split = session.get(Split, model.split_id) if model.split_id else None
    dataset = session.get(Dataset, model.dataset_id) if model.dataset_id else None
    return split, dataset


def count_predictions(session: "Session", model_id: int) -> int:
    """Number of stored predictions of a model."""
    return int(session.scalar(select(func.count()).select_from(Prediction).where(Prediction.model_id == model_id)) or 0)


def structure_formulas(session: "Session", structure_ids: Sequence[int]) -> dict[int, str]:
    """``{structure_id: reduced formula}`` for the given ids (used to label predictions)."""
    out: dict[int, str] = {}
    for chunk in chunks([int(i) for i in structure_ids]):
        out.update(session.execute(select(Structure.id, Structure.formula_reduced).where(Structure.id.in_(chunk))).all())
    return out


__all__ = ["count_predictions", "find_model_by_artifact", "get_model", "newest_models", "parent_model_id", "predictions_of_pattern",
           "predictions_of_structure", "structure_formulas", "training_origin"]
