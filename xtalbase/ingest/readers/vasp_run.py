"""What a VASP run was and whether it finished: rules shared by the vasprun.xml and OUTCAR readers.

Both readers must give the same answer for the same run, so the functional name
and the convergence rules live here, fed with what each file offers.

* Functional: pymatgen's ``Vasprun.run_type`` naming (``GGA`` is PBE as the
  Materials Project names it, ``GGA+U``, ``R2SCAN``, ``HSE06``...), except that
  ``GGA = --`` (the functional of the POTCARs) is resolved from the POTCARs'
  exchange type: LDA POTCARs give ``LDA``, not ``GGA``.
* Ionic convergence of a relaxation: VASP stops early either because the
  criterion was met or because it was told to (STOPCAR, a wall-time handler), and
  the count of steps alone cannot tell those apart. OUTCAR has VASP's own verdict
  ("reached required accuracy"); from a vasprun.xml a force criterion (EDIFFG < 0)
  is checked on the final forces, every atom's free force below ``|EDIFFG|``. An
  energy criterion (EDIFFG > 0) is applied by VASP inside its line minimisation and
  cannot be re-checked from the steps: there, stopping before NSW counts as converged.
  MD (``IBRION = 0``) has no ionic convergence (``None``).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

#: pymatgen's names of the GGA tag values (``Vasprun.run_type``).
GGA_NAMES = {"RE": "revPBE", "PE": "PBE", "PS": "PBEsol", "RP": "revPBE+Padé", "AM": "AM05", "OR": "optPBE",
             "BO": "optB88", "MK": "optB86b", "91": "PW91"}
METAGGA_NAMES = {"TPSS": "TPSS", "RTPSS": "revTPSS", "M06L": "M06-L", "MBJ": "modified Becke-Johnson", "SCAN": "SCAN",
                 "R2SCAN": "R2SCAN", "RSCAN": "RSCAN", "MS0": "MadeSimple0", "MS1": "MadeSimple1", "MS2": "MadeSimple2"}
IVDW_NAMES = {1: "DFT-D2", 10: "DFT-D2", 11: "DFT-D3", 12: "DFT-D3-BJ", 2: "TS", 20: "TS", 21: "TS-H", 202: "MBD",
              4: "dDsC"}
#: Functional of ``GGA = --`` by the POTCARs' exchange type (OUTCAR ``LEXCH = CA``; vasprun POTCAR title family).
POTCAR_EXCHANGE_NAMES = {"PE": "GGA", "CA": "LDA", "91": "PW91", "PS": "PBEsol"}
RELAXATION_IBRION = (1, 2, 3)


def potcar_exchange(titles: Sequence[str]) -> Optional[str]:
    """The POTCARs' exchange type from their titles (``PAW_PBE Fe 06Sep2000`` -> ``PE``, ``PAW Ni 02Aug2007`` -> ``CA``)."""
    if not titles:
        return None
    family = titles[0].split()[0].upper() if titles[0].split() else ""
    if family.startswith(("PAW_PBE", "US_PBE")):
        return "PE"
    if family.startswith(("PAW_GGA", "US_GGA")):
        return "91"
    if family in ("PAW", "US", "PAW_LDA", "US_LDA"):
        return "CA"
    return None


def _false(value: Any) -> bool:
    return value is None or str(value).strip().strip(".").upper() in ("F", "FALSE", "--", "NONE", "0", "")


def run_type(params: dict[str, Any], exchange: Optional[str]) -> str:
    """pymatgen-style functional name from VASP parameters (values as VASP prints them) and the POTCAR exchange type."""
    if not _false(params.get("LHFCALC")):
        aexx, screen = float(params.get("AEXX", 0.25)), float(params.get("HFSCREEN", 0.0))
        if math.isclose(aexx, 1.0):
            name = "HF"
        elif math.isclose(screen, 0.3):
            name = "HSE03"
        elif 0.2 <= screen <= 0.21:
            name = "HSE06"
        elif math.isclose(aexx, 0.2):
            name = "B3LYP"
        else:
            name = "PBEO or other Hybrid Functional"
    elif not _false(params.get("METAGGA")):
        tag = str(params["METAGGA"]).upper()
        name = METAGGA_NAMES.get(tag, tag)
    elif str(params.get("GGA", "--")).strip() not in ("--", ""):
        tag = str(params["GGA"]).upper()
        name = GGA_NAMES.get(tag, tag)
    else:
        name = POTCAR_EXCHANGE_NAMES.get(exchange or "PE", "GGA")
    if not _false(params.get("LDAU")):
        name += "+U"
    if not _false(params.get("LUSE_VDW")):
        name += "+rVV10"
    elif params.get("IVDW") not in (None, 0, "0"):
        name += f"+vdW-{IVDW_NAMES.get(int(params['IVDW']), 'unknown')}"
    return name


def refine_pymatgen_run_type(name: str, params: dict[str, Any], exchange: Optional[str]) -> str:
    """pymatgen's ``run_type`` with ``GGA = --`` resolved from the POTCARs (pymatgen calls an LDA run ``GGA``)."""
    if name.startswith("GGA") and str(params.get("GGA", "--")).strip() in ("--", ""):
        return POTCAR_EXCHANGE_NAMES.get(exchange or "PE", "GGA") + name[3:]
    return name


def is_md(ibrion: Any, nsw: Any) -> bool:
    """Molecular dynamics: ``IBRION = 0`` with more than one step."""
    return _int(ibrion, -1) == 0 and _int(nsw, 0) > 1


def ionic_converged(params: dict[str, Any], n_steps: int, *, final_forces: Optional[np.ndarray] = None,
                    free: Optional[np.ndarray] = None, vasp_says: Optional[bool] = None) -> Optional[bool]:
    """Ionic convergence of the final step of a run with ``n_steps`` ionic steps (``None`` for MD).

    ``vasp_says``: VASP's own verdict where the file has one (OUTCAR's "reached required
    accuracy"); otherwise, for EDIFFG < 0, the final step's ``final_forces`` are checked,
    with ``free`` (per component, whether it may move: selective dynamics).
    """
    nsw = _int(params.get("NSW"), 0)
    ibrion = _int(params.get("IBRION"), -1 if nsw <= 0 else 0)  # VASP's default
    if nsw <= 1:
        return True
    if ibrion == 0:
        return None
    if ibrion not in RELAXATION_IBRION:
        return n_steps < nsw
    ediffg = float(params.get("EDIFFG", 10 * float(params.get("EDIFF", 1e-4))))
    if ediffg == 0:  # a relaxation run for exactly NSW steps on purpose (pymatgen's rule)
        return n_steps == nsw
    if vasp_says is not None:
        return vasp_says
    if ediffg < 0:
        if final_forces is None:
            return n_steps < nsw
        forces = np.asarray(final_forces, dtype=float).reshape(-1, 3)
        if free is not None:
            forces = np.where(np.asarray(free, dtype=bool).reshape(-1, 3), forces, 0.0)
        return bool(np.max(np.linalg.norm(forces, axis=1), initial=0.0) <= abs(ediffg) * (1 + 1e-6))
    # EDIFFG > 0 is an energy criterion that VASP applies inside its line minimisation (a CG run can stop with a
    # last change above EDIFFG), so it cannot be re-checked from the steps: stopping before NSW counts (pymatgen's rule).
    return n_steps < nsw


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
