"""SNAP / mlearn MLIP training-set JSON: a list of ``{structure, outputs: {energy, forces, stress|virial_stress}}``.

Each entry is a record ``index=<i>`` with a VASP calculation: energy eV per cell,
forces eV/Å, stress 6-vector in VASP order (xx, yy, zz, xy, yz, zx) and kBar, as
these data sets give it. ``params``, ``group``, ``tags`` and ``description``
are kept in ``parameters``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xtalbase.ingest.formats import open_text
from xtalbase.ingest.records import Calculation, Known, ReadError, Record, record_from_pymatgen

META_KEYS = ("params", "group", "tags", "tag", "description", "element", "notes", "group_id")


def read(path: Path, *, skip: frozenset[str] = frozenset(), **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield one record per list entry."""
    from pymatgen.core import Structure

    with open_text(path) as fh:
        entries = json.load(fh)
    if not isinstance(entries, list):
        yield ReadError("file", "parse_error", f"{path}: expected a JSON list of {{structure, outputs}} entries")
        return
    for i, entry in enumerate(entries):
        locator = f"index={i}"
        if locator in skip:
            yield Known(locator)
            continue
        try:
            structure = Structure.from_dict(entry["structure"])
        except Exception as exc:  # noqa: BLE001 - malformed entry
            yield ReadError(locator, "parse_error", f"{path} [{locator}]: bad structure: {type(exc).__name__}: {str(exc)[:200]}",
                            json.dumps(entry)[:65536])
            continue
        yield record_from_pymatgen(structure, locator, calculation=_calculation(entry.get("outputs") or {}, entry))


def vasp_stress(six: Any) -> np.ndarray:
    """3x3 stress from a VASP-ordered 6-vector (xx, yy, zz, xy, yz, zx)."""
    xx, yy, zz, xy, yz, zx = (float(v) for v in six)
    return np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])


def _calculation(outputs: dict[str, Any], entry: dict[str, Any]) -> Calculation | None:
    if not outputs:
        return None
    six = outputs.get("stress", outputs.get("virial_stress"))
    params = entry.get("params") or {}
    return Calculation(
        code="VASP", functional="PBE", energy=outputs.get("energy"),
        forces=np.asarray(outputs["forces"], dtype=float) if outputs.get("forces") is not None else None,
        stress=vasp_stress(six) if six is not None and len(six) == 6 else None, stress_unit="kBar",
        parameters={k: entry[k] for k in META_KEYS if k in entry} | ({"encut": params["e_cut"]} if "e_cut" in params else {}),
    )
