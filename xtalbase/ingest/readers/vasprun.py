"""VASP ``vasprun.xml`` reader (pymatgen ``Vasprun``), plain or gzipped.

The final ionic step by default, every step with ``all_steps=True``; each step
is a record ``ionic_step=<i>`` (0-based) carrying a calculation: free energy
``e_fr_energy`` (eV, consistent with the forces; ``e_0_energy`` and
``e_wo_entrp`` are kept in ``parameters["energies"]``), forces (eV/Å), stress in
kBar as VASP prints it, INCAR, KPOINTS, POTCAR titles (never their contents),
VASP version and convergence. A file that ends early is ``truncated_file``.
Functional name and convergence rules are shared with the OUTCAR reader
(:mod:`xtalbase.ingest.readers.vasp_run`). ``e_0_energy`` carries pymatgen's
correction of the VASP 5 vasprun bug that writes it as 0 in ionic steps.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xtalbase.ingest.formats import Reader, has_all, open_text
from xtalbase.ingest.readers.vasp_run import ionic_converged, is_md, potcar_exchange, refine_pymatgen_run_type
from xtalbase.ingest.records import Calculation, Known, ReadError, Record, ionic_steps, record_from_pymatgen


def read(path: Path, *, all_steps: bool = False, skip: frozenset[str] = frozenset(), **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield the final (or every) ionic step of a vasprun.xml."""
    from pymatgen.io.vasp import Vasprun

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run = Vasprun(str(path), parse_dos=False, parse_eigen=False, parse_projected_eigen=False,
                          parse_potcar_file=False, exception_on_bad_xml=True)
        except Exception as exc:  # noqa: BLE001 - lxml/ElementTree/pymatgen errors
            yield _failure(path, exc)
            return
    steps = run.ionic_steps
    if not steps:
        if getattr(run, "md_data", None):
            yield ReadError("file", "parse_error", f"{path}: every ionic step was computed by VASP's machine-learned "
                            f"force field (ML_LMLFF), none by DFT: no DFT calculation to store")
        else:
            yield ReadError("file", "truncated_file", f"{path}: no completed ionic step")
        return
    params = _parameters(run)
    functional = refine_pymatgen_run_type(run.run_type, run.parameters, potcar_exchange(run.potcar_symbols))
    last = len(steps) - 1
    md = is_md(run.parameters.get("IBRION"), run.parameters.get("NSW"))
    for i, locator, stored in ionic_steps(len(steps), all_steps, skip):
        if stored:
            yield Known(locator)
            continue
        step = steps[i]
        forces = np.array(step["forces"], dtype=float) if step.get("forces") is not None else None
        electronic = _electronic_converged(run, step)
        ionic = None
        if i == last and not md:
            selective = step["structure"].site_properties.get("selective_dynamics") or \
                run.initial_structure.site_properties.get("selective_dynamics")
            ionic = ionic_converged(run.parameters, len(steps), final_forces=forces, free=selective)
        calc = Calculation(
            code="VASP", code_version=run.vasp_version, functional=functional, ionic_step=i,
            energy=float(step["e_fr_energy"]), forces=forces,
            stress=np.array(step["stress"], dtype=float) if step.get("stress") is not None else None, stress_unit="kBar",
            parameters={**params, "energies": _energies(step)},
            electronic_converged=electronic, ionic_converged=ionic, converged=electronic and ionic is not False,
        )
        yield record_from_pymatgen(step["structure"], locator, calculation=calc)


def _electronic_converged(run: Any, step: dict[str, Any]) -> bool:
    """pymatgen's ``converged_electronic`` rules, applied to any ionic step (pymatgen checks only the last)."""
    electronic = step.get("electronic_steps", [])
    nelm = int(run.parameters.get("NELM", 60))
    if run.incar.get("LEPSILON"):  # only the SCF part counts, not the linear-response steps that follow it
        plain = {"e_wo_entrp", "e_fr_energy", "e_0_energy"}
        scf = 1
        while scf < len(electronic) and set(electronic[scf]) == plain:
            scf += 1
        return scf + 1 != nelm  # pymatgen's test, as it is
    if str(run.incar.get("ALGO", "")).lower() == "exact" and nelm == 1:
        return True
    return len(electronic) < nelm


def _energies(step: dict[str, Any]) -> dict[str, float | None]:
    energies = {k: _float(step.get(k)) for k in ("e_0_energy", "e_wo_entrp", "e_fr_energy")}
    electronic = step.get("electronic_steps") or []
    if electronic and energies["e_0_energy"] is not None and energies["e_fr_energy"] is not None:
        last = electronic[-1]
        if "e_0_energy" in last and "e_fr_energy" in last:  # VASP 5 writes e_0_energy as 0 in ionic steps: pymatgen's fix
            fixed = round(float(last["e_0_energy"]) - float(last["e_fr_energy"]) + energies["e_fr_energy"], 8)
            if abs(fixed - energies["e_0_energy"]) > 1e-7:
                energies["e_0_energy"] = fixed
    return energies


def _failure(path: Path, exc: BaseException) -> ReadError:
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    with open_text(path) as fh:
        fh.seek(0)
        content = fh.read()
    if "</modeling>" not in content[-4096:] or "Premature end" in text or "no element found" in text:
        return ReadError("file", "truncated_file", f"{path}: vasprun.xml ends early (no closing </modeling>; the run was "
                         f"killed or is still running): {text}")
    return ReadError("file", "parse_error", f"{path}: cannot read vasprun.xml: {text}")


def _parameters(run: Any) -> dict[str, Any]:
    kpoints = None
    if run.kpoints is not None:
        kp = run.kpoints
        kpoints = {"style": str(kp.style), "kpts": np.asarray(kp.kpts).tolist(), "shift": np.asarray(kp.kpts_shift).tolist(),
                   "nkpoints": len(run.actual_kpoints or [])}
    return {"incar": _jsonable(dict(run.incar)), "kpoints": kpoints, "potcar_titles": list(run.potcar_symbols),
            "is_spin": bool(run.is_spin), "hubbards": _jsonable(dict(run.hubbards or {}))}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


READER = Reader("vasprun", read, ("vasprun*.xml*", "*.vasprun.xml"), has_all("<modeling>"), "VASP vasprun.xml",
                yields=frozenset({"structures", "calculations"}))
