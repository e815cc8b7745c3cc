"""CDVAE-style CSV reader: a ``cif`` column holding a CIF string, plus property columns.

``material_id`` becomes the source's external id; every other named column
(not ``cif``, not the unnamed pandas index) becomes a source property: numbers
as ``value_float``, anything else as ``value_text``. Records are ``row=<n>``
(0-based data row). Column names are read with surrounding spaces stripped and
``CIF`` in any case is the ``cif`` column; an empty cell is no property at all.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Iterator

from xtalbase.ingest.formats import open_text
from xtalbase.ingest.readers.cif import parse_block
from xtalbase.ingest.records import Known, ReadError, Record

ID_COLUMNS = ("material_id", "mp_id", "id")


def rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """``[(row index, {column: text})]`` for every data row (cheap: no CIF parsing)."""
    csv.field_size_limit(sys.maxsize)
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames:
            reader.fieldnames = ["cif" if (n or "").strip().lower() == "cif" else (n or "").strip() for n in reader.fieldnames]
        return list(enumerate(reader))


def read(path: Path, *, skip: frozenset[str] = frozenset(), rows_: list[tuple[int, dict[str, str]]] | None = None,
         **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield one record per row; ``rows_`` (from :func:`rows`) lets a worker parse only its share."""
    for index, row in rows_ if rows_ is not None else rows(path):
        locator = f"row={index}"
        if locator in skip:
            yield Known(locator)
            continue
        yield parse_row(row, locator, f"{path} [{locator}]")


def parse_row(row: dict[str, str], locator: str, where: str) -> Record | ReadError:
    """Parse one CSV row: its CIF text becomes the structure, other columns properties."""
    text = row.get("cif") or ""
    if not text.strip():
        return ReadError(locator, "parse_error", f"{where}: empty cif column", str(row)[:2000])
    record = parse_block(text, locator, where)
    if isinstance(record, ReadError):
        return record
    record.external_id = next((row[c].strip() for c in ID_COLUMNS if row.get(c, "").strip()), None)
    record.database = None  # the CIF block's own codes do not name this data set
    record.properties = {name: _value(value) for name, value in row.items()
                         if name and name.strip() and name not in ("cif",) + ID_COLUMNS and value is not None
                         and value.strip()}
    return record


def _value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
