"""Match the rows of CDVAE/DiffCSP benchmark CSVs (``train.csv``, ``val.csv``, ``test.csv``) to stored structures.

Each row's CIF is read and hashed by the ingest code (:mod:`xtalbase.ingest.prepare`) and matched to a stored
structure: first by exact hash, then among the structures sharing its canonical hash, confirmed by pymatgen
``StructureMatcher`` (:mod:`xtalbase.ingest.matching`). Rows that match nothing, fail to parse, or name a
structure already placed in another fold are reported, not guessed. What to do with the matched membership
(store it as a split) is the caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import select

from xtalbase.schema import Structure

if TYPE_CHECKING:
    from xtalbase.ingest.matching import Matcher
    from xtalbase.platform.database import Database

#: Fold files of the CDVAE layout, in fold order.
CDVAE_FOLDS = ("train", "val", "test")
_IMPORT_CHUNK = 250  # CSV rows per worker task


@dataclass
class CdvaeMatch:
    """The outcome of matching: ``fold_of`` {structure id: fold}, their exact hashes, the files read and a report."""

    files: list[tuple[str, Path]]
    symprec: float
    fold_of: dict[int, str] = field(default_factory=dict)
    exact_of: dict[int, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def cdvae_files(directory: str | Path) -> list[tuple[str, Path]]:
    """``(fold, path)`` of the CDVAE fold files present in ``directory``."""
    directory = Path(directory)
    return [(fold, directory / f"{fold}.csv") for fold in CDVAE_FOLDS if (directory / f"{fold}.csv").is_file()]


def match_cdvae_csv(db: "Database", files: list[tuple[str, Path]], *, symprec: float | None = None, workers: int = 1,
                    progress: Callable[[int], None] | None = None) -> CdvaeMatch:
    """Match every row of ``files`` to a stored structure; see the module docstring.

    Rows are hashed at ``symprec`` (Å; default: the tolerance most stored structures were hashed with, as
    canonical hashes depend on it) by ``workers`` processes (through :class:`xtalbase.platform.runner.Runner`).
    """
    from xtalbase.ingest.identity import DEFAULT_SYMPREC
    from xtalbase.ingest.matching import Matcher
    from xtalbase.ingest.prepare import PrepareOptions, WorkUnit, prepare_unit
    from xtalbase.ingest.readers.cdvae_csv import ID_COLUMNS
    from xtalbase.ingest.readers.cdvae_csv import rows as csv_rows
    from xtalbase.ingest.validate import ValidationOptions
    from xtalbase.platform.repositories import chunks
    from xtalbase.platform.runner import Runner

    # matching only: records are read as ingest reads them but not judged for precision or size
    options = PrepareOptions(symprec=symprec or stored_symprec(db) or DEFAULT_SYMPREC,
                             validation=ValidationOptions(min_coord_decimals=0, min_special_decimals=0, min_cell_decimals=0,
                                                          max_sites=10**9, allow_disorder=True))
    by_exact: dict[str, int] = {}
    by_canonical: dict[str, list[int]] = {}
    with db.session() as s:
        for sid, exact, canonical in s.execute(select(Structure.id, Structure.exact_hash, Structure.canonical_hash)):
            by_exact[exact] = sid
            by_canonical.setdefault(canonical, []).append(sid)
    exact_of = {sid: exact for exact, sid in by_exact.items()}
    matcher = Matcher()
    fold_of: dict[int, str] = {}
    report: dict[str, Any] = {"directory": str(files[0][1].parent) if files else "", "rows": 0, "matched": 0, "matched_exact": 0,
                              "matched_canonical": 0, "by_fold": {}, "unmatched": [], "conflicts": [], "duplicates": 0}
    for fold, path in files:
        table = csv_rows(path)
        with Runner(prepare_unit, workers=workers, name="cdvae-match") as runner:
            tasks = ((None, (WorkUnit(str(path), "cdvae_csv", rows=share), options)) for share in chunks(table, _IMPORT_CHUNK))
            items = [item for _, result in runner.map(tasks) for item in result]
        ids_of = {f"row={i}": next((r[c].strip() for c in ID_COLUMNS if (r.get(c) or "").strip()), None) for i, r in table}
        report["by_fold"][fold] = {"rows": len(items), "matched": 0}
        for item in items:
            report["rows"] += 1
            if progress:
                progress(1)
            where = {"file": path.name, "row": item.get("locator"), "material_id": ids_of.get(item.get("locator"))}
            if item["kind"] != "record":
                report["unmatched"].append({**where, "reason": f"unreadable: {item.get('reason')}: {item.get('message', '')[:200]}"})
                continue
            row = item["structure"]
            sid = by_exact.get(row["exact_hash"])
            how = "exact"
            if sid is None:
                how = "canonical"
                candidates = by_canonical.get(row["canonical_hash"], [])
                sid = _confirm(db, row, candidates, matcher) if candidates else None
            if sid is None:
                reason = "no stored structure with this canonical hash" if not by_canonical.get(row["canonical_hash"]) \
                    else "canonical hash found but StructureMatcher rejects every candidate"
                report["unmatched"].append({**where, "reason": reason})
                continue
            if sid in fold_of:
                if fold_of[sid] != fold:
                    report["conflicts"].append({**where, "structure_id": sid, "kept_in": fold_of[sid]})
                else:
                    report["duplicates"] += 1
                continue
            fold_of[sid] = fold
            report["matched"] += 1
            report[f"matched_{how}"] += 1
            report["by_fold"][fold]["matched"] += 1
    return CdvaeMatch(files, options.symprec, fold_of, {sid: exact_of[sid] for sid in fold_of}, report)


def stored_symprec(db: "Database") -> float | None:
    """The spglib tolerance (Å) most stored structures were hashed with (canonical hashes depend on it)."""
    from sqlalchemy import func

    stmt = (select(Structure.symprec).where(Structure.symprec.is_not(None)).group_by(Structure.symprec)
            .order_by(func.count().desc(), Structure.symprec).limit(1))
    with db.session() as s:
        return s.scalar(stmt)


def _confirm(db: "Database", row: dict[str, Any], candidates: list[int], matcher: "Matcher") -> int | None:
    """The candidate structure id that StructureMatcher confirms as the same structure as ``row``."""
    with db.session() as s:
        stored = list(s.scalars(select(Structure).where(Structure.id.in_(candidates)).order_by(Structure.id)))
    return matcher.first_match(row["exact_hash"], row, ((r.id, r) for r in stored))  # decoded as compared


def match_cdvae_folder(db: "Database", directory: Path, *, symprec: float | None = None, workers: int = 1,
                       progress: Callable[[int], None] | None = None) -> tuple[list[tuple[str, Path]], CdvaeMatch | None]:
    """The fold files of ``directory`` and their rows matched (:func:`match_cdvae_csv`); ``([], None)`` when there are none."""
    files = cdvae_files(directory)
    if not files:
        return files, None
    return files, match_cdvae_csv(db, files, symprec=symprec, workers=workers, progress=progress)
