"""Provenance tables: ``runs`` (every activity), their links and notes, and ``quarantine``."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Optional

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from xtalbase.schema.base import Base, one_of, utcnow


class RunStatus(str, Enum):
    """The life of a run: ``running`` until its block ends, then ``succeeded`` or ``failed``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Direction(str, Enum):
    """Whether a linked thing was read (``input``) or made (``output``) by the run."""

    INPUT = "input"
    OUTPUT = "output"


class LinkKind(str, Enum):
    """What a run link points at; row kinds name their foreign-key column in :data:`LINK_COLUMNS`."""

    STRUCTURE = "structure"
    SPLIT = "split"
    DATASET = "dataset"
    MODEL = "model"
    XRD_RECIPE = "xrd_recipe"
    XRD_PATTERN = "xrd_pattern"
    PREDICTIONS = "predictions"  # the rows carry ``run_id``; the link holds the id range as its label
    TRAINING_SET = "training_set"  # a set of structures known by its set hash only
    FILE = "file"
    PATH = "path"


#: The ``run_links`` column holding the referenced row's id, per row kind.
LINK_COLUMNS: dict[LinkKind, str] = {
    LinkKind.STRUCTURE: "structure_id",
    LinkKind.SPLIT: "split_id",
    LinkKind.DATASET: "dataset_id",
    LinkKind.MODEL: "model_id",
    LinkKind.XRD_RECIPE: "xrd_recipe_id",
    LinkKind.XRD_PATTERN: "pattern_id",
}

#: Reason codes of quarantined records (the ingest code's ``REASONS``; a test keeps the two equal).
QUARANTINE_REASONS = (
    "parse_error", "truncated_file", "missing_cell", "missing_coordinates", "unknown_element", "non_finite",
    "zero_volume", "too_many_sites", "low_precision", "partial_occupancy", "overlapping_atoms", "unconverged",
    "bad_cell", "too_large", "timeout", "memory_limit", "unsafe_path",
)


class Run(Base):
    """One activity (ingest, xrd, split, train, predict, ...) and the environment it ran in.

    ``status`` is ``running`` while the block executes, then ``succeeded`` or
    ``failed`` (with ``error``); a run found ``running`` whose process is gone is
    marked ``failed`` by the next start (see :mod:`xtalbase.platform.runs`).
    """

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default="running")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    package_version: Mapped[str] = mapped_column(String(64))
    git_revision: Mapped[Optional[str]] = mapped_column(String(64))
    dependency_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    host: Mapped[str] = mapped_column(String(255))
    user: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[Optional[datetime]]
    error: Mapped[Optional[str]] = mapped_column(Text)
    summary: Mapped[Optional[dict[str, Any]]]
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    parent: Mapped[Optional["Run"]] = relationship(remote_side=[id])
    links: Mapped[list["RunLink"]] = relationship(back_populates="run", cascade="all, delete-orphan")
    notes: Mapped[list["RunNote"]] = relationship(back_populates="run", cascade="all, delete-orphan")

    __table_args__ = (one_of("status", [s.value for s in RunStatus]),)

    def __repr__(self) -> str:
        return f"Run(id={self.id}, kind={self.kind!r}, status={self.status!r})"


class RunLink(Base):
    """A typed input or output of a run, AiiDA-style: ``direction`` and ``kind`` from closed sets.

    A link to a row holds the row's id in the kind's own nullable foreign key
    (:data:`LINK_COLUMNS`); ``ref`` is only a label for people (a name, an id
    range, the tail of a path), ``path`` a file's full path and ``sha256`` the
    content hash of what was linked. Deleting a linked row keeps the link with
    its label and hash (``SET NULL``).
    """

    __tablename__ = "run_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[Optional[str]] = mapped_column(String(64))
    structure_id: Mapped[Optional[int]] = mapped_column(ForeignKey("structures.id", ondelete="SET NULL"), index=True)
    split_id: Mapped[Optional[int]] = mapped_column(ForeignKey("splits.id", ondelete="SET NULL"), index=True)
    dataset_id: Mapped[Optional[int]] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), index=True)
    model_id: Mapped[Optional[int]] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), index=True)
    xrd_recipe_id: Mapped[Optional[int]] = mapped_column(ForeignKey("xrd_recipes.id", ondelete="SET NULL"), index=True)
    pattern_id: Mapped[Optional[int]] = mapped_column(ForeignKey("xrd_patterns.id", ondelete="SET NULL"), index=True)
    path: Mapped[Optional[str]] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="links")

    __table_args__ = (
        Index(None, "kind", "ref"),
        one_of("direction", [d.value for d in Direction]),
        one_of("kind", [k.value for k in LinkKind]),
    )

    def __repr__(self) -> str:
        return f"RunLink(run_id={self.run_id}, {self.direction} {self.kind} {self.ref!r})"


class RunNote(Base):
    """Editable free-text notes on a run; the run's own facts never change once finished."""

    __tablename__ = "run_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="notes")


class Quarantine(Base):
    """A rejected input record with a machine-readable reason code and a human message.

    ``raw_text`` keeps the record itself when it is small; larger records keep
    only ``raw_hash`` and ``raw_size`` and are found again by ``file_path`` +
    ``record_locator``.
    """

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    file_path: Mapped[str] = mapped_column(Text)
    file_hash: Mapped[str] = mapped_column(String(64))
    record_locator: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    message: Mapped[str] = mapped_column(Text)
    raw_text: Mapped[Optional[str]] = mapped_column(Text)
    raw_hash: Mapped[Optional[str]] = mapped_column(String(64))
    raw_size: Mapped[Optional[int]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("file_hash", "record_locator", "reason"), one_of("reason", QUARANTINE_REASONS))

    def __repr__(self) -> str:
        return f"Quarantine(id={self.id}, reason={self.reason!r}, record={self.record_locator!r})"
