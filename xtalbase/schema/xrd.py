"""XRD recipes, patterns (computed or measured), the per-peak search table and the structures that failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text, UniqueConstraint
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

    # intensity and structure id too: a peak window with an intensity bound is read from the index alone (0013)
    __table_args__ = (Index(None, "recipe_id", "two_theta", "intensity", "structure_id"),)


class XrdPeakIndex(Base):
    """Every computed pattern of one recipe in one blob (:class:`xtalbase.xrd.peak_index.PeakIndex` as ``.npz``).

    ``fingerprint`` identifies the layout version and the pattern set it was built from (count and sums of ids,
    structure ids and peak counts, largest id), so an index
    is only read while no pattern of its recipe was added or deleted.
    """

    __tablename__ = "xrd_peak_indexes"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey("xrd_recipes.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    n_patterns: Mapped[int]
    data: Mapped[bytes]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("recipe_id", "fingerprint"),)


#: Why the XRD engine could not compute a structure (``xrd_failures.reason``).
XRD_FAILURE_REASONS = ("no_sites", "bad_cell", "no_scattering_factors", "engine_error")


class XrdFailure(Base):
    """A structure whose pattern could not be computed for a recipe, one row per (structure, recipe).

    Later runs of the builder skip it (the same input fails the same way) unless asked
    to retry; a retry that succeeds deletes the row. ``message`` says what was wrong.
    """

    __tablename__ = "xrd_failures"

    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey("xrd_recipes.id"), primary_key=True, index=True)
    reason: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("reason IN ('" + "', '".join(XRD_FAILURE_REASONS) + "')", name="reason"),)

    def __repr__(self) -> str:
        return f"XrdFailure(structure_id={self.structure_id}, recipe_id={self.recipe_id}, reason={self.reason!r})"
