"""Crystal-structure prediction: runs of a model (or an import) on a split's fold, their samples and evaluations.

A :class:`CspRun` is one set of predictions: which model (a ``models`` row, or an imported label), which split
(its ``hash`` copied so results stay comparable by content), fold, ``k`` samples per test structure and seed.
Its :class:`CspSample` rows hold the predicted structures as arrays (the encoding of ``structures``: see
:mod:`xtalbase.schema.arrays`), keyed by (test structure, sample index). Both are sealed once written; triggers
(migration 0009) refuse any later change. A :class:`CspEvaluation` is the matcher run over a CSP run's pairs with
given settings; its :class:`CspPairResult` rows are what every metric is computed from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from xtalbase.schema.base import Base, one_of, utcnow

#: How a CSP run's samples came to be.
CSP_ORIGINS = ("sampled", "imported")
#: Outcome of matching one sample against its reference.
PAIR_STATUSES = ("matched", "no_match", "invalid", "composition_mismatch", "missing", "timeout", "error")


class CspRun(Base):
    """Predicted structures of one model on one fold of one split (immutable once ``sealed``)."""

    __tablename__ = "csp_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[Optional[int]] = mapped_column(ForeignKey("models.id"), index=True)
    split_id: Mapped[int] = mapped_column(ForeignKey("splits.id"), index=True)
    split_hash: Mapped[str] = mapped_column(String(64), index=True)
    fold: Mapped[str] = mapped_column(String(16))
    k: Mapped[int]
    seed: Mapped[Optional[int]]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    n_structures: Mapped[int] = mapped_column(default=0)
    n_samples: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[Optional[float]] = mapped_column(Float)
    code_version: Mapped[str] = mapped_column(String(64))
    library_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sealed: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    __table_args__ = (one_of("origin", CSP_ORIGINS),)

    def __repr__(self) -> str:
        return f"CspRun(id={self.id}, name={self.name!r}, model={self.model!r}, k={self.k}, split_hash={self.split_hash[:12]!r})"


class CspSample(Base):
    """Sample ``sample`` (0..k-1) predicted for test structure ``structure_id``: cell, numbers, fractional coordinates."""

    __tablename__ = "csp_samples"

    csp_run_id: Mapped[int] = mapped_column(ForeignKey("csp_runs.id", ondelete="CASCADE"), primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    sample: Mapped[int] = mapped_column(primary_key=True)
    nsites: Mapped[int]
    cell: Mapped[bytes]
    numbers: Mapped[bytes]
    frac_coords: Mapped[bytes]

    __table_args__ = (Index(None, "structure_id"),)


class CspEvaluation(Base):
    """The per-pair results of matching a CSP run's samples with one set of matcher and gate settings."""

    __tablename__ = "csp_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    csp_run_id: Mapped[int] = mapped_column(ForeignKey("csp_runs.id"), index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    settings_hash: Mapped[str] = mapped_column(String(64))
    library_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[Optional[float]] = mapped_column(Float)
    sealed: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("runs.id"), index=True)

    __table_args__ = (UniqueConstraint("csp_run_id", "settings_hash"),)


class CspPairResult(Base):
    """One (test structure, sample) pair: the gates, the matcher's normalised RMS (``None``: no match), extras.

    ``rms`` is ``StructureMatcher.get_rms_dist(pred, ref)[0]`` (normalised by (V/N)^1/3 after both cells are
    scaled to equal volume); ``volume_ratio`` is V_pred / V_ref of the cells as predicted; ``spacegroup_*``
    are spglib numbers at the evaluation's ``symprec`` (``None`` when undetermined).
    """

    __tablename__ = "csp_pair_results"

    evaluation_id: Mapped[int] = mapped_column(ForeignKey("csp_evaluations.id", ondelete="CASCADE"), primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structures.id"), primary_key=True)
    sample: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(24))
    struct_valid: Mapped[bool]
    comp_valid: Mapped[bool]
    ref_struct_valid: Mapped[bool]
    ref_comp_valid: Mapped[bool]
    rms: Mapped[Optional[float]] = mapped_column(Float)
    volume_ratio: Mapped[Optional[float]] = mapped_column(Float)
    spacegroup_pred: Mapped[Optional[int]]
    spacegroup_ref: Mapped[Optional[int]]
    seconds: Mapped[Optional[float]] = mapped_column(Float)

    __table_args__ = (one_of("status", PAIR_STATUSES), Index(None, "structure_id"))
