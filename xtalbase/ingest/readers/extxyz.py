"""Extended XYZ reader (ASE): every frame is a record ``frame=<i>``.

Energy (eV), forces (eV/Å) and stress become a calculation; stress is kept as
ASE reads it (eV/Å³, Voigt order made 3x3), ``stress_unit="eV/Å^3"``. Besides
ASE's own names (``energy``, ``forces``, ``stress``), the spellings of common
MLIP data sets are read (case ignored): ``REF_energy``/``dft_energy``/
``total_energy``, ``REF_forces``/``dft_forces``/``force``, ``REF_stress``/
``dft_stress``, and ``virial`` (eV per cell; stored as stress = -virial / volume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from xtalbase.ingest.records import Calculation, Known, ReadError, Record, record_from_ase


def read(path: Path, *, skip: frozenset[str] = frozenset(), **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield one record per frame."""
    import ase.io
    from ase.stress import voigt_6_to_full_3x3_stress

    for i, atoms in enumerate(ase.io.iread(str(path), index=":", format="extxyz")):
        locator = f"frame={i}"
        if locator in skip:
            yield Known(locator)
            continue
        if atoms.cell.rank < 3:
            yield ReadError(locator, "missing_cell", f"{path} [{locator}]: frame has no periodic 3D cell (Lattice=...)")
            continue
        if not atoms.pbc.all():
            flags = " ".join("T" if p else "F" for p in atoms.pbc)
            yield ReadError(locator, "missing_cell", f"{path} [{locator}]: frame is not periodic along all three cell "
                                                     f"vectors (pbc=\"{flags}\"); only 3D-periodic crystals are stored")
            continue
        results, used = _results(atoms)
        calc = None
        if results:
            stress = results.get("stress")
            if stress is not None:
                stress = np.asarray(stress, dtype=float)
                stress = voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)
            calc = Calculation(code=str(atoms.info.get("code", "DFT")), energy=results.get("energy"),
                               forces=results.get("forces"), stress=stress, stress_unit="eV/Å^3" if stress is not None else None,
                               parameters={k: v for k, v in atoms.info.items()
                                           if isinstance(v, (str, int, float, bool)) and k not in used})
        yield record_from_ase(atoms, locator, calculation=calc)


ENERGY_KEYS = ("energy", "free_energy", "ref_energy", "dft_energy", "total_energy", "energy_dft", "ref_free_energy")
FORCE_KEYS = ("forces", "ref_forces", "dft_forces", "force", "forces_dft", "ref_force", "dft_force")
STRESS_KEYS = ("stress", "ref_stress", "dft_stress", "stress_dft")
VIRIAL_KEYS = ("virial", "ref_virial", "dft_virial", "virials")


def _results(atoms: object) -> tuple[dict[str, object], set[str]]:
    """Energy, forces and stress of a frame under ASE's names or common aliases, and the info keys they came from."""
    calc = getattr(atoms, "calc", None)
    found: dict[str, object] = {}
    if calc is not None:
        results = calc.results
        for name in ("energy", "free_energy"):
            if results.get(name) is not None:
                found["energy"] = results[name]
                break
        for name in ("forces", "stress"):
            if results.get(name) is not None:
                found[name] = results[name]
    info = {k.lower(): (k, v) for k, v in atoms.info.items()}  # type: ignore[attr-defined]
    arrays = {k.lower(): v for k, v in atoms.arrays.items()}  # type: ignore[attr-defined]
    used: set[str] = set()

    def first(keys: tuple[str, ...], table: dict) -> object:
        for key in keys:
            if key in table:
                return table[key]
        return None

    if "energy" not in found and (hit := first(ENERGY_KEYS, info)) is not None:
        used.add(hit[0])
        found["energy"] = float(hit[1])
    if "forces" not in found and (forces := first(FORCE_KEYS, arrays)) is not None:
        found["forces"] = np.asarray(forces, dtype=float)
    if "stress" not in found:
        if (hit := first(STRESS_KEYS, info)) is not None:
            used.add(hit[0])
            found["stress"] = np.asarray(hit[1], dtype=float)
        elif (hit := first(VIRIAL_KEYS, info)) is not None:
            used.add(hit[0])
            virial = np.asarray(hit[1], dtype=float)
            virial = virial.reshape(3, 3) if virial.size == 9 else virial
            found["stress"] = -virial / atoms.get_volume()  # type: ignore[attr-defined]
    return found, used
