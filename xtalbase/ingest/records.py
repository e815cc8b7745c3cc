"""What readers yield: a :class:`Record` (one structure, optionally with a DFT result) or a :class:`ReadError`.

Readers only parse; validation, symmetry, hashing and storage happen later
(:mod:`xtalbase.ingest.prepare`, :mod:`xtalbase.ingest.writer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import numpy as np

#: Every quarantine reason code, in the order the checks run.
REASONS = (
    "parse_error", "truncated_file", "missing_cell", "missing_coordinates", "unknown_element", "non_finite",
    "zero_volume", "too_many_sites", "low_precision", "partial_occupancy", "overlapping_atoms", "unconverged",
    "bad_cell", "too_large", "timeout", "memory_limit", "unsafe_path",
)


@dataclass
class Calculation:
    """A DFT result on the record's exact configuration.

    ``energy`` eV per cell; ``forces`` (nsites, 3) eV/Å; ``stress`` (3, 3) in
    ``stress_unit`` (``kBar`` for VASP-derived data, ``eV/Å^3`` for ASE/extxyz).
    """

    code: str
    energy: Optional[float] = None
    forces: Optional[np.ndarray] = None
    stress: Optional[np.ndarray] = None
    stress_unit: Optional[str] = None
    code_version: Optional[str] = None
    functional: Optional[str] = None
    parameters: dict[str, Any] = field(default_factory=dict)
    ionic_step: Optional[int] = None
    converged: Optional[bool] = None
    electronic_converged: Optional[bool] = None
    ionic_converged: Optional[bool] = None


@dataclass
class Record:
    """One structure read from a file.

    Parameters
    ----------
    locator : str
        Where the record sits in its file (``block=<name>``, ``row=<n>``,
        ``frame=<n>``, ``ionic_step=<n>``, ``index=<n>``); with the file hash it
        identifies the source.
    cell : ndarray, shape (3, 3)
        Lattice vectors a, b, c as rows, Å.
    species : list of dict
        One ``{element symbol: occupancy}`` per site.
    frac_coords : ndarray, shape (nsites, 3)
        Fractional coordinates.
    raw_values : dict, optional
        The numbers exactly as written, for the ``low_precision`` check of text
        formats: ``cell`` (CIF a, b, c, alpha, beta, gamma) or ``cell_vectors``
        (POSCAR: the nine lattice-vector components), and ``coords``; lists of str.
    """

    locator: str
    cell: np.ndarray
    species: list[dict[str, float]]
    frac_coords: np.ndarray
    external_id: Optional[str] = None
    database: Optional[str] = None
    properties: dict[str, Any] = field(default_factory=dict)
    calculation: Optional[Calculation] = None
    raw_text: Optional[str] = None
    raw_values: Optional[dict[str, list[str]]] = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ReadError:
    """A record (or a whole file) that could not be read; ``reason`` is one of :data:`REASONS`."""

    locator: str
    reason: str
    message: str
    raw_text: Optional[str] = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {self.reason!r}")


@dataclass
class Known:
    """A record whose (file hash, locator) is already stored: yielded instead of parsing it again on a re-run."""

    locator: str


def ionic_steps(count: int, all_steps: bool, skip: frozenset[str]) -> list[tuple[int, str, bool]]:
    """``(index, locator, already stored)`` of the steps a DFT reader yields: the last one, or all of them."""
    chosen = range(count) if all_steps else [count - 1]
    return [(i, f"ionic_step={i}", f"ionic_step={i}" in skip) for i in chosen]


def species_from_pymatgen(structure: Any) -> list[dict[str, float]]:
    """``[{symbol: occupancy}]`` per site of a pymatgen ``Structure`` (oxidation states dropped)."""
    out = []
    for site in structure:
        occ: dict[str, float] = {}
        for sp, amount in site.species.items():
            symbol = getattr(sp, "symbol", None) or str(sp)
            symbol = getattr(getattr(sp, "element", None), "symbol", symbol)
            occ[symbol] = occ.get(symbol, 0.0) + float(amount)
        out.append(occ)
    return out


def record_from_pymatgen(structure: Any, locator: str, **kwargs: Any) -> Record:
    """A :class:`Record` from a pymatgen ``Structure``."""
    import numpy as np

    return Record(locator=locator, cell=np.array(structure.lattice.matrix, dtype=float),
                  species=species_from_pymatgen(structure), frac_coords=np.array(structure.frac_coords, dtype=float),
                  **kwargs)


def record_from_ase(atoms: Any, locator: str, **kwargs: Any) -> Record:
    """A :class:`Record` from an ASE ``Atoms`` (all sites fully occupied)."""
    import numpy as np

    return Record(locator=locator, cell=np.array(atoms.cell[:], dtype=float),
                  species=[{s: 1.0} for s in atoms.get_chemical_symbols()],
                  frac_coords=np.array(atoms.get_scaled_positions(wrap=False), dtype=float), **kwargs)


def number_or_text(text: str) -> Any:
    """A property cell as a float when it is a finite plain number, else its stripped text; ``None`` when empty.

    ``nan``, ``inf`` and ``1_000`` stay text: stored as numbers they would vanish
    (SQLite keeps NaN as NULL) or pass range filters (``inf > 0``).
    """
    text = text.strip()
    if not text:
        return None
    if "_" not in text:
        try:
            value = float(text)
        except ValueError:
            return text
        if math.isfinite(value):
            return value
    return text
