"""pymatgen ``Structure`` JSON (``Structure.as_dict()``), one structure per file (record ``index=0``).

A Materials Project API document (``{"material_id": ..., "structure": {...}}``, as
``mp-api`` and the MP website export) is read too: its ``structure`` is the record,
``material_id`` the source's external id and its other scalar fields source properties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from xtalbase.ingest.formats import open_text
from xtalbase.ingest.records import ReadError, Record, record_from_pymatgen


def read(path: Path, **_: object) -> Iterator[Record | ReadError]:
    """Yield the structure of the file."""
    from pymatgen.core import Structure

    with open_text(path) as fh:
        data = json.load(fh)
    external_id, properties = None, {}
    if isinstance(data, dict) and isinstance(data.get("structure"), dict):  # an MP API document
        external_id = str(data["material_id"]) if data.get("material_id") else None
        properties = {k: v for k, v in data.items() if k not in ("structure", "material_id")
                      and isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        data = data["structure"]
    if not isinstance(data, dict) or "lattice" not in data:
        yield ReadError("index=0", "missing_cell", f"{path}: no 'lattice' in the structure JSON")
        return
    try:
        structure = Structure.from_dict(data)
    except Exception as exc:  # noqa: BLE001
        yield ReadError("index=0", "parse_error", f"{path}: not a pymatgen Structure: {type(exc).__name__}: {str(exc)[:200]}")
        return
    yield record_from_pymatgen(structure, "index=0", raw_text=json.dumps(data) if len(str(data)) < 65536 else None,
                               external_id=external_id, properties=properties)
