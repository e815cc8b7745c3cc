"""Extended XYZ reader (ASE): every frame is a record ``frame=<i>``.

Energy (eV), forces (eV/Å) and stress become a calculation; stress is kept as
ASE reads it (eV/Å³, Voigt order made 3x3), ``stress_unit="eV/Å^3"``.
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
        if not atoms.pbc.all() or atoms.cell.rank < 3:
            yield ReadError(locator, "missing_cell", f"{path} [{locator}]: frame has no periodic 3D cell (Lattice=...)")
            continue
        results = atoms.calc.results if atoms.calc is not None else {}
        calc = None
        if results:
            stress = results.get("stress")
            if stress is not None:
                stress = np.asarray(stress, dtype=float)
                stress = voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)
            calc = Calculation(code=str(atoms.info.get("code", "DFT")), energy=results.get("energy", results.get("free_energy")),
                               forces=results.get("forces"), stress=stress, stress_unit="eV/Å^3" if stress is not None else None,
                               parameters={k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))})
        yield record_from_ase(atoms, locator, calculation=calc)
