"""Splits, datasets (training and retraining sets), models and predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Float, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from xtalbase.schema.base import Base, one_of, utcnow

#: How a split's membership is kept: ``ml.split_strategies.MODES`` plus ``imported`` (read from an export; a test checks).
SPLIT_MODES = ("stable", "exact", "imported")


class Split(Base):
    """A named, immutable assignment of structures to folds; ``hash`` is over recipe and membership.

    ``sealed`` is set in the transaction that writes the members; database
    triggers (migration 0004) then refuse any change to the split row or its
    ``split_members`` rows.
    """

    __tablename__ = "splits"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    hash: Mapped[str] = mapped_column(String(64), index=True)
    strategy: Mapped[str] = mapped_column(String(32))
    recipe: Mapped[dict[str, Any]]
    seed: Mapped[int]
    mode: Mapped[str] = mapped_column(String(16), default="stable")
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sealed: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    __table_args__ = (one_of("mode", SPLIT_MODES),)

    def __repr__(self) -> str:
        return f"Split(name={self.name!r}, hash={self.hash[:12]!r}, strategy={self.strategy!r})"


class SplitMember(Base):
    """Which fold (``train``, ``val``, ``test``, ``fold0``...) a structure is in."""

    __tablename__ = "split_members"

    split_id: Mapped[int] = mapped_column(ForeignKey("splits.id", ondelete="CASCADE"), primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    fold: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index(None, "split_id", "fold"), Index(None, "structure_id"))


class Dataset(Base):
    """A named, hashed set of structures, optionally extending a parent set.

    ``hash`` is over the members' exact hashes; ``sealed`` works as on splits:
    once set, triggers refuse changes to the row and its ``dataset_members``.
    """

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    hash: Mapped[str] = mapped_column(String(64), index=True)
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("datasets.id"), index=True)
    split_id: Mapped[Optional[int]] = mapped_column(ForeignKey("splits.id"), index=True)
    fold: Mapped[Optional[str]] = mapped_column(String(16))
    description: Mapped[Optional[str]] = mapped_column(Text)
    n_members: Mapped[int] = mapped_column(default=0)
    sealed: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, hash={self.hash[:12]!r}, n_members={self.n_members})"


class DatasetMember(Base):
    """A structure in a dataset; members added over the parent carry why they were added."""

    __tablename__ = "dataset_members"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    inherited: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[Optional[str]] = mapped_column(Text)
    score: Mapped[Optional[float]] = mapped_column(Float)
    source_run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"))

    __table_args__ = (Index(None, "structure_id"),)


class Model(Base):
    """A trained model with everything needed to explain and reproduce it.

    ``artifact`` holds bytes in a format that never executes code when loaded
    (``artifact_format``: e.g. ``xgboost-ubj`` or ``skops``), checked by
    ``artifact_sha256``.
    """

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[Optional[str]] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(32))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[Optional[int]]
    feature_recipe: Mapped[dict[str, Any]] = mapped_column(default=dict)
    xrd_recipe_id: Mapped[Optional[int]] = mapped_column(ForeignKey("xrd_recipes.id"))
    split_id: Mapped[Optional[int]] = mapped_column(ForeignKey("splits.id"), index=True)
    dataset_id: Mapped[Optional[int]] = mapped_column(ForeignKey("datasets.id"), index=True)
    fold: Mapped[Optional[str]] = mapped_column(String(16))
    training_set_hash: Mapped[Optional[str]] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    library_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(64))
    artifact: Mapped[Optional[bytes]]
    artifact_path: Mapped[Optional[str]] = mapped_column(Text)
    artifact_format: Mapped[str] = mapped_column(String(32))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    parent_model_id: Mapped[Optional[int]] = mapped_column(ForeignKey("models.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    def __repr__(self) -> str:
        return f"Model(id={self.id}, target={self.target!r}, algorithm={self.algorithm!r}, sha256={(self.artifact_sha256 or '')[:12]!r})"


class Prediction(Base):
    """One model output for one structure or pattern: a number, a label and/or a JSON payload."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    structure_id: Mapped[Optional[int]] = mapped_column(ForeignKey("structures.id"), index=True)
    pattern_id: Mapped[Optional[int]] = mapped_column(ForeignKey("xrd_patterns.id"), index=True)
    target: Mapped[str] = mapped_column(String(64))
    value: Mapped[Optional[float]] = mapped_column(Float)
    label: Mapped[Optional[str]] = mapped_column(String(64))
    payload: Mapped[Optional[dict[str, Any]]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    def __repr__(self) -> str:
        return f"Prediction(id={self.id}, model_id={self.model_id}, label={self.label!r}, value={self.value})"
