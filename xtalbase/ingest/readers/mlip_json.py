"""SNAP / mlearn MLIP training-set JSON: a list of ``{structure, outputs: {energy, forces, stress|virial_stress}}``.

Each entry is a record ``index=<i>`` with a VASP calculation: energy eV per cell,
forces eV/Å, stress in kBar as a 6-vector in VASP order (xx, yy, zz, xy, yz, zx),
as these data sets give it, or as a full 3x3 (or 9 values). Empty or null forces
and stress mean "not given". ``params``, ``group``, ``tags`` and ``description``
are kept in ``parameters``. A bad entry is quarantined on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xtalbase.ingest.formats import Reader, first_object, open_text
from xtalbase.ingest.records import Calculation, Known, ReadError, Record, record_from_pymatgen

META_KEYS = ("params", "group", "tags", "tag", "description", "element", "notes", "group_id")


def split(path: Path) -> list[tuple[int, Any]] | None:
    """``[(index, entry)]`` of the file's list, or ``None`` when it holds no list: a large file's shares for the workers."""
    with open_text(path) as fh:
        entries = json.load(fh)
    return list(enumerate(entries)) if isinstance(entries, list) else None


def locator_of(item: tuple[Any, Any]) -> str:
    """The locator of one :func:`split` item."""
    return f"index={item[0]}"


def read(path: Path, *, skip: frozenset[str] = frozenset(), rows_: list[tuple[int, Any]] | None = None,
         **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield one record per list entry; ``rows_`` (from :func:`split`) parses only a share."""
    from pymatgen.core import Structure

    if rows_ is None:
        rows_ = split(path)
        if rows_ is None:
            yield ReadError("file", "parse_error", f"{path}: expected a JSON list of {{structure, outputs}} entries")
            return
    for i, entry in rows_:
        locator = f"index={i}"
        if locator in skip:
            yield Known(locator)
            continue
        try:
            structure = Structure.from_dict(entry["structure"])
        except Exception as exc:  # noqa: BLE001 - malformed entry
            yield ReadError(locator, "parse_error", f"{path} [{locator}]: bad structure: {type(exc).__name__}: {str(exc)[:200]}",
                            _raw(entry))
            continue
        try:
            calculation = _calculation(entry.get("outputs") or {}, entry, len(structure))
        except (TypeError, ValueError, KeyError) as exc:
            yield ReadError(locator, "parse_error", f"{path} [{locator}]: bad outputs (energy, forces, stress): "
                                                    f"{type(exc).__name__}: {str(exc)[:200]}", _raw(entry))
            continue
        yield record_from_pymatgen(structure, locator, calculation=calculation)


def _decoded(value: Any) -> Any:
    """A numpy array as monty's ``MontyEncoder`` writes it (``{"@module": "numpy", "@class": "array", "data": ...}``)."""
    if isinstance(value, dict) and value.get("@module") == "numpy" and "data" in value:
        return np.asarray(value["data"], dtype=value.get("dtype") or float)
    return value


def _raw(entry: Any) -> str:
    try:
        return json.dumps(entry)[:65536]
    except (TypeError, ValueError):
        return repr(entry)[:65536]


def vasp_stress(six: Any) -> np.ndarray:
    """3x3 stress from a VASP-ordered 6-vector (xx, yy, zz, xy, yz, zx)."""
    xx, yy, zz, xy, yz, zx = (float(v) for v in six)
    return np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])


def _calculation(outputs: dict[str, Any], entry: dict[str, Any], natoms: int) -> Calculation | None:
    if not outputs:
        return None
    outputs = {k: _decoded(v) for k, v in outputs.items()}
    forces = outputs.get("forces")
    forces = np.asarray(forces, dtype=float).reshape(natoms, 3) if forces is not None and len(forces) else None
    stress = outputs.get("stress", outputs.get("virial_stress"))
    if stress is not None and len(stress):
        values = np.asarray(stress, dtype=float)
        if values.size == 6:
            stress = vasp_stress(values.ravel())
        elif values.size == 9:
            stress = values.reshape(3, 3)
        else:
            raise ValueError(f"stress has {values.size} values; expected 6 (VASP order) or 9")
    else:
        stress = None
    energy = outputs.get("energy")
    params = entry.get("params") or {}
    return Calculation(
        code="VASP", functional="PBE", energy=None if energy is None else float(energy), forces=forces,
        stress=stress, stress_unit="kBar" if stress is not None else None,
        parameters={k: entry[k] for k in META_KEYS if k in entry} | ({"encut": params["e_cut"]} if "e_cut" in params else {}),
    )


def _sniff(head: str) -> bool:
    return head.lstrip().startswith("[") and '"structure"' in head and '"outputs"' in head


def _sniff_json(document: object) -> bool:
    first = first_object(document)
    return first is not None and isinstance(first.get("structure"), dict) and "outputs" in first


READER = Reader("mlip_json", read, ("*.json",), _sniff, "SNAP/mlearn JSON list of structure + outputs",
                yields=frozenset({"structures", "calculations"}), split=split, locator_of=locator_of, sniff_json=_sniff_json)
