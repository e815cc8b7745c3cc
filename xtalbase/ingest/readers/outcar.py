"""VASP ``OUTCAR`` reader (ASE's OUTCAR chunk parser), plain or compressed.

Final ionic step by default, every step with ``all_steps=True`` (records
``ionic_step=<i>``). Stress is converted back from ASE's eV/Å³ to kBar in VASP's
own sign and order, so OUTCAR and vasprun.xml data agree. Convergence comes
from VASP's own lines, per ionic step: ``aborting loop because EDIFF is reached``
(electronic; VASP 5 prints nothing when NELM stops the loop, VASP 6 prints ``EDIFF
was not reached``) and ``reached required accuracy`` (ionic, relaxations only; MD
runs have none). Steps computed by VASP's machine-learned force field are left
out and the DFT steps numbered as in vasprun.xml. A CONTCAR or POSCAR beside the
file is never read (ASE would, for constraints xtalbase does not store). An
OUTCAR without the closing ``General timing`` block is ``truncated_file``.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xtalbase.ingest.formats import Reader, has_all, open_text
from xtalbase.ingest.readers.vasp_run import ionic_converged, is_md, run_type
from xtalbase.ingest.records import Calculation, Known, ReadError, Record, ionic_steps, record_from_ase

_POTCAR = re.compile(r"^\s*POTCAR:\s+(.+?)\s*$", re.M)
_LEXCH = re.compile(r"^\s*LEXCH\s*=\s*([A-Za-z0-9]+)\s*$", re.M)
_ELECTRONIC_STEP = re.compile(r"Iteration\s+\d+\(\s*(\d+)\)")
INCAR_KEYS = ("ENCUT", "EDIFF", "EDIFFG", "ISMEAR", "SIGMA", "ISPIN", "IBRION", "NSW", "ISIF", "PREC", "GGA", "METAGGA",
              "NELM", "POTIM", "LREAL", "ALGO", "KSPACING", "LDAU", "LHFCALC", "AEXX", "HFSCREEN", "IVDW", "LUSE_VDW",
              "ML_LMLFF")
_INCAR = re.compile(r"^\s+(" + "|".join(INCAR_KEYS) + r")\s*=\s*([^\s;]+)", re.M)
#: The energy line of a step computed by the machine-learned force field (it also holds the DFT step marker).
_ML_STEP = "ML FREE ENERGIE OF THE ION-ELECTRON SYSTEM"


_IONS_PER_TYPE = re.compile(r"^\s*ions per type\s*=\s*(.*)$", re.M)
_NIONS = re.compile(r"NIONS\s*=\s*(\d+)")
_POSITION_HEADER = re.compile(r"^\s*POSITION\s+TOTAL-FORCE.*\n\s*-+\s*\n", re.M)


def count_problem(text: str) -> str:
    """Why the header's atom counts disagree with each other or with the first position block, or ``""``.

    Checked before ASE allocates by them: ``ions per type = 1000000000`` took 4 GB in seconds.
    """
    per_type = _IONS_PER_TYPE.search(text)
    nions = _NIONS.search(text)
    if per_type is None or nions is None:
        return ""  # ASE says what is missing
    try:
        counts = [int(x) for x in per_type.group(1).split()]
    except ValueError:
        return f"'ions per type' is not a list of whole numbers ({per_type.group(1).strip()[:60]!r})"
    total, declared = sum(counts), int(nions.group(1))
    if total != declared:
        return f"'ions per type' sums to {total} atoms but NIONS = {declared}"
    block = _POSITION_HEADER.search(text)
    if block is not None:
        rows, start = 0, block.end()
        while rows <= total:  # line by line from the block: an OUTCAR runs to gigabytes
            end = text.find("\n", start)
            line = text[start:end if end >= 0 else len(text)]
            if not line.strip() or set(line.strip()) == {"-"}:  # the closing rule, not a negative x
                break
            rows, start = rows + 1, end + 1
            if end < 0:
                break
        if rows != total:
            return f"the header counts {total} atoms (NIONS, 'ions per type') but the first POSITION block lists {rows}"
    return ""


def read(path: Path, *, all_steps: bool = False, skip: frozenset[str] = frozenset(), **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield the final (or every) DFT ionic step of an OUTCAR."""
    from ase.io.vasp_parsers.vasp_outcar_parsers import OutcarHeaderParser, outcarchunks
    from ase.units import GPa

    with open_text(path) as fh:
        text = fh.read()
    if "General timing and accounting" not in text:
        yield ReadError("file", "truncated_file", f"{path}: OUTCAR has no closing 'General timing and accounting' block "
                        f"(the run was killed or is still running)")
        return
    miscounted = count_problem(text)
    if miscounted:
        yield ReadError("file", "parse_error", f"{path}: {miscounted}")
        return
    stream = io.StringIO(text)
    stream.name = str(path)  # type: ignore[misc] - outcarchunks reads the name; workdir=None keeps it off CONTCAR/POSCAR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunks = [c for c in outcarchunks(stream, header_parser=OutcarHeaderParser(workdir=None))
                  if not any(_ML_STEP in line for line in c.lines[-6:])]
    if not chunks:
        yield ReadError("file", "parse_error", f"{path}: no DFT ionic step (every step was computed by VASP's "
                        f"machine-learned force field, or none finished)")
        return
    params = {k: _value(v) for k, v in _INCAR.findall(text)}
    if "LDA+U is selected" in text:
        params["LDAU"] = "T"
    version = text.split(None, 1)[0].removeprefix("vasp.") if text.strip() else None
    titles = _POTCAR.findall(text)
    half = len(titles) // 2  # the POTCAR lines are printed twice: once as a list, once before each POTCAR's details
    potcars = titles[:half] if titles and len(titles) % 2 == 0 and titles[:half] == titles[half:] else titles
    exchange = (_LEXCH.findall(text) or [None])[0]
    functional = run_type(params, exchange)
    nelm = int(params.get("NELM", 60))
    md = is_md(params.get("IBRION"), params.get("NSW"))
    last = len(chunks) - 1
    for i, locator, stored in ionic_steps(len(chunks), all_steps, skip):
        if stored:
            yield Known(locator)
            continue
        atoms = chunks[i].build()
        results = atoms.calc.results if atoms.calc is not None else {}
        stress = None
        if "stress" in results:
            xx, yy, zz, yz, xz, xy = -np.asarray(results["stress"]) / (0.1 * GPa)  # back to VASP kBar, VASP sign
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        e_conv = _electronic_converged("".join(chunks[i].lines), nelm, first=i == 0, verdicts="aborting loop" in text)
        ionic = None
        if i == last and not md:
            ionic = ionic_converged(params, len(chunks), vasp_says="reached required accuracy" in text)
        calc = Calculation(code="VASP", code_version=version, functional=functional, ionic_step=i,
                           energy=float(results["free_energy"]) if "free_energy" in results else _energy(results),
                           forces=np.asarray(results["forces"]) if "forces" in results else None,
                           stress=stress, stress_unit="kBar",
                           parameters={"incar": params, "potcar_titles": potcars, "source": "OUTCAR"},
                           electronic_converged=e_conv, ionic_converged=ionic,
                           converged=None if e_conv is None else bool(e_conv and ionic is not False))
        yield record_from_ase(atoms, locator, calculation=calc)


def _electronic_converged(step_text: str, nelm: int, first: bool, verdicts: bool) -> bool | None:
    """VASP's verdict on one ionic step's SCF loop.

    A step without one, in a file that has them, did not converge (VASP 5 says nothing
    when NELM ends the loop); in a file without any, a loop of NELM iterations did not.
    """
    if "aborting loop because EDIFF is reached" in step_text:
        return True
    if "aborting loop EDIFF was not reached" in step_text or verdicts:
        return False
    iterations = max((int(n) for n in _ELECTRONIC_STEP.findall(step_text)), default=1 if first else 0)
    return False if iterations >= nelm else None


def _energy(results: dict[str, Any]) -> float | None:
    return float(results["energy"]) if "energy" in results else None


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


READER = Reader("outcar", read, ("OUTCAR*", "*.OUTCAR", "*OUTCAR"), has_all("vasp."), "VASP OUTCAR",
                yields=frozenset({"structures", "calculations"}))
