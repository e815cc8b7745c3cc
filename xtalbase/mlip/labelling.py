"""The labelling folder: surrogates exported for an oracle, and its outputs ingested back as calculations.

Layout of a folder written by :func:`export`::

    manifest.json          what the folder is for: parent and new dataset names, strategy, oracle, and one
                           entry per candidate (key, folder, reason, score, top motif, generator parameters)
    candidates.extxyz      every candidate, ``info["candidate"]`` = its key
    c000/POSCAR            one subfolder per candidate: the input for a DFT code
    c000/labels.extxyz     written by an in-process oracle (emt, chgnet); for ``files`` the user puts the
                           DFT output here instead: vasprun.xml, OUTCAR or an extxyz with energy and forces

:func:`collect` ingests each candidate's output through the ordinary ingest pipeline (sources, file
sha256, quarantine), finds the structure each output was stored as, and checks it carries an energy and
forces; a candidate without a usable output is an error naming it, unless ``partial=True`` leaves it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    from ase import Atoms

    from xtalbase.platform.database import Database

MANIFEST = "manifest.json"
FORMAT = "xtalbase-labelling/1"
#: Output files looked for in a candidate's folder, best first; one per candidate is ingested.
OUTPUT_PATTERNS = ("vasprun.xml", "vasprun.xml.gz", "OUTCAR", "OUTCAR.gz", "labels.extxyz", "*.extxyz", "*.xyz")


class LabellingError(XtalbaseError):
    """A labelling folder is missing, malformed, or an output cannot be used (the message names the candidate)."""


@dataclass
class Collected:
    """What :func:`collect` found: structure id per candidate key, the keys left out (``partial``) and why."""

    structure_ids: dict[str, int]
    missing: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def export(folder: str | Path, structures: Sequence["Atoms"], entries: Sequence[dict[str, Any]],
           manifest: dict[str, Any]) -> Path:
    """Write the labelling folder for ``structures`` (one manifest entry each, with at least ``key``)."""
    import ase.io

    if len(structures) != len(entries):
        raise LabellingError(f"{len(structures)} structures but {len(entries)} manifest entries")
    root = Path(folder)
    if (root / MANIFEST).exists():
        raise LabellingError(f"{root} already holds a labelling manifest; choose a new --out folder")
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for atoms, entry in zip(structures, entries):
        key = str(entry["key"])
        sub = root / key
        sub.mkdir(exist_ok=True)
        atoms = atoms.copy()
        atoms.calc = None
        atoms.info = {"candidate": key}
        ase.io.write(sub / "POSCAR", atoms, format="vasp", direct=True, sort=False)
        items.append(atoms)
        entry.setdefault("folder", key)
    ase.io.write(root / "candidates.extxyz", items, format="extxyz")
    (root / MANIFEST).write_text(json.dumps({"format": FORMAT, **manifest, "candidates": list(entries)}, indent=1))
    return root


def write_labels(folder: str | Path, labelled: Sequence["Atoms"]) -> None:
    """Write each oracle-labelled structure to ``<folder>/<candidate>/labels.extxyz``."""
    import ase.io

    root = Path(folder)
    for atoms in labelled:
        ase.io.write(root / str(atoms.info["candidate"]) / "labels.extxyz", atoms, format="extxyz")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The folder's manifest; :class:`LabellingError` when it is absent or not one of ours."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise LabellingError(f"{folder}: no {MANIFEST} (write the folder with `xtalbase mlip expand --oracle files`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LabellingError(f"{path}: not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("candidates"), list):
        raise LabellingError(f"{path}: not an xtalbase labelling manifest (format {manifest.get('format')!r})")
    return manifest


def output_of(folder: Path) -> Path | None:
    """The candidate's output file, by :data:`OUTPUT_PATTERNS` order, or None."""
    for pattern in OUTPUT_PATTERNS:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found[0]
    return None


def collect(db: "Database", folder: str | Path, *, partial: bool = False, workers: int = 1) -> Collected:
    """Ingest each candidate's output and return the structure it was stored as (see the module docstring)."""
    from xtalbase.ingest.pipeline import ingest
    from xtalbase.platform.hashing import file_sha256
    from xtalbase.platform.repositories.structures import calculations_of, structures_of_files

    root = Path(folder)
    manifest = read_manifest(root)
    outputs: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for entry in manifest["candidates"]:
        key = str(entry["key"])
        found = output_of(root / str(entry.get("folder", key)))
        if found is None:
            missing[key] = (f"no output in {root / str(entry.get('folder', key))} "
                            "(expected vasprun.xml, OUTCAR or an extxyz with energy and forces)")
        else:
            outputs[key] = found
    if outputs:
        report = ingest(db, sorted(map(str, outputs.values())), workers=workers)
        if report.quarantined and not partial:
            reasons = ", ".join(f"{k} ({v})" for k, v in report.quarantined_by_reason.items())
            raise LabellingError(f"{root}: {report.quarantined} output record(s) were rejected: {reasons}; "
                                 "see `xtalbase db quarantine`")
    hashes = {key: file_sha256(path) for key, path in outputs.items()}
    ids: dict[str, int] = {}
    with db.session() as s:
        stored = structures_of_files(s, list(hashes.values()))
        for key, digest in hashes.items():
            records = stored.get(digest)
            if not records:
                missing[key] = f"{outputs[key]}: no structure was stored from it (rejected; see the quarantine)"
                continue
            ids[key] = records[-1][1]  # the last record: the final ionic step
        calcs = calculations_of(s, list(ids.values()))
        for key in list(ids):
            calc = calcs.get(ids[key])
            if calc is None or calc.energy is None or calc.forces is None:
                missing[key] = f"{outputs[key]}: the stored structure has no energy and forces"
                del ids[key]
    if missing and not partial:
        lines = "; ".join(f"{k}: {why}" for k, why in sorted(missing.items())[:10])
        raise LabellingError(f"{len(missing)} of {len(manifest['candidates'])} candidates are not labelled: {lines}")
    return Collected(structure_ids=ids, missing=missing, files={k: str(p) for k, p in outputs.items()})


def structures_of_file(db: "Database", path: str | Path) -> list[int]:
    """The structure ids the records of an ingested file were stored as (record order, duplicates included)."""
    from xtalbase.platform.hashing import file_sha256
    from xtalbase.platform.repositories.structures import structures_of_files

    digest = file_sha256(path)
    with db.session() as s:
        records = structures_of_files(s, [digest]).get(digest, [])
    if not records:
        raise LabellingError(f"{path}: nothing stored from this file (not ingested, or every record rejected)")
    return list(dict.fromkeys(sid for _, sid in records))
