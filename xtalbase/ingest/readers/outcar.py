"""VASP ``OUTCAR`` reader (ASE ``vasp-out``), plain or gzipped.

Final ionic step by default, every step with ``all_steps=True`` (records
``ionic_step=<i>``). Stress is converted back from ASE's eV/Å³ to kBar in VASP's
own sign and order, so OUTCAR and vasprun.xml data agree. Convergence comes
from VASP's own lines: ``aborting loop because EDIFF is reached`` (electronic)
and ``reached required accuracy`` (ionic, relaxations only; MD runs have none).
An OUTCAR without the closing ``General timing`` block is ``truncated_file``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xtalbase.ingest.formats import open_text
from xtalbase.ingest.records import Calculation, Known, ReadError, Record, ionic_steps, record_from_ase

_ABORT = re.compile(r"aborting loop (because EDIFF is reached|EDIFF was not reached)")
_POTCAR = re.compile(r"^\s*POTCAR:\s+(.+?)\s*$", re.M)
INCAR_KEYS = ("ENCUT", "EDIFF", "EDIFFG", "ISMEAR", "SIGMA", "ISPIN", "IBRION", "NSW", "ISIF", "PREC", "GGA", "METAGGA",
              "NELM", "POTIM", "LREAL", "ALGO", "KSPACING", "LDAU")
_INCAR = re.compile(r"^\s+(" + "|".join(INCAR_KEYS) + r")\s*=\s*([^\s;]+)", re.M)


def read(path: Path, *, all_steps: bool = False, skip: frozenset[str] = frozenset(), **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield the final (or every) ionic step of an OUTCAR."""
    import ase.io
    from ase.units import GPa

    with open_text(path) as fh:
        text = fh.read()
    if "General timing and accounting" not in text:
        yield ReadError("file", "truncated_file", f"{path}: OUTCAR has no closing 'General timing and accounting' block "
                        f"(the run was killed or is still running)")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = ase.io.read(str(path), index=":", format="vasp-out")
    params = {k: _value(v) for k, v in _INCAR.findall(text)}
    version = text.split(None, 1)[0].removeprefix("vasp.") if text.strip() else None
    potcars = list(dict.fromkeys(_POTCAR.findall(text)))
    electronic = [m == "because EDIFF is reached" for m in _ABORT.findall(text)]
    ibrion = params.get("IBRION", -1)
    nsw = params.get("NSW", 0)
    relaxation = ibrion in (1, 2, 3) and nsw not in (0, 1)
    molecular_dynamics = ibrion == 0 and nsw not in (0, 1)  # MD has no ionic convergence
    last = len(frames) - 1
    for i, locator, stored in ionic_steps(len(frames), all_steps, skip):
        if stored:
            yield Known(locator)
            continue
        atoms = frames[i]
        results = atoms.calc.results if atoms.calc is not None else {}
        stress = None
        if "stress" in results:
            xx, yy, zz, yz, xz, xy = -np.asarray(results["stress"]) / (0.1 * GPa)  # back to VASP kBar, VASP sign
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        e_conv = electronic[i] if len(electronic) == len(frames) else None
        ionic = None
        if i == last and not molecular_dynamics:
            ionic = "reached required accuracy" in text if relaxation else True
        calc = Calculation(code="VASP", code_version=version, functional=_functional(params), ionic_step=i,
                           energy=float(results["free_energy"]) if "free_energy" in results else _energy(results),
                           forces=np.asarray(results["forces"]) if "forces" in results else None,
                           stress=stress, stress_unit="kBar",
                           parameters={"incar": params, "potcar_titles": potcars, "source": "OUTCAR"},
                           electronic_converged=e_conv, ionic_converged=ionic,
                           converged=None if e_conv is None else bool(e_conv and ionic is not False))
        yield record_from_ase(atoms, locator, calculation=calc)


def _energy(results: dict[str, Any]) -> float | None:
    return float(results["energy"]) if "energy" in results else None


def _functional(params: dict[str, Any]) -> str | None:
    if str(params.get("METAGGA", "F")).upper() not in ("--", "NONE", "F", "FALSE", ".FALSE."):
        return str(params["METAGGA"])
    gga = params.get("GGA")
    return {"PE": "PBE", "--": "PBE", "PS": "PBEsol", "91": "PW91"}.get(str(gga), str(gga) if gga else None)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text
