"""The page actions that write: the token check, adding a note to a structure, re-ingesting a corrected record.

A write needs both a server started with ``--allow-writes`` and a request carrying the token (form field ``token`` or
header ``X-Xtalbase-Token``), compared in constant time. A cross-site form post cannot carry a token it does not
know, so the token is also what stops cross-site request forgery; no cookie or session ever authorises a write.
"""

from __future__ import annotations

import hmac
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    from xtalbase.api import Database
    from xtalbase.server.app import ServerSettings

TOKEN_HEADER = "X-Xtalbase-Token"
TOKEN_FIELD = "token"

#: Compression suffixes dropped from a re-ingested file's name: the stored raw text is already decompressed.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


class WriteRefused(XtalbaseError):
    """A write action the server will not do: writes are off, or the token is missing or wrong."""


def check_write(settings: "ServerSettings", form: Mapping[str, str], headers: Mapping[str, str]) -> None:
    """Raise :class:`WriteRefused` with the reason unless writes are on and the request carries the right token."""
    if not settings.allow_writes or not settings.token:
        raise WriteRefused("this server is read-only: write actions need `xtalbase serve --allow-writes --token ...`")
    given = form.get(TOKEN_FIELD) or headers.get(TOKEN_HEADER.lower()) or ""
    if not given:
        raise WriteRefused(f"this action needs the server's write token (form field '{TOKEN_FIELD}' or header {TOKEN_HEADER})")
    if not hmac.compare_digest(given.encode("utf-8"), settings.token.encode("utf-8")):
        raise WriteRefused("the write token is wrong")


def add_note(db: "Database", structure_id: int, text: str) -> int:
    """Store a note on a structure; returns the note's id."""
    from xtalbase.platform.repositories.notes import add_structure_note

    with db.session() as s:
        note = add_structure_note(s, structure_id, text)
        s.commit()
        return note.id


@dataclass
class ReingestResult:
    """What re-ingesting a corrected record did: the ingest report's counts, the new structures, new quarantine rows."""

    quarantine_id: int
    file_name: str
    run_id: Optional[int] = None
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    structure_ids: list[int] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)


def reingest_file_name(file_path: str, quarantine_id: int) -> str:
    """The name the corrected record is written under: the original file's name (so format detection sees the same
    extension), without a compression suffix; a made-up name when the original has none."""
    name = PureWindowsPath(PurePosixPath(file_path or "").name).name
    for suffix in COMPRESSED_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name if name and not name.startswith(".") else f"quarantine-{quarantine_id}.txt"


def original_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ingest options the original run recorded (format, source, licence, symprec, disorder, thresholds), so the
    corrected record is read, validated, keyed and attributed as it would have been; never how that run ran."""
    from xtalbase.ingest.options import IngestOptions

    known = set(IngestOptions.names()) - {"workers", "batch_size", "scheduler"}
    return {k: v for k, v in params.items() if k in known}


def original_folders(file_path: str, named_paths: Sequence[str]) -> list[str]:
    """The folder names from the path the original run was given down to the file, the given folder's own name first:
    ingest infers the source database from them (a ``perov5`` folder), so the corrected record is written below the
    same names. Names only (no anchor, ``.`` or ``..``), so nothing is written outside the temporary folder."""
    posix = file_path.replace("\\", "/")
    for named in sorted((str(p).replace("\\", "/").rstrip("/") for p in named_paths), key=len, reverse=True):
        if named and posix.startswith(named + "/"):
            parts = [PurePosixPath(named).name, *PurePosixPath(posix[len(named) + 1:]).parts[:-1]]
            return [p for p in parts if p not in ("", ".", "..", "/") and len(p.encode()) <= 255]
    return []


def reingest(db: "Database", quarantine_id: int, text: str) -> ReingestResult:
    """Run ``text`` (the corrected record) through the real ingest pipeline, as a file named like the original, below
    the same folder names and with the options of the run that quarantined it.

    New structures get a note saying where they came from; the quarantine row itself is kept (it is the record of
    what was rejected)."""
    from xtalbase.errors import NotFound
    from xtalbase.platform.repositories.notes import add_structure_note
    from xtalbase.platform.repositories.runs import get_run
    from xtalbase.platform.repositories.structures import quarantine_record, quarantine_rows

    with db.session() as s:
        original = quarantine_record(s, quarantine_id)
        try:
            params = dict(get_run(s, original["run_id"]).params or {}) if original["run_id"] is not None else {}
        except NotFound:
            params = {}
    if not text.strip():
        raise XtalbaseError(f"quarantine record {quarantine_id}: the corrected record is empty")
    result = ReingestResult(quarantine_id, reingest_file_name(original["file_path"], quarantine_id))
    folders = original_folders(original["file_path"], params.get("paths") or [])
    with tempfile.TemporaryDirectory(prefix="xtalbase-reingest-") as folder:
        path = Path(folder).joinpath(*folders, result.file_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        report = db.ingest([Path(folder, folders[0]) if folders else path], **{**original_options(params), "workers": 1})
    result.run_id, result.read, result.inserted, result.duplicates = report.run_id, report.read, report.inserted, report.duplicates
    result.structure_ids = list(report.structure_ids)
    with db.session() as s:
        if report.quarantined:
            rows = quarantine_rows(s, limit=report.quarantined + 50, columns=("id", "reason", "message", "record_locator", "run_id"))
            result.quarantined = [{k: r[k] for k in ("id", "reason", "message", "record_locator")} for r in rows
                                  if r["run_id"] == report.run_id]
        for sid in result.structure_ids:
            add_structure_note(s, sid, f"re-ingested from quarantine record {quarantine_id} ({original['reason']}: "
                               f"{original['file_path']} [{original['record_locator']}]) in ingest run {report.run_id}")
        s.commit()
    return result
