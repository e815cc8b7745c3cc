"""DFT calculations attached to the exact configuration they were run on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from xtalbase.schema.base import Base, utcnow


class Calculation(Base):
    """One DFT result (one ionic step) on one structure.

    ``energy`` in ``energy_unit`` (eV) for the whole cell, ``energy_per_atom`` in
    eV/atom; ``forces`` (nsites, 3) in ``forces_unit`` (eV/Å); ``stress`` (3, 3)
    in ``stress_unit`` as the source gave it (kBar for VASP). ``converged`` is
    false when either the electronic or the ionic loop did not converge.
    """

    __tablename__ = "calculations"

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id"), index=True)
    source_id: Mapped[Optional[int]] = mapped_column(ForeignKey("sources.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    code_version: Mapped[Optional[str]] = mapped_column(String(64))
    functional: Mapped[Optional[str]] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ionic_step: Mapped[Optional[int]]
    energy: Mapped[Optional[float]] = mapped_column(Float)
    energy_per_atom: Mapped[Optional[float]] = mapped_column(Float, index=True)
    forces: Mapped[Optional[bytes]]
    stress: Mapped[Optional[bytes]]
    energy_unit: Mapped[str] = mapped_column(String(16), default="eV")
    forces_unit: Mapped[str] = mapped_column(String(16), default="eV/Å")
    stress_unit: Mapped[Optional[str]] = mapped_column(String(16))
    converged: Mapped[Optional[bool]]
    electronic_converged: Mapped[Optional[bool]]
    ionic_converged: Mapped[Optional[bool]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    def __repr__(self) -> str:
        return f"Calculation(id={self.id}, structure_id={self.structure_id}, energy={self.energy})"
