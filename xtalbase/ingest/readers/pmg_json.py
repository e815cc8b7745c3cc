"""pymatgen ``Structure`` JSON (``Structure.as_dict()``), one per file or a list of them (records ``index=<i>``).

Also read, alone or in a list: Materials Project API documents (``{"material_id": ...,
"structure": {...}}``, as ``mp-api`` and the MP website export) and
``ComputedStructureEntry`` dicts: the ``structure`` is the record, ``material_id`` /
``entry_id`` the source's external id (database ``MP`` for ``mp-``/``mvc-`` ids) and
the other scalar fields source properties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from xtalbase.ingest.formats import open_text
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
        properties = {k: v for k, v in data.items() if k not in ("structure", *ID_KEYS) and not k.startswith("@")
                      and isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        data = data["structure"]
    if not isinstance(data, dict) or "lattice" not in data:
        return ReadError(locator, "missing_cell", f"{where}: no 'lattice' in the structure JSON (a molecule, or not a "
                                                  f"pymatgen Structure)")
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
    return record_from_pymatgen(structure, locator, raw_text=text if len(text) < 65536 else None,
                                external_id=external_id, database=database, properties=properties)
