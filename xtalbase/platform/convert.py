"""Turn stored structure rows into numpy arrays, pymatgen ``Structure`` and ASE ``Atoms``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from xtalbase.schema.arrays import U1, unpack

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core import Structure as PmgStructure


class StructureArrays(NamedTuple):
    """A periodic structure as arrays: ``cell`` (3, 3) Å (rows are lattice vectors),
    ``numbers`` (n,) atomic numbers, ``frac_coords`` (n, 3)."""

    cell: np.ndarray
    numbers: np.ndarray
    frac_coords: np.ndarray


def row_arrays(row: Any) -> StructureArrays:
    """Decode the array columns of a ``structures`` row (ORM object or SQL row mapping)."""
    n = row.nsites
    return StructureArrays(
        unpack(row.cell, shape=(3, 3)),
        unpack(row.numbers, U1).astype(np.int64),
        unpack(row.frac_coords, shape=(n, 3)),
    )


def to_pymatgen(row: Any) -> "PmgStructure":
    """A pymatgen ``Structure`` for a stored row (disordered sites keep their occupancies)."""
    from pymatgen.core import Lattice, Structure

    cell, numbers, frac = row_arrays(row)
    occupancies = getattr(row, "site_occupancies", None)
    species: list = [dict(o) for o in occupancies] if occupancies else [int(z) for z in numbers]
    return Structure(Lattice(cell), species, frac, coords_are_cartesian=False)


def to_ase(row: Any) -> "Atoms":
    """An ASE ``Atoms`` (periodic) for a stored row."""
    from ase import Atoms

    cell, numbers, frac = row_arrays(row)
    return Atoms(numbers=numbers, scaled_positions=frac, cell=cell, pbc=True)
