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


# --------------------------------------------------------------------------- batch decoding


class StructureBatch(NamedTuple):
    """Many structures decoded at once: ``cells`` (m, 3, 3) Å, ``numbers`` (N,), ``frac_coords`` (N, 3),
    ``offsets`` (m + 1,) so structure ``i`` owns sites ``offsets[i]:offsets[i + 1]`` (N = total sites)."""

    cells: np.ndarray
    numbers: np.ndarray
    frac_coords: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.cells)

    def cartesian(self) -> np.ndarray:
        """Cartesian positions (N, 3) in Å of every site, computed in one vectorised product."""
        counts = np.diff(self.offsets)
        return np.einsum("ij,ijk->ik", self.frac_coords, np.repeat(self.cells, counts, axis=0))


def decode_batch(nsites: list[int], cells: list[bytes], numbers: list[bytes], frac_coords: list[bytes]) -> StructureBatch:
    """Decode the array columns of many ``structures`` rows with one ``frombuffer`` per column.

    Joining the blobs first and decoding once is what makes loading thousands
    of structures fast; per-row ``frombuffer`` calls cost more than the data.
    """
    counts = np.asarray(nsites, dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    cell_arr = np.frombuffer(b"".join(cells), dtype="<f8").reshape(-1, 3, 3)
    num_arr = np.frombuffer(b"".join(numbers), dtype=U1).astype(np.int64)
    frac_arr = np.frombuffer(b"".join(frac_coords), dtype="<f8").reshape(-1, 3).copy()
    if len(cell_arr) != len(counts) or len(num_arr) != offsets[-1] or len(frac_arr) != offsets[-1]:
        raise ValueError("stored arrays do not match nsites: the structures rows are inconsistent")
    return StructureBatch(cell_arr, num_arr, frac_arr, offsets)


def _atoms_factory() -> Any:
    """A constructor of periodic ``Atoms`` from (numbers, positions, cell, info).

    ``Atoms.__init__`` validates and fills default arrays one call at a time,
    which dominates loading many small structures; when this ASE's ``Atoms``
    holds exactly the attributes a plain periodic ``Atoms`` has, those are set
    directly and the result compares equal to the constructor's. Otherwise the
    constructor is used.
    """
    from ase import Atoms
    from ase.cell import Cell

    probe = Atoms(numbers=[1], positions=[[0.0, 0.0, 0.0]], cell=np.eye(3), pbc=True)
    if set(probe.__dict__) != {"_cellobj", "_pbc", "arrays", "_celldisp", "_constraints", "info", "_calc"} or set(probe.arrays) != {"numbers", "positions"}:
        return lambda numbers, positions, cell, info: Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True, info=info)

    pbc, celldisp, new = probe._pbc, probe._celldisp, Atoms.__new__

    def make(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, info: dict) -> "Atoms":
        atoms = new(Atoms)
        atoms.__dict__ = {"_cellobj": Cell(cell), "_pbc": pbc.copy(), "arrays": {"numbers": numbers, "positions": positions},
                          "_celldisp": celldisp.copy(), "_constraints": [], "info": info, "_calc": None}
        return atoms

    return make


def batch_to_ase(batch: StructureBatch, ids: list[int] | None = None) -> list["Atoms"]:
    """Periodic ASE ``Atoms`` for every structure of ``batch`` (positions in Å).

    Each ``Atoms`` owns a disjoint slice of the batch's arrays (no copy per
    structure); ``ids`` go to ``info`` (see :func:`identity_info`).
    """
    make = _atoms_factory()
    positions, numbers, cells = batch.cartesian(), batch.numbers, batch.cells.copy()
    o = batch.offsets.tolist()
    ids = ids if ids is not None else [None] * len(batch)
    return [make(numbers[o[i]:o[i + 1]], positions[o[i]:o[i + 1]], cells[i], identity_info(ids[i]) if ids[i] is not None else {})
            for i in range(len(batch))]


def batch_to_pymatgen(batch: StructureBatch, occupancies: list[Any] | None = None) -> list["PmgStructure"]:
    """pymatgen ``Structure`` objects for ``batch``; ``occupancies[i]`` (per-site dicts) for disordered ones."""
    from pymatgen.core import Lattice, Structure

    o, out = batch.offsets, []
    for i in range(len(batch)):
        occ = occupancies[i] if occupancies else None
        species: list = [dict(x) for x in occ] if occ else batch.numbers[o[i]:o[i + 1]].tolist()
        out.append(Structure(Lattice(batch.cells[i]), species, batch.frac_coords[o[i]:o[i + 1]], coords_are_cartesian=False))
    return out


#: Stored stress unit (normalised by :func:`_unit_key`) -> factor to ASE's eV/Å³, positive under tension.
#: VASP writes kBar with the opposite sign (positive = compressive), so its factor is negative, as in ASE's
#: own VASP readers; 1 kBar = 0.1 GPa. GPa is taken in ASE's sign convention.
STRESS_TO_ASE: dict[str, float] = {
    "ev/a^3": 1.0, "ev/a3": 1.0,
    "kbar": -0.1, "kb": -0.1,
    "gpa": 1.0,
}
#: Units of :data:`STRESS_TO_ASE` whose factor is in GPa (multiplied by ``ase.units.GPa``).
_PRESSURE_UNITS = frozenset({"kbar", "kb", "gpa"})

#: ``Atoms.info`` key of the structure id, set by every conversion of stored structures.
ID_KEY = "structure_id"
#: The key ``Query.atoms()`` used first; still set so existing code reading it keeps working.
LEGACY_ID_KEY = "xtalbase_id"


def _unit_key(unit: str | None) -> str:
    return (unit or "").strip().lower().replace("å", "a").replace("³", "^3").replace("ang", "a")


def stress_factor(unit: str | None) -> float | None:
    """Factor from a stored stress unit to ASE's convention (eV/Å³, positive under tension); ``None`` if unknown.

    Known units: eV/Å³ (any spelling: ``eV/Å^3``, ``eV/A^3``, ``eV/Ang^3``), kBar (VASP sign, flipped) and GPa.
    """
    key = _unit_key(unit)
    factor = STRESS_TO_ASE.get(key)
    if factor is None or key not in _PRESSURE_UNITS:
        return factor
    from ase.units import GPa

    return factor * GPa


def identity_info(structure_id: int) -> dict[str, int]:
    """The ``Atoms.info`` entries naming a stored structure (:data:`ID_KEY` and :data:`LEGACY_ID_KEY`)."""
    return {ID_KEY: structure_id, LEGACY_ID_KEY: structure_id}


def attach_calculation(atoms: "Atoms", energy: float | None, forces: bytes | None, stress: bytes | None,
                       stress_unit: str | None, calculation_id: int | None = None) -> None:
    """Attach a DFT result through a ``SinglePointCalculator``.

    ``energy`` eV per cell, ``forces`` (nsites, 3) eV/Å bytes, ``stress`` (3, 3)
    bytes in ``stress_unit``. Stress in a unit :func:`stress_factor` does not know
    is not converted by guess: its numbers go to ``atoms.info["stress_as_given"]``
    and the unit to ``atoms.info["stress_unit"]``. ``calculation_id`` goes to
    ``atoms.info["calculation_id"]``.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    results: dict[str, Any] = {}
    if energy is not None:
        results["energy"] = float(energy)
    if forces is not None:
        results["forces"] = unpack(forces, shape=(len(atoms), 3)).copy()
    if stress is not None:
        values = unpack(stress, shape=(3, 3))
        factor = stress_factor(stress_unit)
        if factor is None:
            atoms.info["stress_as_given"] = " ".join(repr(float(x)) for x in values.ravel())
            atoms.info["stress_unit"] = stress_unit or "unknown"
        else:
            results["stress"] = values * factor
    if calculation_id is not None:
        atoms.info["calculation_id"] = calculation_id
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
