"""CDVAE-style CSV reader: a ``cif`` column holding a CIF string, plus property columns.

``material_id`` becomes the source's external id; every other named column
(not ``cif``, not the unnamed pandas index) becomes a source property: finite
numbers as ``value_float``, anything else (``nan``, ``inf`` included) as
``value_text``. Records are ``row=<n>`` (0-based data row). Column names are read
with surrounding spaces stripped and ``CIF`` in any case is the ``cif`` column;
an empty cell is no property at all. A row with more or fewer cells than the
header, a ``cif`` cell holding several data blocks, and a quoted cell still open
at the end of the file are quarantined by themselves, named by row and id.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Iterator

from xtalbase.ingest.formats import Reader, open_text, read_failure
from xtalbase.ingest.readers.cif import block_count, parse_block
from xtalbase.ingest.records import Known, ReadError, Record, number_or_text
from xtalbase.ingest.validate import ValidationOptions

ID_COLUMNS = ("material_id", "mp_id", "id")


#: Key of a row that could not be read as CSV; its value is the reason code and message.
ROW_ERROR = "\x00error"


def rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """``[(row index, {column: text})]`` for every data row (cheap: no CIF parsing).

    A row with fewer or more cells than the header, a quoted cell still open at the end
    of the file (a cut download), and a compressed file that ends early or is damaged,
    come back as ``{ROW_ERROR: (reason, message)}`` so that they are quarantined by
    themselves; the rows before them are kept.
    """
    csv.field_size_limit(sys.maxsize)
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        with open_text(path) as fh:
            reader = csv.reader(fh, strict=True)
            try:
                header = next(reader, None)
            except csv.Error as exc:
                return [(0, {ROW_ERROR: ("parse_error", f"the header line is not CSV: {exc}")})]
            if header is None:
                return []
            names = ["cif" if n.strip().lower() == "cif" else n.strip() for n in header]
            while True:
                index = len(out)
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    at_end = "unexpected end of data" in str(exc)
                    reason = "truncated_file" if at_end else "parse_error"
                    what = "the file ends inside a quoted cell (cut short?)" if at_end else f"not valid CSV ({exc})"
                    out.append((index, {ROW_ERROR: (reason, f"{what}; rows after it are not read")}))
                    break
                if not cells:
                    continue  # a blank line (csv.DictReader skips these too)
                if len(cells) != len(names):
                    out.append((index, {ROW_ERROR: ("parse_error", f"{len(cells)} cell{'' if len(cells) == 1 else 's'} but the header names {len(names)} "
                                                                   f"columns (a shifted or unquoted row?)")}))
                    continue
                out.append((index, dict(zip(names, cells))))
    except Exception as exc:  # noqa: BLE001 - a compressed file cut short or damaged: the rows before it are kept
        reason, what = read_failure(path, "cdvae_csv", exc)
        out.append((len(out), {ROW_ERROR: (reason, f"{what}; rows after it are not read")}))
    return out


#: The pipeline's name for a reader's record list: every CSV is shared among the workers by rows.
split = rows


def locator_of(item: tuple[Any, Any]) -> str:
    """The locator of one :func:`split` item."""
    return f"row={item[0]}"


def read(path: Path, *, skip: frozenset[str] = frozenset(), rows_: list[tuple[int, dict[str, str]]] | None = None,
         validation: ValidationOptions | None = None, **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield one record per row; ``rows_`` (from :func:`rows`) lets a worker parse only its share."""
    for index, row in rows_ if rows_ is not None else rows(path):
        locator = f"row={index}"
        if locator in skip:
            yield Known(locator)
            continue
        yield parse_row(row, locator, f"{path} [{locator}]", validation)


def parse_row(row: dict[str, Any], locator: str, where: str, validation: ValidationOptions | None = None) -> Record | ReadError:
    """Parse one CSV row: its CIF text becomes the structure, other columns properties."""
    external_id = next((row[c].strip() for c in ID_COLUMNS if isinstance(row.get(c), str) and row[c].strip()), None)
    if external_id:
        where = f"{where[:-1]}, {external_id}]" if where.endswith("]") else f"{where} ({external_id})"
    if ROW_ERROR in row:
        reason, message = row[ROW_ERROR]
        return ReadError(locator, reason, f"{where}: {message}")
    text = row.get("cif") or ""
    if not text.strip():
        return ReadError(locator, "parse_error", f"{where}: empty cif column", str(row)[:2000])
    blocks = block_count(text)
    if blocks > 1:
        return ReadError(locator, "parse_error", f"{where}: the cif cell holds {blocks} data blocks; one row is one "
                                                 f"structure", text)
    record = parse_block(text, locator, where, validation)
    if isinstance(record, ReadError):
        return record
    record.external_id = external_id
    record.database = None  # the CIF block's own codes do not name this data set
    record.properties = {name: value for name, cell in row.items()
                         if name and name not in ("cif",) + ID_COLUMNS and (value := number_or_text(cell)) is not None}
    return record


def _sniff(head: str) -> bool:
    first = head.splitlines()[0] if head else ""
    return "cif" in [c.strip().strip('"').strip().lower() for c in first.split(",")]


READER = Reader("cdvae_csv", read, ("*.csv",), _sniff, "CDVAE-style CSV: a cif column plus property columns",
                yields=frozenset({"structures", "properties"}), split=split, locator_of=locator_of, always_split=True,
                name_needs_content=True, sniff_first=True)  # its cells hold CIF text: asked before the CIF sniffer
