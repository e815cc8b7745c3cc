"""Budgets of ingest workers (docs/ingest.md "Budgets"): a record past its time or memory is quarantined
(``timeout``, ``memory_limit``), its worker replaced and the run goes on; an ingest stuck on a record stops at
once on SIGINT or SIGTERM, with one worker too.

The stuck records are made by hand: ``prepare_record`` (or the reader) of one named file spins in C code
(``sum(itertools.repeat(0))`` never returns and runs no signal handler, as pymatgen's neighbour search on a
degenerate cell did), sleeps, allocates 2 GiB or kills its own process. The workers are forked, so the
monkeypatched functions are theirs too.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from sqlalchemy import select

from tests.conftest import ROOT
from tests.ingest.helpers import CIF, DATA
from xtalbase.ingest import prepare
from xtalbase.schema import Quarantine, Run


def _spin() -> None:
    sum(itertools.repeat(0))  # a C loop: no Python signal handler runs until it returns, and it never does


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CaO.cif", "CaTiO3.cif", "1000017.cif"):
        (folder / name).write_bytes((CIF / name).read_bytes())
    return folder


@pytest.fixture
def on_record(monkeypatch, tmp_path) -> Callable[..., Path]:
    """``on_record(action, file_name, locator=None)``: ``prepare_record`` runs ``action`` first for that record.

    Returns a log file where each worker call writes ``pid file locator`` before acting.
    """
    log = tmp_path / "calls.log"

    def install(action: Callable[[], object], name: str, locator: Optional[str] = None) -> Path:
        original = prepare.prepare_record

        def patched(record, options, path):
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()} {Path(path).name} {record.locator}\n")
            if Path(path).name == name and locator in (None, record.locator):
                action()
            return original(record, options, path)

        monkeypatch.setattr(prepare, "prepare_record", patched)
        return log

    return install


def _quarantined(db) -> list[Quarantine]:
    with db.session() as s:
        return list(s.scalars(select(Quarantine).order_by(Quarantine.id)))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_record_stuck_in_c_code_is_quarantined_as_timeout_and_the_run_goes_on(db, tmp_path, on_record, workers):
    on_record(_spin, "CaTiO3.cif")
    folder = _folder(tmp_path)
    started = time.monotonic()
    report = db.ingest(folder, workers=workers, record_timeout=2)
    assert time.monotonic() - started < 60
    assert (report.read, report.inserted, report.quarantined_by_reason) == (3, 2, {"timeout": 1})
    (row,) = _quarantined(db)
    assert row.file_path.endswith("CaTiO3.cif") and row.record_locator.startswith("block=")
    assert "record_timeout" in row.message and "past the per-record budget" in row.message
    again = db.ingest(folder, workers=workers, record_timeout=2)  # a re-run reads the quarantined record again
    assert (again.inserted, again.quarantined) == (0, 1) and len(_quarantined(db)) == 1


def test_the_other_records_of_a_stuck_task_are_run_again(db, tmp_path, on_record):
    path = DATA / "extxyz" / "sic_dft.xyz"  # 8 frames: one worker task
    on_record(lambda: time.sleep(3600), path.name, "frame=3")
    report = db.ingest(path, workers=2, record_timeout=2)
    assert report.read == 8 and report.quarantined_by_reason == {"timeout": 1}
    assert report.inserted + report.duplicates == 7
    (row,) = _quarantined(db)
    assert row.record_locator == "frame=3"


def test_a_reader_stuck_in_a_file_quarantines_the_rest_of_that_file(db, tmp_path, monkeypatch):
    original = prepare.read_structures

    def stuck_reading(path, *args, **kwargs):
        for item in original(path, *args, **kwargs):
            if Path(path).name == "CaO.cif":
                _spin()
            yield item

    monkeypatch.setattr(prepare, "read_structures", stuck_reading)
    report = db.ingest(_folder(tmp_path), record_timeout=2)
    assert (report.read, report.inserted, report.quarantined_by_reason) == (3, 2, {"timeout": 1})
    (row,) = _quarantined(db)
    assert row.file_path.endswith("CaO.cif") and row.record_locator == "file" and "reading after" in row.message


def test_a_record_past_the_memory_cap_is_quarantined_and_its_worker_replaced(db, tmp_path, on_record, monkeypatch):
    from xtalbase.ingest import pipeline

    monkeypatch.setattr(pipeline, "FILES_PER_TASK", 1)  # one task per file, to see which worker runs each
    log = on_record(lambda: bytearray(2 << 30), "1000017.cif")  # 2 GiB under a 512 MiB cap
    report = db.ingest(_folder(tmp_path), worker_memory=512)
    assert (report.read, report.inserted, report.quarantined_by_reason) == (3, 2, {"memory_limit": 1})
    (row,) = _quarantined(db)
    assert row.file_path.endswith("1000017.cif") and "MemoryError" in row.message
    calls = [line.split() for line in log.read_text().splitlines()]
    assert [name for _, name, _ in calls] == ["1000017.cif", "CaO.cif", "CaTiO3.cif"]  # in sorted order
    pids = [int(pid) for pid, _, _ in calls]
    # worker processes; the next task goes to a new one, as a heap after a MemoryError is not trusted
    assert os.getpid() not in pids and pids[0] != pids[1] == pids[2]


def test_a_reader_past_the_memory_cap_quarantines_its_file(db, tmp_path, monkeypatch):
    from xtalbase.ingest import formats

    original = formats.reader

    def hungry(fmt):
        read = original(fmt)

        def read_hungry(path, **options):
            if path.name == "CaO.cif":
                bytearray(2 << 30)  # as an OUTCAR's `ions per type = 1000000000` once allocated
            yield from read(path, **options)

        return read_hungry

    monkeypatch.setattr(formats, "reader", hungry)
    report = db.ingest(_folder(tmp_path), worker_memory=512)
    assert (report.read, report.inserted, report.quarantined_by_reason) == (3, 2, {"memory_limit": 1})
    (row,) = _quarantined(db)
    assert row.file_path.endswith("CaO.cif") and row.record_locator == "file" and "ran out of memory" in row.message


def test_a_worker_that_dies_on_a_record_is_replaced_and_the_record_quarantined(db, tmp_path, on_record):
    log = on_record(lambda: os.kill(os.getpid(), signal.SIGKILL), "CaO.cif")
    report = db.ingest(_folder(tmp_path), workers=1)
    assert (report.read, report.inserted, report.quarantined_by_reason) == (3, 2, {"memory_limit": 1})
    (row,) = _quarantined(db)
    assert row.file_path.endswith("CaO.cif") and "SIGKILL" in row.message
    pids = {int(line.split()[0]) for line in log.read_text().splitlines()}
    assert len(pids) == 2 and os.getpid() not in pids  # the task ran again on a new worker


def test_without_budgets_one_worker_runs_records_in_this_process(db, tmp_path, on_record):
    log = on_record(lambda: None, "none")
    db.ingest(_folder(tmp_path), record_timeout=0, worker_memory=0)
    assert {int(line.split()[0]) for line in log.read_text().splitlines()} == {os.getpid()}


@pytest.mark.parametrize("bad", [{"record_timeout": -1}, {"worker_memory": -5}, {"record_timeout": float("nan")}])
def test_budgets_must_not_be_negative(db, bad):
    from xtalbase.errors import XtalbaseError

    with pytest.raises(XtalbaseError, match="must be 0 \\(no limit\\) or more"):
        db.ingest(CIF / "CaO.cif", **bad)


_STUCK_CLI = """
import itertools, pathlib, signal, sys
from xtalbase.ingest import prepare
from xtalbase import cli
# a test run in the background inherits SIGINT ignored (bash does that to `&` jobs); a terminal's Ctrl-C is not
signal.signal(signal.SIGINT, signal.default_int_handler)
original = prepare.prepare_record
def stuck(record, options, path):
    if path.endswith("CaTiO3.cif"):
        pathlib.Path(sys.argv[1]).write_text("stuck")
        sum(itertools.repeat(0))
    return original(record, options, path)
prepare.prepare_record = stuck
cli.main(sys.argv[2:])
"""


def _descendants(pid: int) -> list[int]:
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out += [int(child), *_descendants(int(child))]
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads worker pids from /proc (Linux)")
@pytest.mark.parametrize(("signum", "code", "said"), [(signal.SIGINT, 130, "aborted"), (signal.SIGTERM, 143, "terminated")])
def test_an_ingest_with_one_worker_stuck_on_a_record_stops_at_a_signal(db, tmp_path, signum, code, said):
    marker = tmp_path / "stuck"
    argv = [sys.executable, "-c", _STUCK_CLI, str(marker), "ingest", str(_folder(tmp_path)), "--workers", "1",
            "--db", db.url]
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate()
        workers = _descendants(proc.pid)
        time.sleep(0.5)  # well inside the C loop
        os.kill(proc.pid, signum)  # to the main process only, as `kill PID` sends it
        _, err = proc.communicate(timeout=30)  # the old inline worker never returned from the loop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code and said in err, (proc.returncode, err[-2000:])
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the interrupted ingest"
    with db.session() as s:
        (run,) = s.scalars(select(Run).where(Run.kind == "ingest")).all()
    assert run.status == "failed"


def _squares(items: list[int], passed: frozenset[int]) -> list:
    from xtalbase.platform.budgets import mark

    out = []
    for x in items:
        mark(str(x))
        if x in passed:
            out.append(None)
            continue
        while x == 2:  # a pure-Python loop: the worker's own timers could stop it, the budget does not need them
            pass
        out.append(x * x)
    return out


def test_the_runner_runs_a_task_again_without_the_item_past_its_budget():
    from xtalbase.platform.budgets import Budget, BudgetExceeded
    from xtalbase.platform.runner import Runner

    def retry(args, exceeded):
        return args[0], args[1] | {int(exceeded.label)}

    tasks = [("a", ([1, 2, 3], frozenset())), ("b", ([4], frozenset()))]
    with Runner(_squares, workers=1, budget=Budget(timeout=1), retry=retry) as runner:
        assert list(runner.map(tasks)) == [("a", [1, None, 9]), ("b", [16])]
    with pytest.raises(BudgetExceeded, match="past the 1 s budget") as caught:
        with Runner(_squares, workers=2, budget=Budget(timeout=1)) as runner:
            list(runner.map(tasks))
    assert (caught.value.reason, caught.value.label) == ("timeout", "2")


def test_a_stuck_record_in_a_file_whose_name_is_not_utf8_is_still_passed_over(db, tmp_path, monkeypatch):
    """The worker's mark carries the path through shared memory: a non-UTF-8 name must come back exactly,
    or the parent cannot tell which record to pass over and the whole run fails."""
    folder = _folder(tmp_path)
    name = os.fsdecode(b"slow\xe9.cif")
    (folder / "CaTiO3.cif").rename(folder / name)
    original = prepare.prepare_record

    def patched(record, options, path):
        if Path(path).name == name:
            _spin()
        return original(record, options, path)

    monkeypatch.setattr(prepare, "prepare_record", patched)
    report = db.ingest(folder, workers=1, record_timeout=2)
    assert (report.read, report.inserted, report.quarantined_by_reason) == (3, 2, {"timeout": 1})
