"""``manifest.json`` beside every export: what was written (recipe, counts) and each file's sha256.

:func:`verify_manifest` re-hashes a folder against its manifest and reports every
difference: missing, changed or unlisted files.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xtalbase.errors import XtalbaseError
from xtalbase.platform.hashing import file_sha256

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


class ExportError(XtalbaseError):
    """An export or import cannot be written, read or verified."""


def write_manifest(directory: Path, meta: dict[str, Any], files: dict[str, int | None]) -> dict[str, Any]:
    """Hash ``files`` (relative path -> number of records, or None) under ``directory`` and write the manifest."""
    from xtalbase.platform.provenance import code_version

    entries = {}
    for rel in sorted(files):
        path = directory / rel
        entries[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size, "records": files[rel]}
    manifest = {"manifest_version": MANIFEST_VERSION, **meta, "code_version": code_version(),
                "created_at": datetime.now(timezone.utc).isoformat(), "files": entries}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return manifest


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of ``directory``; raises :class:`ExportError` when absent or unreadable."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{path}: no manifest.json here (not an xtalbase export?)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: manifest is not readable JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ExportError(f"{path}: manifest has no 'files' table")
    return manifest


def verify_manifest(directory: str | Path) -> dict[str, Any]:
    """Re-hash every file listed in the manifest; returns a report with ``ok`` and ``problems``.

    A problem is a listed file that is missing, whose size or sha256 differs, or a
    file present in the folder but not listed.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    problems: list[str] = []
    checked = 0
    for rel, entry in sorted(manifest["files"].items()):
        path = directory / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
            continue
        checked += 1
        actual = file_sha256(path)
        if actual != entry.get("sha256"):
            problems.append(f"changed: {rel} (sha256 {actual[:16]}..., manifest says {str(entry.get('sha256'))[:16]}...)")
        elif entry.get("bytes") is not None and path.stat().st_size != entry["bytes"]:
            problems.append(f"changed: {rel} (size {path.stat().st_size}, manifest says {entry['bytes']})")
    listed = set(manifest["files"]) | {MANIFEST}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel not in listed:
            problems.append(f"unlisted: {rel}")
    split = manifest.get("split") or {}
    return {"directory": str(directory), "format": manifest.get("format"), "split": split.get("name"),
            "split_id": split.get("id"), "files": len(manifest["files"]), "checked": checked,
            "ok": not problems, "problems": problems}
