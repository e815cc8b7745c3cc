"""What must hold after ingesting any file, however broken; shared by the fuzz tests and ``bench/fuzz_campaign.py``.

:func:`ingest_and_check` ingests one path twice into an existing database and returns
the broken invariants as sentences (empty when all hold):

- the summary adds up: ``read = inserted + duplicates + quarantined``, and the run's
  structure and quarantine rows match ``inserted`` and ``quarantined``;
- every quarantine row has a known reason and a message;
- nothing non-finite is stored: cell lengths, angles, volume, density, the cell matrix
  and fractional coordinates, energies, forces, stress and numeric source properties;
- the second ingest of the same path adds no structure, source, property or calculation.

An unhandled exception is not caught here: the caller sees it (the fuzz test fails on
it; the campaign counts it as a crash).
"""

from __future__ import annotations

import math
import os
import pickle
import resource
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

#: Tables whose rows a re-ingest of the same file must not add to.
STORED_TABLES = ("structures", "sources", "source_properties", "calculations")


def _counts(conn: sa.Connection) -> dict[str, int]:
    return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in STORED_TABLES}


def _non_finite(name: str, values: Any) -> str | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=float)
    if np.isfinite(arr).all():
        return None
    return f"{name} not finite: {arr.ravel()[~np.isfinite(arr.ravel())][:3].tolist()}"


def stored_problems(conn: sa.Connection, run_id: int) -> list[str]:
    """Non-finite or malformed values among the rows that run ``run_id`` stored."""
    problems: list[str] = []
    rows = conn.execute(sa.text(
        "SELECT id, a, b, c, alpha, beta, gamma, volume, density, nsites, cell, numbers, frac_coords "
        "FROM structures WHERE run_id = :r"), {"r": run_id})
    for sid, a, b, c, al, be, ga, vol, dens, nsites, cell, numbers, frac in rows:
        where = f"structure {sid}"
        for name, value in (("cell", cell), ("frac_coords", frac)):
            problems.append(_non_finite(f"{where} {name}", np.frombuffer(bytes(value), "<f8")))
        problems.append(_non_finite(f"{where} a, b, c, alpha, beta, gamma, volume, density",
                                    [a, b, c, al, be, ga, vol, dens]))
        if len(bytes(numbers)) != nsites or len(bytes(frac)) != 24 * nsites or nsites < 1:
            problems.append(f"{where}: nsites {nsites} disagrees with its numbers/frac_coords arrays")
        elif not (vol or 0) > 0:
            problems.append(f"{where}: volume {vol} is not positive")
    rows = conn.execute(sa.text(
        "SELECT c.id, c.energy, c.energy_per_atom, c.forces, c.stress, s.nsites FROM calculations c "
        "JOIN structures s ON s.id = c.structure_id WHERE c.run_id = :r"), {"r": run_id})
    for cid, energy, epa, forces, stress, nsites in rows:
        where = f"calculation {cid}"
        problems.append(_non_finite(f"{where} energy, energy_per_atom",
                                    [v for v in (energy, epa) if v is not None]))
        if forces is not None:
            f = np.frombuffer(bytes(forces), "<f8")
            problems.append(_non_finite(f"{where} forces", f))
            if f.size != 3 * nsites:
                problems.append(f"{where}: {f.size // 3} force rows for {nsites} sites")
        if stress is not None:
            problems.append(_non_finite(f"{where} stress", np.frombuffer(bytes(stress), "<f8")))
    rows = conn.execute(sa.text(
        "SELECT p.source_id, p.name, p.value_float FROM source_properties p JOIN sources s ON s.id = p.source_id "
        "WHERE s.run_id = :r AND p.value_float IS NOT NULL"), {"r": run_id})
    for source_id, name, value in rows:
        if not math.isfinite(value):
            problems.append(f"source {source_id} property {name} stored as the float {value} (non-finite is kept as text)")
    return [p for p in problems if p]


def quarantine_problems(conn: sa.Connection, run_id: int) -> list[str]:
    """Quarantine rows of run ``run_id`` without a known reason or without a message."""
    from xtalbase.ingest.records import REASONS

    problems = []
    rows = conn.execute(sa.text("SELECT id, reason, message FROM quarantine WHERE run_id = :r"), {"r": run_id})
    for qid, reason, message in rows:
        if reason not in REASONS:
            problems.append(f"quarantine {qid}: unknown reason {reason!r}")
        if not (message or "").strip():
            problems.append(f"quarantine {qid} ({reason}): empty message")
    return problems


def accounting_problems(conn: sa.Connection, report: Any, file_hash: str | None) -> list[str]:
    """Where ``report`` does not add up, or disagrees with the rows of its run and of the file (sha256 ``file_hash``)."""
    problems = []
    if report.read != report.inserted + report.duplicates + report.quarantined:
        problems.append(f"read {report.read} != inserted {report.inserted} + duplicates {report.duplicates} "
                        f"+ quarantined {report.quarantined}")
    if sum(report.quarantined_by_reason.values()) != report.quarantined:
        problems.append(f"quarantined_by_reason {report.quarantined_by_reason} does not sum to {report.quarantined}")
    n = conn.execute(sa.text("SELECT count(*) FROM structures WHERE run_id = :r"), {"r": report.run_id}).scalar_one()
    if n != report.inserted:
        problems.append(f"{n} structures rows in run {report.run_id}, the summary says {report.inserted}")
    # a quarantine row is unique per (file hash, record, reason): the same bytes quarantined by an earlier run keep theirs
    if file_hash is None:  # a folder: its files' rows
        n = conn.execute(sa.text("SELECT count(*) FROM quarantine WHERE run_id = :r"), {"r": report.run_id}).scalar_one()
    else:
        n = conn.execute(sa.text("SELECT count(*) FROM quarantine WHERE file_hash = :h"), {"h": file_hash}).scalar_one()
    if n < report.quarantined:
        problems.append(f"{n} quarantine rows for the file, the summary says {report.quarantined} records were quarantined")
    return problems


def ingest_and_check(db: Any, path: Path, **options: Any) -> tuple[Any, list[str]]:
    """Ingest ``path`` twice into ``db``; the first report and the broken invariants."""
    from xtalbase.platform.hashing import file_sha256

    with db.engine.connect() as conn:
        before = _counts(conn)
    report = db.ingest(path, **options)
    with db.engine.connect() as conn:
        problems = accounting_problems(conn, report, file_sha256(path) if path.is_file() else None) + quarantine_problems(conn, report.run_id)
        problems += stored_problems(conn, report.run_id)
        middle = _counts(conn)
    if middle["structures"] - before["structures"] != report.inserted:
        problems.append(f"{middle['structures'] - before['structures']} structures added, the summary says {report.inserted}")
    again = db.ingest(path, **options)
    with db.engine.connect() as conn:
        after = _counts(conn)
    added = {t: after[t] - middle[t] for t in STORED_TABLES if after[t] != middle[t]}
    if added or again.inserted:
        problems.append(f"re-ingest added rows {added} (inserted {again.inserted})")
    return report, problems


@dataclass
class Outcome:
    """How one isolated ingest ended: ``problems`` (broken invariants), ``error`` (an escaped exception, a hang, a
    kill), the first report's summary, and the child's wall time (s) and peak RSS (MiB)."""

    problems: list[str] = field(default_factory=list)
    error: str | None = None
    summary: dict[str, Any] | None = None
    seconds: float = 0.0
    peak_mib: float = 0.0


def isolated_ingest_and_check(url: str, path: Path, seconds: float, extra_bytes: int, **options: Any) -> Outcome:
    """:func:`ingest_and_check` in a forked child with a wall-clock limit and an address-space cap.

    The child may hang inside a C extension (where no signal handler runs) or allocate
    without bound; the parent kills it after ``seconds`` and its address space is capped at
    the parent's size plus ``extra_bytes``, so one bad example fails its test instead of
    stalling the suite or taking the shared machine.
    """
    with open("/proc/self/statm") as fh:
        cap = int(fh.read().split()[0]) * resource.getpagesize() + extra_bytes
    result_file = Path(tempfile.mkstemp(prefix="fuzz-outcome-")[1])
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
            result_file.write_bytes(pickle.dumps(_child(url, path, options)))
        except BaseException:  # noqa: B036 - whatever happens, the child exits here
            code = 1
        finally:
            os._exit(code)
    status, usage, hung = _wait(pid, start + seconds)
    outcome = Outcome(error=f"killed after {seconds:g} s (a hang)" if hung else None)
    if not hung:
        try:
            outcome = pickle.loads(result_file.read_bytes())
        except (OSError, EOFError, pickle.UnpicklingError):
            outcome = Outcome(error=f"the child died without a result (wait status {status})")
    result_file.unlink(missing_ok=True)
    outcome.seconds, outcome.peak_mib = time.perf_counter() - start, usage.ru_maxrss / 1024
    return outcome


def _child(url: str, path: Path, options: dict[str, Any]) -> Outcome:
    import xtalbase

    db = xtalbase.connect(url)  # a new engine: connections opened before the fork stay the parent's
    try:
        report, problems = ingest_and_check(db, path, **options)
        return Outcome(problems=problems, summary=report.to_dict())
    except BaseException as exc:  # noqa: B036 - an escaped exception is the finding
        frame = traceback.extract_tb(exc.__traceback__)[-1:] or [None]
        where = f" at {frame[0].filename}:{frame[0].lineno}" if frame[0] else ""
        return Outcome(error=f"{type(exc).__name__}: {str(exc)[:300]}{where}")
    finally:
        db.engine.dispose()


def _wait(pid: int, deadline: float) -> tuple[int, Any, bool]:
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, False
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage, True
        time.sleep(0.02)
