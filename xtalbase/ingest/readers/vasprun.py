"""VASP ``vasprun.xml`` reader (pymatgen ``Vasprun``), plain or gzipped.

The final ionic step by default, every step with ``all_steps=True``; each step
is a record ``ionic_step=<i>`` (0-based) carrying a calculation: free energy
``e_fr_energy`` (eV, consistent with the forces; ``e_0_energy`` and
``e_wo_entrp`` are kept in ``parameters["energies"]``), forces (eV/Å), stress in
kBar as VASP prints it, INCAR, KPOINTS, POTCAR titles (never their contents),
VASP version and convergence. A file that ends early is ``truncated_file``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xtalbase.ingest.formats import open_text
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
        yield ReadError("file", "truncated_file", f"{path}: no completed ionic step")
        return
    params = _parameters(run)
    last = len(steps) - 1
    for i, locator, stored in ionic_steps(len(steps), all_steps, skip):
        if stored:
            yield Known(locator)
            continue
        step = steps[i]
        electronic = len(step.get("electronic_steps", [])) < int(run.parameters.get("NELM", 60))
        ionic = bool(run.converged_ionic) if i == last else None
        calc = Calculation(
            code="VASP", code_version=run.vasp_version, functional=run.run_type, ionic_step=i,
            energy=float(step["e_fr_energy"]), forces=np.array(step["forces"], dtype=float) if step.get("forces") is not None else None,
            stress=np.array(step["stress"], dtype=float) if step.get("stress") is not None else None, stress_unit="kBar",
            parameters={**params, "energies": {k: _float(step.get(k)) for k in ("e_0_energy", "e_wo_entrp", "e_fr_energy")}},
            electronic_converged=electronic, ionic_converged=ionic, converged=electronic and ionic is not False,
        )
        yield record_from_pymatgen(step["structure"], locator, calculation=calc)


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
