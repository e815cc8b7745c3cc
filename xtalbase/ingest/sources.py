"""Where a record came from: the source database name, external id, and side-car properties files.

Database names, first that applies: ``--source``; the record's own tag
(``_cod_database_code`` -> ``COD``, ``_database_code_ICSD`` -> ``ICSD``); the
path (``mp-<n>`` file names or an ``mp_cgcnn`` folder -> ``MP``; folder or file names
starting ``perov5``, ``spglib``; ``cod_`` -> ``COD``, ``snap``/``mlearn`` -> ``mlip``); DFT formats ->
``vasp``/``extxyz``; else ``local``.
"""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path
from typing import Any, Optional

from xtalbase.ingest.records import number_or_text

_MP_ID = re.compile(r"^mp-\d+$|^mvc-\d+$")
#: (prefix of a folder or file name, database name), first match wins.
PATH_HINTS = (("mp_cgcnn", "MP"), ("perov5", "perov5"), ("spglib", "spglib"), ("cod_", "COD"),
              ("snap_", "mlip"), ("mlearn", "mlip"), ("mlip", "mlip"))
FORMAT_DATABASES = {"vasprun": "vasp", "outcar": "vasp", "extxyz": "extxyz", "mlip_json": "mlip"}
PROPERTIES_FILE = "properties.csv"


def database_for(path: Path, fmt: str, given: Optional[str], from_record: Optional[str]) -> str:
    """The ``sources.database`` name for a record of ``path``: the file's path from the named folder down (module notes)."""
    if given:
        return given
    if from_record:
        return from_record
    stem = path.name.split(".")[0]
    if _MP_ID.match(stem):
        return "MP"
    parts = [p.lower() for p in path.parts]
    for hint, name in PATH_HINTS:
        if any(p.startswith(hint) for p in parts):
            return name
    return FORMAT_DATABASES.get(fmt, "local")


def external_id_for(path: Path, from_record: Optional[str]) -> Optional[str]:
    """The record's own id, else a Materials Project id taken from the file name (``mp-1234.cif``)."""
    if from_record:
        return from_record
    stem = path.name.split(".")[0]
    return stem if _MP_ID.match(stem) else None


@functools.lru_cache(maxsize=64)
def sidecar_properties(directory: Path) -> dict[str, dict[str, Any]]:
    """``{material id: {column: value}}`` from ``properties.csv`` in ``directory`` or its parent, else ``{}``.

    The first column is the id (``material_id`` in the CGCNN set); numbers become floats. A file that cannot be
    read as CSV text (not UTF-8, a NUL byte, a cell over the csv module's limit, no permission) gives no
    properties rather than stopping the batch being written (it is read inside the batch's transaction).
    """
    for folder in (directory, directory.parent):
        path = folder / PROPERTIES_FILE
        if path.is_file():
            try:
                with open(path, newline="", encoding="utf-8") as fh:
                    reader = csv.reader(fh)
                    header = next(reader, [])
                    if len(header) < 2 or "cif" in header:
                        continue
                    return {row[0]: {name: value for name, cell in zip(header[1:], row[1:])
                                     if (value := number_or_text(cell)) is not None} for row in reader if row}
            except (OSError, UnicodeError, csv.Error):
                continue
    return {}
