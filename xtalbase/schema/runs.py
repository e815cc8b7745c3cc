"""Provenance tables: ``runs`` (every activity), their links and notes, and ``quarantine``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from xtalbase.schema.base import Base, utcnow


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

    def __repr__(self) -> str:
        return f"Run(id={self.id}, kind={self.kind!r}, status={self.status!r})"


class RunLink(Base):
    """A typed input or output of a run (split, dataset, model, file, artifact), AiiDA-style."""

    __tablename__ = "run_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # "input" | "output"
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[Optional[str]] = mapped_column(String(64))

    run: Mapped[Run] = relationship(back_populates="links")

    __table_args__ = (Index(None, "kind", "ref"),)


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

    __table_args__ = (UniqueConstraint("file_hash", "record_locator", "reason"),)

    def __repr__(self) -> str:
        return f"Quarantine(id={self.id}, reason={self.reason!r}, record={self.record_locator!r})"
