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
import stat
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from sqlalchemy import select

from xtalbase.errors import XtalbaseError
from xtalbase.ingest.formats import FORMATS, detect_format, never_a_structure, share_locator, splitter
from xtalbase.ingest.matching import Matcher
from xtalbase.ingest.options import IngestOptions
from xtalbase.ingest.prepare import PrepareOptions, WorkUnit, pass_over, prepare_unit
from xtalbase.ingest.rehash import rehash_outdated
from xtalbase.ingest.writer import SOURCES, FileInfo, printable, write_batch
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


@dataclass
class IngestReport:
    """What one ingest did. ``to_dict()`` has exactly the keys of ``xtalbase ingest --json``.

    ``inserted``: records that created a new structure row; ``duplicates``: records
    whose structure was already stored (or already ingested from the same file);
    ``quarantined``: rejected records, by reason code. ``seconds``: wall time.
    """

    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    run_id: Optional[int] = None
    seconds: float = 0.0
    structure_ids: list[int] = field(default_factory=list, repr=False)
    #: Things the user should know that are not errors (also issued as ``UserWarning``).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (new structure ids and notes left out)."""
        out = asdict(self)
        out.pop("structure_ids")
        out.pop("notes")
        return out


def find_files(paths: Sequence[str | Path] | str | Path, format: Optional[str] = None,
               hints: Optional[dict[Path, str]] = None) -> list[tuple[Path, str | None]]:
    """Expand ``paths`` (directories recurse, sorted) into ``(file, format)``; unknown files inside folders are skipped.

    An explicitly named file of unknown format is kept (format ``None``) so that it
    is quarantined with a reason instead of silently ignored. ``format`` forces the
    reader of every named file and of the files inside folders, except those that are
    never structures (:func:`~xtalbase.ingest.formats.never_a_structure`). ``hints``,
    when given, is filled with each file's path from the named folder down (the folder
    names that may tell its source database; never the folders above what was named).
    """
    if format is not None and format not in FORMATS:  # before the walk, which may take minutes on a large tree
        raise XtalbaseError(f"unknown format {format!r}: choose one of {', '.join(sorted(FORMATS))}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[tuple[Path, str | None]] = []
    seen: set[tuple[int, int]] = set()  # (device, inode): a file given twice, or by two names, is read once
    for given in paths:
        path = Path(given)
        try:
            st = path.stat()
        except OSError:
            raise XtalbaseError(f"no such file or directory: {path}") from None
        if stat.S_ISDIR(st.st_mode):
            found = []
            for child, child_st in _walk(path):
                # a forced format applies to the structure files of a folder, never to its INCAR, POTCAR or images
                fmt = (None if never_a_structure(child) else format) if format else detect_format(child)
                if fmt is not None:
                    found.append((child, fmt, child_st))
        elif stat.S_ISREG(st.st_mode):
            found = [(path, format or detect_format(path), st)]
        else:
            raise XtalbaseError(f"not a regular file or directory: {path}")
        for child, fmt, child_st in found:  # one stat per file: its type, then its identity
            if (child_st.st_dev, child_st.st_ino) not in seen:
                seen.add((child_st.st_dev, child_st.st_ino))
                out.append((child, fmt))
                if hints is not None:
                    hints[child] = str(Path(path.resolve().name) / child.relative_to(path)) if child != path else child.name
    return out


def _walk(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """``(file, its stat)`` under ``folder`` in sorted path order, through symlinked folders, each folder once.

    Names starting with ``.`` (files and folders: ``.git``, ``.ipynb_checkpoints`` copies) are left out. A
    broken link comes with its own ``lstat``: kept like a file, its reader says it is broken. A link back up the
    tree (a loop) or a second way into a folder already walked is not followed again.
    """
    seen: set[tuple[int, int]] = set()

    def visit(directory: Path, st: os.stat_result) -> Iterator[tuple[Path, os.stat_result]]:
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            names = sorted(entry.name for entry in os.scandir(directory) if not entry.name.startswith("."))
        except OSError:  # unreadable folder: nothing in it can be read either
            return
        for name in names:
            child = directory / name
            try:
                child_st = child.stat()
            except FileNotFoundError:
                if child.is_symlink():
                    yield child, child.lstat()
                continue
            except OSError:  # gone meanwhile, or a link loop (ELOOP)
                continue
            if stat.S_ISDIR(child_st.st_mode):
                yield from visit(child, child_st)
            elif stat.S_ISREG(child_st.st_mode):
                yield child, child_st

    yield from visit(folder, folder.stat())


def _hash_or_marker(path: Path) -> tuple[str, bool]:
    """``(SHA-256, True)``, or for a file that cannot be read now (no permission, deleted since it was found) a
    stand-in hash and ``False``: its worker then fails to read it and quarantines it as ``parse_error``, and the
    other files are stored."""
    try:
        return file_sha256(path), True
    except OSError:
        return sha256_bytes(f"unreadable:{path}".encode("utf-8", "surrogateescape")), False


def prepare_units(units: list[WorkUnit], options: PrepareOptions) -> list[list[dict[str, Any]]]:
    """Worker entry point: prepare several units in one call."""
    return [prepare_unit(u, options) for u in units]


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
    files = find_files(paths, opts.format, hints)
    # keys of an older recipe would never meet the new ones: every stored structure would be stored again
    rehashed = rehash_outdated(db, opts.symmetry_engine)
    prepare = opts.prepare()
    params = {"paths": [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)], **opts.run_params(),
              "files": len(files), "rehashed": rehashed}
    report = IngestReport()
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
        tasks = (((infos, finished), (units, prepare))
                 for infos, units, finished in _tasks(db, files, opts.source, opts.licence, hints))
        pending: list[tuple[FileInfo, dict[str, Any]]] = []
        done_files = Fraction(0)  # exact: float shares of many files would end above or below the count
        matcher = Matcher()  # one per run: reduced cells of compared structures are kept across batches
        with Runner(prepare_units, workers=opts.workers, scheduler=opts.scheduler, name="ingest",
                    in_flight=max(2, TASKS_IN_FLIGHT_PER_WORKER * opts.workers), budget=opts.budget(),
                    retry=pass_over) as runner:
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

        compute_missing(db, structure_ids=report.structure_ids, workers=opts.workers)
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
           licence: Optional[str], hints: dict[Path, str]) -> Iterator[tuple[list[FileInfo], list[WorkUnit], Fraction | int]]:
    """Group files, and shares of the records of CSV files and of large CIF, MLIP JSON and extended XYZ files, into
    worker tasks, with already-stored records marked to skip.

    Yields ``(file infos, work units, files finished by this task)``; a share finishes its fraction of a file.
    """
    step = 512
    group_infos: list[FileInfo] = []
    group_units: list[WorkUnit] = []
    for start in range(0, len(files), step):
        chunk = files[start:start + step]
        hashes = [_hash_or_marker(path) for path, _ in chunk]
        stored = _stored_locators(db, sorted({digest for digest, _ in hashes}))
        for (path, fmt), (digest, readable) in zip(chunk, hashes):
            info = FileInfo(printable(str(path)), digest, fmt or "unknown", source, licence, hints.get(path))
            skip = frozenset(stored.get(digest, ()))
            shares = _record_shares(path, fmt) if readable else None
            if shares is not None:
                yield from _share_tasks(info, WorkUnit(str(path), fmt or "", skip), *shares)
                continue
            group_infos.append(info)
            group_units.append(WorkUnit(str(path), fmt or "", skip))
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
