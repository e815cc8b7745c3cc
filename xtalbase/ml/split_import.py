"""Rebuild a published split from CDVAE/DiffCSP benchmark CSVs: rows matched by the ingest code, stored as a split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from xtalbase.ml.manifest import ExportError, sha256_file

if TYPE_CHECKING:
    from xtalbase.ml.splits import SplitHandle, SplitStore


def import_cdvae(store: "SplitStore", name: str, directory: str | Path, *, symprec: float | None = None,
                 workers: int = 1, progress: Callable[[int], None] | None = None) -> tuple["SplitHandle", dict[str, Any]]:
    """Rebuild a published split from ``train.csv``/``val.csv``/``test.csv`` (CDVAE layout) in ``directory``.

    Rows are matched to stored structures by :func:`xtalbase.ingest.cdvae_match.match_cdvae_csv` (exact
    hash, then canonical hash confirmed by ``StructureMatcher``; hashed at ``symprec``, by default the
    tolerance most stored structures were hashed with, in ``workers`` processes); unmatched and conflicting
    rows are reported, not guessed. Returns the stored split and the report.
    """
    from xtalbase.ingest.cdvae_match import cdvae_files, match_cdvae_csv

    directory = Path(directory)
    files = cdvae_files(directory)
    if not files:
        raise ExportError(f"{directory}: no train.csv, val.csv or test.csv to import")
    found = match_cdvae_csv(store.db, files, symprec=symprec, workers=workers, progress=progress)
    report = found.report
    if not found.fold_of:
        raise ExportError(f"{directory}: none of the {report['rows']} rows matches a stored structure "
                          "(ingest the structures first)")
    recipe = {"strategy": "imported", "mode": "imported", "seed": 0, "algorithm": "cdvae-csv-import/v1",
              "source": {"format": "cdvae-csv", "files": {p.name: sha256_file(p) for _, p in files},
                         "symprec": found.symprec}}
    ids = sorted(found.fold_of)
    handle = store.store_imported(name, recipe, ids, [found.fold_of[i] for i in ids], [found.exact_of[i] for i in ids],
                                  [f for f, _ in files])
    report["split"] = handle.name
    report["id"] = handle.id
    return handle, report
