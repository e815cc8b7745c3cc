"""DFT configurations for training and evaluating potentials: one stored structure with one chosen calculation.

Units
-----
Positions and cell in Å, energy in eV per cell, forces in eV/Å, stress in eV/Å³ in ASE's sign convention
(positive under tension). The stored stress is converted by :func:`xtalbase.platform.convert.stress_factor`:

* ``kBar`` (or ``kB``), written by the vasprun, OUTCAR and SNAP/mlearn JSON readers, has VASP's sign
  (positive under compression, as OUTCAR's ``in kB`` line), so σ_ASE = −value / 1602.1766208;
* ``eV/Å^3`` (the extxyz reader, through ASE) is kept as it is;
* ``GPa`` is taken in ASE's sign convention (no reader writes it today).

``tests/mlip/test_configurations.py`` checks both signs on real data. Energy must be in eV and forces
in eV/Å (``eV/Å``, ``eV/A``, ``eV/Angstrom``). Any other unit, and any non-finite force or stress, raises
:class:`~xtalbase.errors.XtalbaseError` naming the structure, the calculation and the unit or value:
nothing is converted by guess.

Which calculation
-----------------
A structure can carry several calculations (ionic steps, reruns, one configuration in two files).
:func:`choose_calculation` takes one per structure:

1. candidates are the calculations with a finite energy (with ``require_forces``, only those that also
   carry forces). With ``require_energy=False`` the calculations without a finite energy are candidates
   too, ranked last, and a structure with no calculation gives a configuration without labels;
2. among the candidates, those carrying forces win;
3. then those not marked unconverged (``converged is not False``: unknown counts as converged);
4. then the newest (highest id).

``Query.atoms()`` uses another rule (:func:`xtalbase.platform.repositories.structures.choose_calculations`,
which ignores energy and forces): a potential needs labels, a structure browser does not.

Configurations come back ordered by the structures' exact hash, so a training set is the same list on
every backend and whatever the insertion order was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from xtalbase.errors import NotFound, XtalbaseError

if TYPE_CHECKING:
    from ase import Atoms
    from sqlalchemy.orm import Session

    from xtalbase.platform.database import Database

#: Stored energy and force units accepted, lower-cased without spaces (the readers write ``eV`` and ``eV/Å``).
ENERGY_UNITS = frozenset({"ev"})
FORCE_UNITS = frozenset({"ev/å", "ev/a", "ev/ang", "ev/angstrom"})

#: How many ids an error message names.
_SHOWN = 5


@dataclass(frozen=True, eq=False)
class Configuration:
    """One structure and the labels of its chosen calculation.

    ``numbers`` (N,) int64 atomic numbers; ``positions`` (N, 3) Cartesian Å; ``cell`` (3, 3) Å, lattice
    vectors as rows; ``pbc`` all True (stored structures are periodic); ``energy`` eV per cell;
    ``forces`` (N, 3) eV/Å; ``stress`` (3, 3) eV/Å³, ASE sign (positive under tension); the labels are
    None when absent. ``group`` is the calculation's ``parameters["group"]`` (mlearn/SNAP JSON), and
    ``source_file`` the path of the file it was read from. Arrays are read-only. Compared by identity
    (``eq=False``): arrays have no single truth value.
    """

    structure_id: int
    calculation_id: int | None
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool]
    energy: float | None
    forces: np.ndarray | None
    stress: np.ndarray | None
    group: str | None
    source_file: str | None
    exact_hash: str

    @property
    def n_atoms(self) -> int:
        """Number of atoms N."""
        return len(self.numbers)

    @property
    def energy_per_atom(self) -> float | None:
        """Energy per atom in eV, None without an energy."""
        return None if self.energy is None else self.energy / self.n_atoms

    @cached_property
    def labels_hash(self) -> str:
        """:func:`xtalbase.platform.hashing.labels_hash` of the converted energy, forces and stress."""
        from xtalbase.platform.hashing import labels_hash
        from xtalbase.schema.arrays import pack

        return labels_hash(self.energy, None if self.forces is None else pack(self.forces),
                           None if self.stress is None else pack(self.stress))

    def to_ase(self) -> "Atoms":
        """An ``ase.Atoms`` with a ``SinglePointCalculator`` holding the labels present.

        ``info`` holds ``structure_id`` (and the older ``xtalbase_id``), ``calculation_id``, ``group`` and
        ``source_file`` when known.
        """
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.stress import full_3x3_to_voigt_6_stress

        from xtalbase.platform.convert import identity_info

        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc,
                      info=identity_info(self.structure_id))
        extra = {"calculation_id": self.calculation_id, "group": self.group, "source_file": self.source_file}
        atoms.info.update({k: v for k, v in extra.items() if v is not None})
        results: dict[str, Any] = {}
        if self.energy is not None:
            results["energy"] = self.energy
        if self.forces is not None:
            results["forces"] = np.array(self.forces)
        if self.stress is not None:  # Voigt, as ASE's get_stress() returns it (a 3x3 would warn)
            results["stress"] = full_3x3_to_voigt_6_stress(self.stress)
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms


class Configurations(list):
    """The :class:`Configuration` list :func:`load_configurations` returns, with ``skipped_ids``: the structure
    ids left out for want of a usable calculation (only with ``skip_missing=True``; else empty), ascending."""

    def __init__(self, items: Iterable[Configuration] = (), skipped_ids: Iterable[int] = ()) -> None:
        super().__init__(items)
        self.skipped_ids: list[int] = sorted(skipped_ids)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def choose_calculation(calculations: Iterable[Any], *, require_energy: bool = True,
                       require_forces: bool = False) -> Any | None:
    """The calculation the module's rule picks among one structure's, or None when none qualifies.

    ``calculations`` are rows or objects with ``id``, ``energy``, ``forces`` and ``converged``.
    """
    candidates = [c for c in calculations
                  if (_finite(c.energy) or not require_energy) and (c.forces is not None or not require_forces)]
    if not candidates:
        return None
    return max(candidates, key=lambda c: (_finite(c.energy), c.forces is not None, c.converged is not False, c.id))


def load_configurations(session: "Session", structure_ids: Sequence[int], *, require_energy: bool = True,
                        require_forces: bool = False, what: str = "structures",
                        skip_missing: bool = False) -> Configurations:
    """The configurations of ``structure_ids``, one chosen calculation each, ordered by exact hash.

    Raises :class:`NotFound` naming ids that are no stored structure, and :class:`XtalbaseError` naming how
    many of the ``what`` (e.g. "structures of fold 'train' of split 'mo'") and the first ids that have no
    usable calculation, unless ``skip_missing``: then those are left out and listed in ``skipped_ids``.
    """
    from xtalbase.platform.convert import decode_batch
    from xtalbase.platform.repositories.calculations import structures_with_calculations

    rows, calculations = structures_with_calculations(session, structure_ids)
    absent = sorted({int(i) for i in structure_ids} - {r.id for r in rows})
    if absent:
        raise NotFound(f"{len(absent)} of the requested {what} are not stored (e.g. {_ids(absent, 'structure')})")
    chosen = {r.id: choose_calculation(calculations.get(r.id, ()), require_energy=require_energy,
                                       require_forces=require_forces) for r in rows}
    if require_energy or require_forces:
        missing = sorted(i for i, c in chosen.items() if c is None)
        if missing and not skip_missing:
            raise XtalbaseError(f"{len(missing)} of {len(rows)} {what} have no calculation with "
                                f"{_needs(require_energy, require_forces)} (e.g. {_ids(missing, 'structure')}): "
                                "ingest their DFT results, or pass skip_missing=True to leave them out")
        rows = [r for r in rows if chosen[r.id] is not None]
    else:
        missing = []
    batch = decode_batch([r.nsites for r in rows], [r.cell for r in rows], [r.numbers for r in rows],
                         [r.frac_coords for r in rows])
    positions, offsets = batch.cartesian(), batch.offsets.tolist()
    for array in (positions, batch.numbers, batch.cells):
        array.setflags(write=False)  # every configuration holds views of these
    out = [_configuration(r, chosen[r.id], batch.numbers[offsets[i]:offsets[i + 1]],
                          positions[offsets[i]:offsets[i + 1]], batch.cells[i]) for i, r in enumerate(rows)]
    return Configurations(out, missing)


def training_set_hash(configs: Iterable[Configuration]) -> str:
    """The identity of a labelled set: :func:`xtalbase.platform.hashing.labelled_set_hash` over the
    ``(exact_hash, labels_hash)`` of each configuration, in any order. Other chosen calculations (other labels)
    on the same structures give another hash."""
    from xtalbase.platform.hashing import labelled_set_hash

    return labelled_set_hash((c.exact_hash, c.labels_hash) for c in configs)


def select_structure_ids(db: "Database", *, split: str | None = None, fold: str = "train", dataset: str | None = None,
                         filter: str | None = None) -> tuple[list[int], dict[str, Any]]:
    """Structure ids (ascending) of fold ``fold`` of ``split``, of ``dataset``, or matching the OPTIMADE ``filter``.

    Exactly one of ``split``, ``dataset`` and ``filter``. The dict describes the selection for a run record:
    ``split``, ``split_hash`` and ``fold``; or ``dataset`` and ``dataset_hash``; or ``filter``; always
    ``count`` and ``what`` (words for :func:`load_configurations` messages). ``fold`` is ignored for a dataset.
    """
    given = [name for name, value in (("split", split), ("dataset", dataset), ("filter", filter)) if value is not None]
    if len(given) != 1:
        raise XtalbaseError(f"give exactly one of split, dataset or filter (got {', '.join(given) or 'none'})")
    if filter is not None:
        ids = db.query(filter).ids()
        info: dict[str, Any] = {"filter": filter, "what": f"structures matching {filter!r}"}
    else:
        # imported here: ml's modules pull in the feature and target code, which loading data does not need
        from xtalbase.ml.xrd_inputs import dataset_ids, get_dataset, get_split, split_fold_ids

        with db.session() as s:
            if split is not None:
                row = get_split(s, split)
                folds = list((row.recipe or {}).get("folds") or row.counts or {})
                if fold not in folds:  # a misspelt fold would otherwise select nothing, silently
                    raise NotFound(f"split {row.name!r} has no fold {fold!r}; its folds are {', '.join(folds)}")
                ids = split_fold_ids(s, row, fold)
                info = {"split": row.name, "split_hash": row.hash, "fold": fold,
                        "what": f"structures of fold {fold!r} of split {row.name!r}"}
            else:
                row = get_dataset(s, dataset)
                ids = dataset_ids(s, row)
                info = {"dataset": row.name, "dataset_hash": row.hash, "what": f"structures of dataset {row.name!r}"}
    ids = sorted(set(int(i) for i in ids))
    info["count"] = len(ids)
    return ids, info


def calculation_sources(session: "Session", calculation_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Where each calculation was read from, by calculation id: ``calculation_id``, ``structure_id``,
    ``source_id``, ``file_path``, ``sha256`` (of the file, as ingest read it), ``record_locator``,
    ``database`` and ``format`` (the source keys None when it was stored without a source record).

    Raises :class:`NotFound` naming ids that are no stored calculation.
    """
    from xtalbase.platform.repositories.calculations import sources_of_calculations

    rows = sources_of_calculations(session, calculation_ids)
    absent = sorted({int(i) for i in calculation_ids} - {r["calculation_id"] for r in rows})
    if absent:
        raise NotFound(f"{len(absent)} calculation ids are not stored (e.g. {_ids(absent, 'calculation')})")
    return [{"calculation_id": r["calculation_id"], "structure_id": r["structure_id"], "source_id": r["source_id"],
             "file_path": r["file_path"], "sha256": r["file_hash"], "record_locator": r["record_locator"],
             "database": r["database"], "format": r["format"]} for r in rows]


# --------------------------------------------------------------------------- one configuration


def _configuration(row: Any, calc: Any | None, numbers: np.ndarray, positions: np.ndarray,
                   cell: np.ndarray) -> Configuration:
    """The configuration of a structure row and its chosen calculation row (None: no labels), units checked."""
    energy = forces = stress = None
    group = source_file = None
    if calc is not None:
        where = f"structure {row.id}, calculation {calc.id}" + (f" (from {calc.source_file})" if calc.source_file else "")
        if calc.energy is not None:
            _check_unit(calc.energy_unit, ENERGY_UNITS, "energy", where)
            energy = float(calc.energy)
            if not math.isfinite(energy):  # only reachable with require_energy=False
                raise XtalbaseError(f"{where}: energy is {energy!r}")
        if calc.forces is not None:
            _check_unit(calc.forces_unit, FORCE_UNITS, "forces", where)
            forces = _array(calc.forces, (row.nsites, 3), "forces", where)
        if calc.stress is not None:
            stress = _array(calc.stress, (3, 3), "stress", where) * _stress_factor(calc.stress_unit, where)
            stress.setflags(write=False)
        parameters = calc.parameters if isinstance(calc.parameters, dict) else {}
        group = None if parameters.get("group") is None else str(parameters["group"])
        source_file = calc.source_file
    return Configuration(row.id, None if calc is None else calc.id, numbers, positions, cell, (True, True, True),
                         energy, forces, stress, group, source_file, row.exact_hash)


def _unit_key(unit: str | None) -> str:
    return (unit or "").strip().lower().replace(" ", "")


def _check_unit(unit: str | None, accepted: frozenset[str], label: str, where: str) -> None:
    if _unit_key(unit) not in accepted:
        raise XtalbaseError(f"{where}: {label} in unit {unit!r}, which is not converted (expected one of "
                            f"{', '.join(sorted(accepted))})")


def _stress_factor(unit: str | None, where: str) -> float:
    from xtalbase.platform.convert import stress_factor

    factor = stress_factor(unit)
    if factor is None:
        raise XtalbaseError(f"{where}: stress in unit {unit!r}, which is not converted (known: eV/Å^3, kBar, GPa)")
    return factor


def _array(blob: bytes, shape: tuple[int, int], label: str, where: str) -> np.ndarray:
    """A stored float64 array decoded to ``shape`` (read-only); an error naming the record when it does not fit
    or holds a non-finite value."""
    from xtalbase.schema.arrays import unpack

    values = unpack(blob)
    if values.size != shape[0] * shape[1]:
        raise XtalbaseError(f"{where}: {label} hold {values.size} values, expected {shape[0]} x {shape[1]}")
    if not np.isfinite(values).all():
        raise XtalbaseError(f"{where}: {label} hold a non-finite value ({float(values[~np.isfinite(values)][0])!r})")
    return values.reshape(shape)


def _needs(require_energy: bool, require_forces: bool) -> str:
    return " and ".join(n for n, on in (("a finite energy", require_energy), ("forces", require_forces)) if on)


def _ids(ids: Sequence[int], noun: str) -> str:
    """``structure 4`` or ``structures 4, 7, ...``: the first ids of a list for a message."""
    shown = ", ".join(map(str, ids[:_SHOWN])) + (", ..." if len(ids) > _SHOWN else "")
    return f"{noun}{'s' if len(ids) > 1 else ''} {shown}"


__all__ = ["ENERGY_UNITS", "FORCE_UNITS", "Configuration", "Configurations", "calculation_sources", "choose_calculation",
           "load_configurations", "select_structure_ids", "training_set_hash"]
