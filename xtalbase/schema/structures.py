"""Structures, their element index, where they came from (``sources``) and source properties."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from xtalbase.schema.base import Base, utcnow


class Structure(Base):
    """One distinct periodic configuration; rows are immutable once written (but for ``canonical_hash``, rewritten
    by ingest when its recipe, ``hash_version``, changes).

    Arrays are raw bytes (see :mod:`xtalbase.schema.arrays`): ``cell`` (3, 3) Å,
    ``numbers`` (nsites,) atomic numbers, ``frac_coords`` (nsites, 3).
    ``site_occupancies`` is set only for disordered structures stored with
    ``--allow-disorder``: one ``{element: occupancy}`` dict per site.
    ``exact_hash`` identifies the stored arrays; ``canonical_hash`` the
    tolerance-aware standardised cell (``hash_version`` names both algorithms).
    Lengths in Å, angles in degrees, volume in Å³, density in g/cm³.
    """

    __tablename__ = "structures"

    id: Mapped[int] = mapped_column(primary_key=True)
    exact_hash: Mapped[str] = mapped_column(String(64), unique=True)
    canonical_hash: Mapped[str] = mapped_column(String(64), index=True)
    hash_version: Mapped[int] = mapped_column(default=1)
    formula_reduced: Mapped[str] = mapped_column(String(255), index=True)
    formula_anonymous: Mapped[str] = mapped_column(String(255), index=True)
    chemical_system: Mapped[str] = mapped_column(String(255), index=True)
    nelements: Mapped[int] = mapped_column(index=True)
    nsites: Mapped[int] = mapped_column(index=True)
    a: Mapped[float] = mapped_column(Float)
    b: Mapped[float] = mapped_column(Float)
    c: Mapped[float] = mapped_column(Float)
    alpha: Mapped[float] = mapped_column(Float)
    beta: Mapped[float] = mapped_column(Float)
    gamma: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float, index=True)
    density: Mapped[float] = mapped_column(Float, index=True)
    cell: Mapped[bytes]
    numbers: Mapped[bytes]
    frac_coords: Mapped[bytes]
    site_occupancies: Mapped[Optional[list[Any]]]
    spacegroup_number: Mapped[Optional[int]] = mapped_column(index=True)
    spacegroup_symbol: Mapped[Optional[str]] = mapped_column(String(32))
    crystal_system: Mapped[Optional[str]] = mapped_column(String(16), index=True)
    symprec: Mapped[Optional[float]] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    elements: Mapped[list["StructureElement"]] = relationship(back_populates="structure", cascade="all, delete-orphan")
    sources: Mapped[list["Source"]] = relationship(back_populates="structure")

    # space group with an nsites range in one index range scan, index-only on PostgreSQL (migration 0013)
    __table_args__ = (Index(None, "spacegroup_number", "nsites", "id"),)

    def __repr__(self) -> str:
        return f"Structure(id={self.id}, formula={self.formula_reduced!r}, sg={self.spacegroup_number})"


class StructureElement(Base):
    """Composition index: one row per (structure, element), so element filters use an index."""

    __tablename__ = "structure_elements"

    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id", ondelete="CASCADE"), primary_key=True)
    element: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount: Mapped[float] = mapped_column(Float)

    structure: Mapped[Structure] = relationship(back_populates="elements")

    __table_args__ = (Index(None, "element", "structure_id"),)


class Source(Base):
    """Where a structure came from; many sources may point at one structure.

    Identity of a source record is (``file_hash``, ``record_locator``): re-reading
    the same file inserts nothing.
    """

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id"), index=True)
    database: Mapped[str] = mapped_column(String(64), index=True)
    external_id: Mapped[Optional[str]] = mapped_column(String(255), index=True)
    file_path: Mapped[str] = mapped_column(Text)
    file_hash: Mapped[str] = mapped_column(String(64))
    record_locator: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(32))
    licence: Mapped[Optional[str]] = mapped_column(Text)
    raw_hash: Mapped[str] = mapped_column(String(64))
    warnings: Mapped[Optional[list[Any]]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    structure: Mapped[Structure] = relationship(back_populates="sources")
    properties: Mapped[list["SourceProperty"]] = relationship(back_populates="source", cascade="all, delete-orphan")

    __table_args__ = (UniqueConstraint("file_hash", "record_locator"),)

    def __repr__(self) -> str:
        return f"Source(id={self.id}, database={self.database!r}, external_id={self.external_id!r})"


class SourceProperty(Base):
    """A named property a source record carried (e.g. ``heat_ref``), numeric and/or text."""

    __tablename__ = "source_properties"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value_float: Mapped[Optional[float]] = mapped_column(Float)
    value_text: Mapped[Optional[str]] = mapped_column(Text)

    source: Mapped[Source] = relationship(back_populates="properties")

    __table_args__ = (Index(None, "name", "value_float"),)
