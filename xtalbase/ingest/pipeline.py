"""``db.ingest(paths, ...)``: find files, prepare records in worker processes, write them in batches.

The flow (maggma Builder-like): the main process walks the inputs, hashes each
file and asks the database which of its records are already stored; workers
(:func:`xtalbase.ingest.prepare.prepare_units`) read, validate, compute symmetry
and hashes; the main process writes each batch of results in one transaction
(:mod:`xtalbase.ingest.writer`). Everything runs inside ``db.run("ingest", ...)``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from sqlalchemy import select

from xtalbase.ingest.discovery import Walk, find_files
from xtalbase.ingest.formats import FORMATS, decompression_cap, open_text, share_locator, splitter
from xtalbase.ingest.matching import Matcher
from xtalbase.ingest.options import IngestOptions
from xtalbase.ingest.prepare import (
    MAX_RAW_TEXT,
    PrepareOptions,
    WorkUnit,
    failure_reason,
    pass_over,
    prepare_unit,
    quarantine_item,
)
from xtalbase.ingest.rehash import rehash_outdated
from xtalbase.ingest.writer import SOURCES, FileInfo, printable, write_batch
from xtalbase.platform.config import resolve_scheduler
from xtalbase.platform.hashing import file_sha256, sha256_bytes
from xtalbase.platform.repositories import chunks
from xtalbase.platform.runner import Runner
from xtalbase.schema import Structure

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

#: Records of a multi-record file per worker task.
RECORDS_PER_TASK = 100
#: CIF, MLIP JSON and extended XYZ files at least this large are split into shares of records by the main
#: process, so that a 100,000-block ICSD export is parsed by every worker, with progress and a commit per batch;
#: smaller ones go to one worker whole. CSV files are always split.
SPLIT_BYTES = 1 << 20
#: Files per worker task (amortises the inter-process round trip).
FILES_PER_TASK = 16
#: Tasks outstanding per worker: enough queued work that workers stay busy while the main
#: process writes a batch (a 500-record transaction takes a few hundred ms).
TASKS_IN_FLIGHT_PER_WORKER = 8
#: Skipped paths shown by name in the summary (``skipped_examples``); all are counted in ``skipped``.
SKIPPED_EXAMPLES = 10

__all__ = ["IngestReport", "find_files", "ingest", "prepare_units"]


@dataclass
class IngestReport:
    """What one ingest did. ``to_dict()`` has exactly the keys of ``xtalbase ingest --json``.

    ``inserted``: records that created a new structure row; ``duplicates``: records
    whose structure was already stored (or already ingested from the same file);
    ``quarantined``: rejected records, by reason code. ``seconds``: wall time. Every run keeps
    ``read == inserted + duplicates + quarantined``. ``skipped``: paths met but not read (a loop of symbolic
    links, no read permission, a FIFO or device), with up to :data:`SKIPPED_EXAMPLES` of them in
    ``skipped_examples`` as ``{"path", "why"}``.
    """

    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    run_id: Optional[int] = None
    seconds: float = 0.0
    skipped: int = 0
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    structure_ids: list[int] = field(default_factory=list, repr=False)
    #: Things the user should know that are not errors (also issued as ``UserWarning``).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (new structure ids and notes left out; the skipped paths as one key,
        ``skipped: {"count", "examples"}``)."""
        out = asdict(self)
        out.pop("structure_ids")
        out.pop("notes")
        out["skipped"] = {"count": self.skipped, "examples": out.pop("skipped_examples")}
        return out


def _failed_unit(path: Path, walk: Walk) -> Optional[FailedUnit]:
    if path in walk.refused:
        return FailedUnit(str(path), "unsafe_path", walk.refused[path])
    if path in walk.undetected:
        return FailedUnit(str(path), walk.reasons.get(path, "parse_error"), walk.undetected[path])
    return None


def _hash_or_marker(path: Path, refused: bool = False) -> tuple[str, bool]:
    """``(SHA-256, True)``, or for a file that cannot be read now (no permission, deleted since it was found) a
    stand-in hash and ``False``: its worker then fails to read it and quarantines it as ``parse_error``, and the
    other files are stored. A ``refused`` file (a link leaving the tree) is never opened: its hash is its name's."""
    if refused:
        return sha256_bytes(f"unsafe:{path}".encode("utf-8", "surrogateescape")), False
    try:
        return file_sha256(path), True
    except OSError:
        return sha256_bytes(f"unreadable:{path}".encode("utf-8", "surrogateescape")), False


@dataclass(frozen=True)
class FailedUnit:
    """A file the main process already knows to quarantine (a link leaving the tree, a format that could not be
    told): its worker turns it into one quarantine item without opening the file."""

    path: str
    reason: str
    message: str


def prepare_units(units: list[WorkUnit | FailedUnit], options: PrepareOptions) -> list[list[dict[str, Any]]]:
    """Worker entry point: prepare several units in one call; one unit's failure never reaches the others."""
    return [_prepare_isolated(u, options) for u in units]


def _prepare_isolated(unit: WorkUnit | FailedUnit, options: PrepareOptions) -> list[dict[str, Any]]:
    """``prepare_unit``, with any exception but an interrupt turned into a quarantine item for the unit, and a
    whole file that yields nothing quarantined too (never a silent empty result)."""
    if isinstance(unit, FailedUnit):
        return [quarantine_item("file", unit.reason, unit.message, None)]
    try:
        items = prepare_unit(unit, options)
    except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError, OverflowError, UnicodeError, a reader bug
        reason = failure_reason(exc)
        return [quarantine_item(_unit_locator(unit), reason,
                                f"{unit.path}: {unit.format or 'format detection'} failed: {type(exc).__name__}: "
                                f"{str(exc)[:300]}", None)]
    if not items and not unit.rows:  # a whole file, or the one empty share of a file split into none
        return [_nothing_read(unit)]
    return items


def _unit_locator(unit: WorkUnit) -> str:
    """``file`` for a whole file, else the first and last locators of the share."""
    locate = share_locator(unit.format) if unit.rows and unit.format in FORMATS else None
    if locate is None:
        return "file"
    try:
        return f"share {locate(unit.rows[0])}..{locate(unit.rows[-1])}"[:255]
    except Exception:  # noqa: BLE001 - a locator of an odd item must not hide the failure being reported
        return "share"


def _nothing_read(unit: WorkUnit) -> dict[str, Any]:
    """The quarantine item of a whole file from which its reader yielded no record at all."""
    try:
        with open_text(unit.path) as fh:
            text: str | None = fh.read(MAX_RAW_TEXT + 1)
    except Exception:  # noqa: BLE001 - the reader already read it once; only the raw text is lost
        text = None
    if text is not None and not text.strip():
        return quarantine_item("file", "truncated_file", f"{unit.path}: the file is empty (or only white space)", text)
    raw = text if text is not None and len(text) <= MAX_RAW_TEXT else None
    return quarantine_item("file", "missing_cell", f"{unit.path}: the {unit.format} reader found no structure in it "
                                                   f"(no cell: cut before its first record, or no structure at all)", raw)


def ingest(db: "Database", paths: Sequence[str | Path] | str | Path, options: Optional[IngestOptions] = None, *,
           on_progress: Optional[Callable[[float, int], None]] = None, **kwargs: Any) -> IngestReport:
    """Read, validate, deduplicate and store structure and DFT files.

    Parameters
    ----------
    paths : path or list of paths
        Files or directories (recursed).
    options : IngestOptions, optional
        Every setting of the run (:class:`xtalbase.ingest.options.IngestOptions`: format, source, workers,
        symprec, symmetry_engine, validation thresholds, ...); defaults when omitted.
    on_progress : callable, optional
        Called as ``on_progress(files_done, files_total)`` after each worker task; ``files_done`` counts a
        file split into shares by the fraction of its shares done (a float).
    **kwargs
        Options by name, replacing those of ``options`` (``workers=2``); an unknown name is an error.

    Returns
    -------
    IngestReport
    """
    started = time.perf_counter()
    opts = IngestOptions.from_kwargs(options, **kwargs)
    db.require_schema()
    hints: dict[Path, str] = {}
    walk = Walk()
    # the main process reads files too (format detection, the rows of a CSV, the records of a large file to
    # share out): under the run's cap, as the workers are
    prepare = opts.prepare()
    cap = prepare.max_decompressed_bytes
    with decompression_cap(cap):
        files = find_files(paths, opts.format, hints, walk)
    # keys of an older recipe would never meet the new ones: every stored structure would be stored again
    rehashed = rehash_outdated(db, opts.symmetry_engine)
    params = {"paths": [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)], **opts.run_params(),
              "files": len(files), "rehashed": rehashed}
    report = IngestReport(skipped=walk.skipped_count,
                          skipped_examples=[{"path": p, "why": why} for p, why in walk.skipped[:SKIPPED_EXAMPLES]])
    if walk.skipped_count:
        params["skipped"] = walk.skipped_count
    other = _other_symprecs(db, opts.symprec)
    if other:
        params["other_symprecs"] = other
        report.notes.append(
            f"this database holds structures keyed at symprec {', '.join(f'{t:g}' for t in other)} Å; this run keys at "
            f"{opts.symprec:g} Å, and a structure keyed at another tolerance may not be recognised as a duplicate: "
            f"keep one symprec per database")
        warnings.warn(report.notes[-1], UserWarning, stacklevel=2)
    reasons: Counter = Counter()
    batch_size = opts.batch_size
    with db.run("ingest", params) as run:
        report.run_id = run.id
        for p in params["paths"]:
            run.link_input("path", path=p)
        # the key (file infos, files finished) stays here; the units and settings go to a worker
        # a cluster's workers run elsewhere, in another working directory: they get each file's absolute path
        # (its stored file_path stays as given)
        on_cluster = resolve_scheduler(opts.scheduler) is not None
        tasks = (((infos, finished), (units, prepare))
                 for infos, units, finished in _tasks(db, files, opts.source, opts.licence, hints, walk,
                                                      absolute=on_cluster))
        pending: list[tuple[FileInfo, dict[str, Any]]] = []
        done_files = Fraction(0)  # exact: float shares of many files would end above or below the count
        matcher = Matcher()  # one per run: reduced cells of compared structures are kept across batches
        # the lazy tasks split CSV and large files here, in the main process, as the runner asks for them
        with decompression_cap(cap), Runner(prepare_units, workers=opts.workers, scheduler=opts.scheduler,
                                            name="ingest", in_flight=max(2, TASKS_IN_FLIGHT_PER_WORKER * opts.workers),
                                            budget=opts.budget(), retry=pass_over) as runner:
            for (infos, finished), results in runner.map(tasks):
                for info, items in zip(infos, results):
                    pending.extend((info, item) for item in items)
                done_files += finished
                while len(pending) >= batch_size:  # exactly batch_size records per transaction
                    _flush(db, run.id, pending[:batch_size], report, reasons, matcher)
                    pending = pending[batch_size:]
                if on_progress:
                    on_progress(float(done_files), len(files))
            _flush(db, run.id, pending, report, reasons, matcher)
        report.quarantined_by_reason = dict(sorted(reasons.items()))
        report.seconds = round(time.perf_counter() - started, 3)
        run.summary = report.to_dict()
    if opts.xrd and report.structure_ids:
        from xtalbase.xrd.builder import compute_missing

        compute_missing(db, structure_ids=report.structure_ids, workers=opts.workers, scheduler=opts.scheduler)
        report.seconds = round(time.perf_counter() - started, 3)
    return report


def _other_symprecs(db: "Database", symprec: float) -> list[float]:
    """The symprec values of stored structures other than ``symprec`` (canonical keys depend on it)."""
    table = Structure.__table__
    with db.engine.connect() as conn:
        found = conn.execute(select(table.c.symprec).where(table.c.symprec.is_not(None)).distinct()).scalars().all()
    return sorted(t for t in found if not math.isclose(t, symprec, rel_tol=1e-9))


def _flush(db: "Database", run_id: int, pending: list, report: IngestReport, reasons: Counter,
           matcher: Matcher) -> None:
    if not pending:
        return
    with db.engine.begin() as conn:
        result = write_batch(conn, run_id, pending, matcher)
    report.read += len(pending)
    report.inserted += result.inserted
    report.duplicates += result.duplicates
    report.quarantined += sum(result.quarantined.values())
    reasons.update(result.quarantined)
    report.structure_ids.extend(result.new_structure_ids)


def _stored_locators(db: "Database", hashes: list[str]) -> dict[str, set[str]]:
    """Locators already stored as sources per file hash: skipped on a re-run.

    Quarantined records are read again: a later run may use other options
    (``allow_disorder``) that accept them; their quarantine row is not duplicated.
    """
    out: dict[str, set[str]] = {}
    with db.engine.connect() as conn:
        for chunk in chunks(hashes):
            stmt = select(SOURCES.c.file_hash, SOURCES.c.record_locator).where(SOURCES.c.file_hash.in_(chunk))
            for h, loc in conn.execute(stmt):
                out.setdefault(h, set()).add(loc)
    return out


def _tasks(db: "Database", files: list[tuple[Path, str | None]], source: Optional[str],
           licence: Optional[str], hints: dict[Path, str],
           walk: Optional[Walk] = None, *,
           absolute: bool = False) -> Iterator[tuple[list[FileInfo], list[WorkUnit | FailedUnit], Fraction | int]]:
    """Group files, and shares of the records of CSV files and of large CIF, MLIP JSON and extended XYZ files, into
    worker tasks, with already-stored records marked to skip.

    Files ``walk`` refused (links leaving the tree: never opened, hashed by name) or could not detect go as
    :class:`FailedUnit`.

    Yields ``(file infos, work units, files finished by this task)``; a share finishes its fraction of a file.
    With ``absolute`` the units name their files by absolute path (for workers in another directory).
    """
    step = 512
    walk = walk or Walk()
    group_infos: list[FileInfo] = []
    group_units: list[WorkUnit | FailedUnit] = []
    for start in range(0, len(files), step):
        chunk = files[start:start + step]
        hashes = [_hash_or_marker(path, refused=path in walk.refused) for path, _ in chunk]
        stored = _stored_locators(db, sorted({digest for digest, _ in hashes}))
        for (path, fmt), (digest, readable) in zip(chunk, hashes):
            info = FileInfo(printable(str(path)), digest, fmt or "unknown", source, licence, hints.get(path))
            where = os.path.abspath(path) if absolute else str(path)
            failed = _failed_unit(path, walk)
            skip = frozenset(stored.get(digest, ()))
            shares = _record_shares(path, fmt) if readable and failed is None else None
            if shares is not None:
                yield from _share_tasks(info, WorkUnit(where, fmt or "", skip), *shares)
                continue
            group_infos.append(info)
            group_units.append(failed or WorkUnit(where, fmt or "", skip))
            if len(group_units) >= FILES_PER_TASK:
                yield group_infos, group_units, len(group_units)
                group_infos, group_units = [], []
    if group_units:
        yield group_infos, group_units, len(group_units)


def _share_tasks(info: FileInfo, whole: WorkUnit, shares: Iterator[list[Any]],
                 count: Optional[int]) -> Iterator[tuple[list[FileInfo], list[WorkUnit], Fraction | int]]:
    """One task per share of ``whole``'s file; each share finishes ``1/count`` of it (all of it at the last share
    when the count is not known in advance: a streamed file).

    A share's unit skips only its own stored records: a re-run of a 190,000-block export would otherwise pickle
    all 190,000 locators into each of its 1,900 tasks (7 GB through the pipes).
    """
    locate = share_locator(whole.format)
    step = Fraction(0) if count is None else Fraction(1, count)
    done, previous = 0, None
    for share in shares:
        if previous is not None:
            done += 1
            yield [info], [_share_unit(whole, previous, locate)], step
        previous = share
    yield [info], [_share_unit(whole, previous or [], locate)], 1 - done * step


def _share_unit(whole: WorkUnit, share: list[Any], locate: Optional[Callable[[Any], str]]) -> WorkUnit:
    skip = whole.skip
    if skip and locate is not None:
        skip = frozenset(found for found in map(locate, share) if found in whole.skip)
    return WorkUnit(whole.path, whole.format, skip, share)


def _record_shares(path: Path, fmt: Optional[str]) -> Optional[tuple[Iterator[list[Any]], Optional[int]]]:
    """A multi-record file's records in shares of :data:`RECORDS_PER_TASK` and the number of shares (``None`` when
    the reader streams them), or ``None`` to give the file to one worker.

    Formats with ``always_split`` (CSV) are always split; other formats with a ``split`` (CIF, MLIP JSON,
    extended XYZ) from :data:`SPLIT_BYTES` on, when they hold more than one share of records.
    """
    split = splitter(fmt) if fmt else None
    if split is None:
        return None
    always = FORMATS[fmt].always_split
    try:
        if not always and path.stat().st_size < SPLIT_BYTES:
            return None
        items = split(path)
        if items is None:
            return None
        counted = len(items) if isinstance(items, list) else None
        items = iter(items)
        head = list(islice(items, RECORDS_PER_TASK + 1))
    except Exception:  # noqa: BLE001 - undecodable, not JSON, cut short: the worker reading it whole says why
        return None
    if not always and len(head) <= RECORDS_PER_TASK:
        return None
    count = None if counted is None else max(1, math.ceil(counted / RECORDS_PER_TASK))
    return _in_shares(head, items), count


def _in_shares(head: list[Any], rest: Iterator[Any]) -> Iterator[list[Any]]:
    items = chain(head, rest)
    while share := list(islice(items, RECORDS_PER_TASK)):
        yield share
