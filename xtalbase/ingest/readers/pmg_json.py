"""pymatgen ``Structure`` JSON (``Structure.as_dict()``), one per file or a list of them (records ``index=<i>``).

Also read, alone or in a list: Materials Project API documents (``{"material_id": ...,
"structure": {...}}``, as ``mp-api`` and the MP website export) and
``ComputedStructureEntry`` dicts: the ``structure`` is the record, ``material_id`` /
``entry_id`` the source's external id (database ``MP`` for ``mp-``/``mvc-`` ids) and
the other scalar fields source properties (booleans as ``"true"``/``"false"``). A
non-zero structure ``charge`` becomes a property; site properties (``magmom``,
``selective_dynamics``) and oxidation states are named in the source's warnings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from xtalbase.ingest.formats import Reader, first_object, open_text
from xtalbase.ingest.records import Known, ReadError, Record, record_from_pymatgen

#: Id fields of MP documents and computed entries, in order of preference.
ID_KEYS = ("material_id", "entry_id", "task_id")


def read(path: Path, *, skip: frozenset[str] = frozenset(), **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield the structure of the file, or one per list entry."""
    with open_text(path) as fh:
        data = json.load(fh)
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        locator = f"index={i}"
        if locator in skip:
            yield Known(locator)
            continue
        yield _record(item, locator, f"{path} [{locator}]")


def _record(data: Any, locator: str, where: str) -> Record | ReadError:
    from pymatgen.core import Structure

    external_id, properties = None, {}
    if isinstance(data, dict) and isinstance(data.get("structure"), dict):  # an MP document or a computed entry
        external_id = next((str(data[k]) for k in ID_KEYS if data.get(k)), None)
        properties = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in data.items()
                      if k not in ("structure", *ID_KEYS) and not k.startswith("@") and isinstance(v, (str, int, float))}
        data = data["structure"]
    if not isinstance(data, dict) or "lattice" not in data:
        return ReadError(locator, "missing_cell", f"{where}: no 'lattice' in the structure JSON (a molecule, or not a "
                                                  f"pymatgen Structure)")
    sites = data.get("sites")
    if not isinstance(sites, list) or not sites:
        return ReadError(locator, "missing_coordinates", f"{where}: the structure JSON has no sites")
    if any(isinstance(site, dict) and "abc" not in site and "xyz" in site for site in sites):
        data = _fractional_from_cartesian(data)
    unplaced = [i for i, site in enumerate(data["sites"]) if not isinstance(site, dict) or "abc" not in site]
    if unplaced:
        return ReadError(locator, "missing_coordinates", f"{where}: site {unplaced[0]} has no coordinates ('abc' or "
                                                         f"'xyz'); {len(unplaced)} of {len(sites)} sites lack them")
    try:
        structure = Structure.from_dict(data)
    except Exception as exc:  # noqa: BLE001
        message = str(exc)[:200]
        reason = "unknown_element" if "not a valid Element" in message or "DummySpecies" in message else "parse_error"
        return ReadError(locator, reason, f"{where}: not a pymatgen Structure: {type(exc).__name__}: {message}")
    if not all(structure.lattice.pbc):
        flags = " ".join("T" if p else "F" for p in structure.lattice.pbc)
        return ReadError(locator, "missing_cell", f"{where}: the lattice is not periodic along all three vectors "
                                                  f"(pbc {flags}); only 3D-periodic crystals are stored")
    text = json.dumps(data)
    database = "MP" if external_id and external_id.startswith(("mp-", "mvc-")) else None
    if structure.charge:
        properties["charge"] = float(structure.charge)
    return record_from_pymatgen(structure, locator, raw_text=text if len(text) < 65536 else None, warnings=_dropped(structure),
                                external_id=external_id, database=database, properties=properties)


def _fractional_from_cartesian(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``abc`` computed for sites that give only Cartesian ``xyz`` (pymatgen reads only ``abc``)."""
    import numpy as np

    try:
        inverse = np.linalg.inv(np.array(data["lattice"]["matrix"], dtype=float))
    except (KeyError, TypeError, ValueError, np.linalg.LinAlgError):
        return data
    sites = [dict(site, abc=(np.array(site["xyz"], dtype=float) @ inverse).tolist())
             if isinstance(site, dict) and "abc" not in site and "xyz" in site else site for site in data["sites"]]
    return dict(data, sites=sites)


def _dropped(structure: Any) -> list[str]:
    """Source notes for what the structure carries that the ``structures`` row does not keep."""
    notes = []
    names = sorted({name for site in structure for name, value in site.properties.items() if value is not None})
    if names:
        notes.append(f"pmg_json: site properties not stored ({', '.join(names)}); the JSON itself is the record")
    charged = sorted({str(sp) for site in structure for sp in site.species if getattr(sp, "oxi_state", None)})
    if charged:
        notes.append(f"pmg_json: oxidation states not stored ({', '.join(charged[:8])})")
    return notes


def _sniff(head: str) -> bool:
    return head.lstrip().startswith("{") and '"lattice"' in head and '"sites"' in head


def _sniff_json(document: object) -> bool:
    # a Structure dict, an MP document or ComputedStructureEntry with a structure, or a list of those
    first = first_object(document)
    return first is not None and (isinstance(first.get("structure"), dict) or "sites" in first or "lattice" in first)


READER = Reader("pmg_json", read, ("*.json",), _sniff, "pymatgen Structure JSON (as_dict)",
                yields=frozenset({"structures", "properties"}), sniff_json=_sniff_json)
