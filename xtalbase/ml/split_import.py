"""Rebuild a published split from CDVAE/DiffCSP benchmark CSVs: rows matched by the ingest code, stored as a split.

Matching rows to stored structures is identity work and lives in ingest; ml must not import it (the layer
rule), so the store receives the matcher from the layer above (:class:`xtalbase.api.Database` wires
:func:`xtalbase.ingest.cdvae_match.match_cdvae_folder`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from xtalbase.ml.manifest import ExportError
from xtalbase.platform.hashing import file_sha256

if TYPE_CHECKING:
    from xtalbase.ml.splits import SplitHandle, SplitStore
    from xtalbase.platform.database import Database


class CdvaeMatcher(Protocol):
    """Finds the fold CSVs of ``directory`` and matches their rows: returns ``([(fold, path)], match)``.

    ``match`` has ``report`` (dict), ``fold_of`` and ``exact_of`` (structure id -> fold / exact hash) and ``symprec``.
    """

    def __call__(self, db: "Database", directory: Path, *, symprec: float | None, workers: int,
                 progress: Callable[[int], None] | None) -> tuple[list[tuple[str, Path]], Any]: ...


def import_cdvae(store: "SplitStore", name: str, directory: str | Path, *, matcher: CdvaeMatcher, symprec: float | None = None,
                 workers: int = 1, progress: Callable[[int], None] | None = None) -> tuple["SplitHandle", dict[str, Any]]:
    """Rebuild a published split from ``train.csv``/``val.csv``/``test.csv`` (CDVAE layout) in ``directory``.

    Rows are matched to stored structures by ``matcher`` (:func:`xtalbase.ingest.cdvae_match.match_cdvae_folder`: exact
    hash, then canonical hash confirmed by ``StructureMatcher``; hashed at ``symprec``, by default the
    tolerance most stored structures were hashed with, in ``workers`` processes); unmatched and conflicting
    rows are reported, not guessed. Returns the stored split and the report.
    """
    directory = Path(directory)
    files, found = matcher(store.db, directory, symprec=symprec, workers=workers, progress=progress)
    if not files:
        raise ExportError(f"{directory}: no train.csv, val.csv or test.csv to import")
    report = found.report
    if not found.fold_of:
        raise ExportError(f"{directory}: none of the {report['rows']} rows matches a stored structure "
                          "(ingest the structures first)")
    recipe = {"strategy": "imported", "mode": "imported", "seed": 0, "algorithm": "cdvae-csv-import/v1",
              "source": {"format": "cdvae-csv", "files": {p.name: file_sha256(p) for _, p in files},
                         "symprec": found.symprec}}
    ids = sorted(found.fold_of)
    handle = store.store_imported(name, recipe, ids, [found.fold_of[i] for i in ids], [found.exact_of[i] for i in ids],
                                  [f for f, _ in files])
    report["split"] = handle.name
    report["id"] = handle.id
    return handle, report
