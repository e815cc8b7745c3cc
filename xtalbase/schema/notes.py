"""Curator notes on structures (``structure_notes``): free text added from the web pages, never changing the structure."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from xtalbase.schema.base import Base, utcnow


class StructureNote(Base):
    """One free-text note on a structure; notes are added (never edited) and go with the structure when it is deleted."""

    __tablename__ = "structure_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)
