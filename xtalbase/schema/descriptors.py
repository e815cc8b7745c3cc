"""Descriptor recipes and the cached descriptor vectors of stored structures.

A :class:`DescriptorRecipe` is stored once per content ``hash`` (its kind, the kind's definition ``version`` and
its parameters), like an XRD recipe, so a new definition version is a new recipe and never reads vectors
computed under the old one. A :class:`DescriptorValue` is one structure's vector under one recipe, little-endian
float64 bytes of ``n_features`` values (``vector``) (NaN where a statistic is undefined), or the reason it could not be
computed (``error``), so a structure that fails is not retried on every query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from xtalbase.schema.base import Base, utcnow


class DescriptorRecipe(Base):
    """How a descriptor vector is computed: ``kind`` (``composition``, ``crystalnn``, ``rdf``...), ``params``,
    the kind's ``version``, and the feature ``names`` in column order."""

    __tablename__ = "descriptor_recipes"

    id: Mapped[int] = mapped_column(primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int]
    params: Mapped[dict[str, Any]]
    n_features: Mapped[int]
    names: Mapped[list[Any]]
    code_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DescriptorValue(Base):
    """One structure's descriptor vector under one recipe (``vector``), or why it has none (``error``)."""

    __tablename__ = "descriptor_values"

    recipe_id: Mapped[int] = mapped_column(ForeignKey("descriptor_recipes.id", ondelete="CASCADE"), primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id", ondelete="CASCADE"), primary_key=True, index=True)
    vector: Mapped[Optional[bytes]]
    error: Mapped[Optional[str]] = mapped_column(Text)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
