"""The one definition of ingest's options: :class:`IngestOptions` (name, type, default, help).

``db.ingest(paths, **options)``, ``xtalbase ingest`` (its flags are generated from the
fields) and the worker settings (:class:`~xtalbase.ingest.prepare.PrepareOptions`,
:class:`~xtalbase.ingest.validate.ValidationOptions`) are all built from it, so an
option is added, renamed or re-defaulted in this file only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from xtalbase.errors import XtalbaseError
from xtalbase.ingest.engines import DEFAULT_ENGINE, DEFAULT_SYMPREC, SYMMETRY_ENGINES
from xtalbase.ingest.formats import FORMATS
from xtalbase.platform.config import SCHEDULER_HELP

if TYPE_CHECKING:
    from xtalbase.ingest.prepare import PrepareOptions
    from xtalbase.ingest.validate import ValidationOptions
    from xtalbase.platform.budgets import Budget

#: Records per database transaction.
BATCH_SIZE = 500


def _opt(default: Any, help: str, *, cli: bool = True, run_param: bool = True, **typer: Any) -> Any:
    # metadata drives the generated CLI flag (help, typer keywords) and what the run records as its params
    return field(default=default, metadata={"help": help, "cli": cli, "run_param": run_param, "typer": typer})


@dataclass(frozen=True)
class IngestOptions:
    """Every setting of one ingest run; invalid values raise :class:`~xtalbase.errors.XtalbaseError` at construction.

    Attributes
    ----------
    format : str or None
        Force a reader (a name of :data:`xtalbase.ingest.formats.FORMATS`); detected per file when ``None``.
    source, licence : str or None
        ``sources.database`` name and licence text of every record (database inferred when omitted).
    workers : int
        Worker processes for parsing and symmetry (1 = in this process).
    symprec : float
        Symmetry distance tolerance in Å for space groups and canonical hashes.
    symmetry_engine : {"spglib", "moyo"}
        The space-group finder (docs/ingest.md compares them).
    allow_disorder, all_steps, require_converged : bool
        Store partial occupancies; store every VASP ionic step; quarantine unconverged DFT.
    poscar_species : str or None
        Element names for POSCARs that name none: ``"Si,O"`` in atom-type order, or ``"placeholder"``.
    xrd : bool
        Afterwards compute XRD patterns of the new structures.
    max_sites, min_coord_decimals, min_special_decimals, min_cell_decimals, overlap_fraction
        Validation thresholds (see :class:`~xtalbase.ingest.validate.ValidationOptions`).
    min_cell_length, max_cell_length, min_volume_per_atom, min_cell_shape, max_cell_offset
        Cell sanity bounds (Å, Å³ per site, volume/(a·b·c), cells), checked before any neighbour search.
    max_decompressed_mb : int
        ``too_large`` when a ``.gz``/``.bz2``/``.xz`` file expands past this many MiB.
    batch_size : int
        Records per database transaction.
    scheduler : str or None
        Address of a ``dask.distributed`` scheduler whose workers prepare the records (and compute the XRD
        follow-up) instead of ``workers`` local processes; default ``$XTALBASE_DASK_SCHEDULER``, ``""``: local.
    record_timeout : float
        Seconds one record may take in a worker (reading it, then validating and hashing it) before the worker
        is stopped and the record quarantined as ``timeout``; 0: no limit.
    worker_memory : int
        MiB of address space a worker may add to its size at start; past it the record is quarantined as
        ``memory_limit`` and the worker replaced; 0: no cap. With both 0 and one worker, records run in this process.
    """

    format: Optional[str] = _opt(None, f"Force a reader: {', '.join(FORMATS)}; detected from name and content otherwise.")
    source: Optional[str] = _opt(None, "Source database name (MP, COD, ICSD, perov5, ...); inferred when omitted.")
    licence: Optional[str] = _opt(None, "Licence text stored with every source.")
    workers: int = _opt(1, "Worker processes for parsing and symmetry.", min=1)
    symprec: float = _opt(DEFAULT_SYMPREC, "Symmetry tolerance in Å for space groups and canonical hashes (> 0).", min=1e-6)
    symmetry_engine: str = _opt(DEFAULT_ENGINE, "Space-group finder: spglib (the reference) or moyo (moyopy; "
                                                "docs/ingest.md lists where they differ).")
    allow_disorder: bool = _opt(False, "Store partially occupied sites instead of quarantining them.")
    all_steps: bool = _opt(False, "VASP: store every ionic step, not only the last.")
    require_converged: bool = _opt(False, "Quarantine unconverged DFT results (reason 'unconverged').")
    poscar_species: Optional[str] = _opt(None, "Element names for POSCARs that name none: 'Si,O' (atom-type order) or "
                                               "'placeholder' (type i -> element Z=i, flagged).")
    xrd: bool = _opt(False, "Afterwards compute XRD patterns of the new structures.", run_param=False)
    max_sites: int = _opt(1000, "Quarantine cells with more sites (too_many_sites).")
    min_coord_decimals: int = _opt(3, "Decimals a non-special fractional coordinate needs (low_precision).")
    min_special_decimals: int = _opt(4, "Decimals a coordinate near a special value such as 1/3 needs unless written "
                                        "exactly (low_precision).")
    min_cell_decimals: int = _opt(2, "Decimals a cell length needs (low_precision).")
    overlap_fraction: float = _opt(0.5, "overlapping_atoms below this fraction of the summed covalent radii.")
    min_cell_length: float = _opt(0.5, "bad_cell below this lattice length (Å).")
    max_cell_length: float = _opt(1000.0, "bad_cell above this lattice length (Å).")
    min_volume_per_atom: float = _opt(0.5, "bad_cell below this cell volume per site (Å³).")
    min_cell_shape: float = _opt(1e-3, "bad_cell below this volume/(a·b·c): a sliver cell (angle near 0° or 180°).")
    max_cell_offset: float = _opt(100.0, "bad_cell for a site further than this many cells outside the cell.")
    max_decompressed_mb: int = _opt(512, "too_large when a compressed file expands past this many MiB.", min=1)
    batch_size: int = _opt(BATCH_SIZE, "Records per database transaction.", cli=False, run_param=False)
    scheduler: Optional[str] = _opt(None, SCHEDULER_HELP, run_param=False, show_default=False)
    # the slowest real record measured takes 0.13 s (docs/ingest.md "Budgets"): 60 s leaves a margin of 400x
    record_timeout: float = _opt(60.0, "Seconds a record may take in a worker before it is quarantined as 'timeout' "
                                       "(0: no limit).", min=0)
    worker_memory: int = _opt(4096, "MiB of memory a worker may add to its size at start; a record past it is "
                                    "quarantined as 'memory_limit' and the worker replaced (0: no cap).", min=0)

    def __post_init__(self) -> None:
        if not self.symprec > 0:
            raise XtalbaseError(f"symprec must be a positive distance in Å (got {self.symprec}); "
                                f"the default is {DEFAULT_SYMPREC}")
        if self.symmetry_engine not in SYMMETRY_ENGINES:
            raise XtalbaseError(f"unknown symmetry engine {self.symmetry_engine!r}: "
                                f"choose one of {', '.join(SYMMETRY_ENGINES)}")
        if self.format is not None and self.format not in FORMATS:
            raise XtalbaseError(f"unknown format {self.format!r}: choose one of {', '.join(sorted(FORMATS))}")
        bounds = (self.min_cell_length, self.max_cell_length, self.min_volume_per_atom, self.min_cell_shape,
                  self.max_cell_offset)
        if not all(math.isfinite(b) and b >= 0 for b in bounds) or self.min_cell_length > self.max_cell_length:
            raise XtalbaseError(f"cell bounds must be finite, non-negative, and min_cell_length <= max_cell_length (got "
                                f"{self.min_cell_length}, {self.max_cell_length} Å, {self.min_volume_per_atom} Å³, "
                                f"{self.min_cell_shape}, {self.max_cell_offset})")
        for name in ("workers", "batch_size", "max_decompressed_mb"):
            if getattr(self, name) < 1:
                raise XtalbaseError(f"ingest option {name} must be at least 1 (got {getattr(self, name)})")
        for name in ("record_timeout", "worker_memory"):
            if not getattr(self, name) >= 0:  # NaN included
                raise XtalbaseError(f"ingest option {name} must be 0 (no limit) or more (got {getattr(self, name)})")

    @classmethod
    def from_kwargs(cls, base: Optional["IngestOptions"] = None, **options: Any) -> "IngestOptions":
        """``base`` (or the defaults) with ``options`` replaced; an unknown name is an error that lists the known ones."""
        known = cls.names()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise XtalbaseError(f"unknown ingest option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                                f"choose from {', '.join(known)}")
        return dataclasses.replace(base or cls(), **options)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in definition order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def validation(self) -> "ValidationOptions":
        """The thresholds the workers check records against."""
        from xtalbase.ingest.validate import ValidationOptions

        return ValidationOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ValidationOptions)})

    def prepare(self) -> "PrepareOptions":
        """The picklable per-run settings of the worker processes."""
        from xtalbase.ingest.prepare import PrepareOptions

        return PrepareOptions(symprec=self.symprec, symmetry_engine=self.symmetry_engine, all_steps=self.all_steps,
                              poscar_species=self.poscar_species, validation=self.validation(),
                              max_decompressed_bytes=self.max_decompressed_mb << 20)

    def budget(self) -> "Budget":
        """The limits of each record and worker (:class:`~xtalbase.platform.budgets.Budget`)."""
        from xtalbase.platform.budgets import Budget

        return Budget(timeout=self.record_timeout or None, memory_mb=self.worker_memory or None)

    def run_params(self) -> dict[str, Any]:
        """The options a run records as its params (not how it ran: batch size, scheduler, the XRD follow-up)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata["run_param"]}
