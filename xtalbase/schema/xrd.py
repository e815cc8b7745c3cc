"""XRD recipes, patterns (computed or measured) and the per-peak search table."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xtalbase.schema.base import Base, one_of, utcnow

#: ``xrd_patterns.kind``: peaks computed from a stored structure, or imported from a measured scan.
PATTERN_KINDS = ("computed", "measured")


class XrdRecipe(Base):
    """The measurement set-up a pattern was computed for; stored once per ``hash``.

    Wavelength in Å, 2θ limits in degrees, ``merge_tol`` (2θ degrees) below which
    reflections merge into one peak.
    """

    __tablename__ = "xrd_recipes"

    id: Mapped[int] = mapped_column(primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[Optional[str]] = mapped_column(String(64))
    radiation: Mapped[Optional[str]] = mapped_column(String(16))
    wavelength: Mapped[float] = mapped_column(Float)
    two_theta_min: Mapped[float] = mapped_column(Float)
    two_theta_max: Mapped[float] = mapped_column(Float)
    merge_tol: Mapped[float] = mapped_column(Float)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class XrdPattern(Base):
    """A peak list (``kind='computed'`` for a structure and recipe, or ``'measured'``).

    Peak arrays are little-endian float64 bytes of equal length: ``two_theta``
    (degrees), ``intensity`` (scaled to max 100), ``d_spacing`` (Å).
    ``hkl_families`` is a JSON list (one list of ``[h, k, l, multiplicity]`` per
    peak) when requested. Measured scans also keep the raw profile in
    ``profile_x``/``profile_y``.
    """

    __tablename__ = "xrd_patterns"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="computed", index=True)
    structure_id: Mapped[Optional[int]] = mapped_column(ForeignKey("structures.id"), index=True)
    recipe_id: Mapped[Optional[int]] = mapped_column(ForeignKey("xrd_recipes.id"), index=True)
    npeaks: Mapped[int]
    two_theta: Mapped[bytes]
    intensity: Mapped[bytes]
    d_spacing: Mapped[bytes]
    hkl_families: Mapped[Optional[list[Any]]]
    name: Mapped[Optional[str]] = mapped_column(String(255))
    file_path: Mapped[Optional[str]] = mapped_column(Text)
    file_hash: Mapped[Optional[str]] = mapped_column(String(64), index=True)  # re-importing a scan finds it
    wavelength: Mapped[Optional[float]] = mapped_column(Float)
    profile_x: Mapped[Optional[bytes]]
    profile_y: Mapped[Optional[bytes]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    __table_args__ = (UniqueConstraint("structure_id", "recipe_id"), one_of("kind", PATTERN_KINDS))


class XrdPeak(Base):
    """One peak of one pattern, denormalised so "a peak near 2θ" is an index range scan."""

    __tablename__ = "xrd_peaks"

    pattern_id: Mapped[int] = mapped_column(ForeignKey("xrd_patterns.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(primary_key=True)  # 0 = lowest 2θ
    recipe_id: Mapped[Optional[int]] = mapped_column(ForeignKey("xrd_recipes.id"))
    structure_id: Mapped[Optional[int]] = mapped_column(ForeignKey("structures.id"), index=True)
    two_theta: Mapped[float] = mapped_column(Float)
    intensity: Mapped[float] = mapped_column(Float)
    d_spacing: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index(None, "recipe_id", "two_theta"),)
