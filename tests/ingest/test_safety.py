"""Crash safety and concurrency: a SIGKILLed ingest leaves whole batches and resumes; two ingests at once do not collide."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import ROOT
from tests.ingest.helpers import CIF, DATA, count
from xtalbase.schema import Run, Source, SourceProperty, Structure

BATCH = 40


def _big_csv(tmp_path: Path, copies: int = 60) -> Path:
    """The 20 real perov5 rows repeated under new material ids: 1,200 records of 20 distinct structures."""
    csv.field_size_limit(sys.maxsize)
    with open(DATA / "perov5_head.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    path = tmp_path / "perov5_repeated.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for k in range(copies):
            for row in rows:
                writer.writerow({**row, "material_id": f"{row['material_id']}-{k}"})
    return path


def _ingest_process(url: str, *paths: Path, batch: int = BATCH) -> subprocess.Popen:
    code = ("import sys, xtalbase; db = xtalbase.connect(sys.argv[1]); "
            f"print(db.ingest(sys.argv[2:], batch_size={batch}).to_dict())")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, url, *map(str, paths)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_leaves_whole_batches_and_a_rerun_completes(db, tmp_path):
    path = _big_csv(tmp_path)
    proc = _ingest_process(db.url, path)
    deadline = time.monotonic() + 120
    while count(db, Source) < 2 * BATCH and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = count(db, Source)
    assert stored % BATCH == 0 and 0 < stored < 1200, stored  # only whole batches survive
    assert count(db, SourceProperty) == 5 * stored  # every stored source has all its properties
    report = db.ingest(path, batch_size=BATCH)
    assert report.read == 1200 and report.duplicates == 1200 - report.inserted
    assert count(db, Source) == 1200 and count(db, Structure) == 20
    with db.session() as s:
        runs = {r.id: r for r in s.scalars(select(Run).where(Run.kind == "ingest"))}
        dup = s.execute(select(Source.file_hash, Source.record_locator, func.count()).group_by(
            Source.file_hash, Source.record_locator).having(func.count() > 1)).all()
    killed = min(runs)
    assert runs[killed].status == "failed" and "abandoned" in runs[killed].error
    assert runs[report.run_id].status == "succeeded" and dup == []


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(x) for x in fh.read().split()]


def _gone(pids: list[int], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.05)
    return False


def _start_with_workers(db, argv: list[str]) -> tuple[subprocess.Popen, list[int]]:
    """Start ``argv``; return it and its two worker pids once its first 500-record batch is stored."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while count(db, Source) < 500 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    workers = _children(proc.pid)
    assert len(workers) >= 2, workers
    return proc, workers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads worker pids from /proc (Linux)")
def test_sigterm_to_the_main_process_alone_fails_the_run_at_once_and_stops_its_workers(db, tmp_path):
    path = _big_csv(tmp_path, copies=400)  # 8,000 records: still running when the signal comes
    proc, workers = _start_with_workers(db, [sys.executable, "-m", "xtalbase.cli", "ingest", str(path), "--workers", "2",
                                             "--db", db.url])
    os.kill(proc.pid, signal.SIGTERM)  # to the pid only, as a service manager or `kill PID` sends it
    out, err = proc.communicate(timeout=60)  # returns only once no worker holds the pipes open
    assert proc.returncode == 143 and "terminated" in err, (proc.returncode, err[-2000:])
    assert _gone(workers)
    with db.session() as s:
        (run,) = s.scalars(select(Run).where(Run.kind == "ingest")).all()
    assert run.status == "failed" and "SIGTERM" in run.error  # marked by the run itself, not by the next start
    stored = count(db, Source)
    assert stored % 500 == 0 and 0 < stored < 8000
    assert count(db, SourceProperty) == 5 * stored
    assert db.ingest(path, workers=2).read == 8000 and count(db, Source) == 8000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads worker pids from /proc (Linux)")
def test_workers_end_when_their_main_process_is_killed(db, tmp_path):
    path = _big_csv(tmp_path, copies=400)
    code = "import sys, xtalbase; db = xtalbase.connect(sys.argv[1]); db.ingest(sys.argv[2], workers=2)"
    proc, workers = _start_with_workers(db, [sys.executable, "-c", code, db.url, str(path)])
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert _gone(workers), "worker processes outlived their killed main process"


def test_two_ingests_of_overlapping_inputs_at_once(db, tmp_path):
    path = _big_csv(tmp_path, copies=15)
    shared_inputs = [CIF, path]
    first = _ingest_process(db.url, *shared_inputs, DATA / "mp", batch=25)
    second = _ingest_process(db.url, DATA / "poscar", *shared_inputs, batch=25)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, [err[-2000:] for _, err in outs]
    with db.session() as s:
        dup_sources = s.execute(select(Source.file_hash, Source.record_locator).group_by(
            Source.file_hash, Source.record_locator).having(func.count() > 1)).all()
        dup_structures = s.execute(select(Structure.exact_hash).group_by(Structure.exact_hash).having(func.count() > 1)).all()
        structures = s.scalar(select(func.count()).select_from(Structure))
        sources = s.scalar(select(func.count()).select_from(Source))
    assert dup_sources == [] and dup_structures == []
    import xtalbase

    reference = xtalbase.connect(f"sqlite:///{tmp_path / 'serial.db'}")
    reference.init()
    reference.ingest([*shared_inputs, DATA / "mp", DATA / "poscar"])
    assert (structures, sources) == (count(reference, Structure), count(reference, Source))
    reference.close()


def test_a_file_gone_before_reading_is_quarantined_and_the_rest_stored(db, tmp_path, monkeypatch):
    from xtalbase.ingest import pipeline
    from xtalbase.schema import Quarantine

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CaO.cif", "CaTiO3.cif", "1000017.cif"):
        (folder / name).write_bytes((CIF / name).read_bytes())
    found = pipeline.find_files

    def then_delete(*args, **kwargs):  # a sync tool removes a file between discovery and reading
        out = found(*args, **kwargs)
        (folder / "CaTiO3.cif").unlink()
        return out

    monkeypatch.setattr(pipeline, "find_files", then_delete)
    report = db.ingest(folder)
    assert (report.read, report.inserted, report.quarantined_by_reason) == (3, 2, {"parse_error": 1})
    with db.session() as s:
        (row,) = s.scalars(select(Quarantine)).all()
    assert row.file_path.endswith("CaTiO3.cif") and "No such file" in row.message


def test_a_file_name_that_is_not_utf8_is_stored_with_escapes(db, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "CaO.cif").write_bytes((CIF / "CaO.cif").read_bytes())
    odd = folder / os.fsdecode(b"h\xe9matite.cif")  # Latin-1 bytes, as unzip writes names from Windows archives
    odd.write_bytes((CIF / "1000017.cif").read_bytes())
    report = db.ingest(folder)
    assert report.inserted == 2
    with db.session() as s:
        paths = sorted(s.scalars(select(Source.file_path)))
    assert paths == [str(folder / "CaO.cif"), str(folder) + "/h\\xe9matite.cif"]
    assert db.ingest(folder).inserted == 0  # the re-run finds both by file hash


def test_symprec_must_be_positive(db):
    import pytest

    from xtalbase.errors import XtalbaseError

    for bad in (0.0, -0.01):
        with pytest.raises(XtalbaseError, match="symprec must be a positive"):
            db.ingest(CIF / "CaO.cif", symprec=bad)


def test_symlinked_folders_are_walked_once_and_a_broken_link_is_quarantined(db, tmp_path):
    from xtalbase.schema import Quarantine

    folder, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "CaO.cif").write_bytes((CIF / "CaO.cif").read_bytes())
    for name in ("CaTiO3.cif", "1000017.cif"):
        (elsewhere / name).write_bytes((CIF / name).read_bytes())
    (folder / "linked").symlink_to(elsewhere)  # shared runs kept elsewhere, linked into the project folder
    (folder / "again").symlink_to(elsewhere)  # a second way into the same folder: read once
    (folder / "loop").symlink_to(folder)  # a link back up the tree: not followed round
    (folder / "gone.cif").symlink_to(tmp_path / "deleted.cif")
    (folder / "notes.txt").symlink_to(tmp_path / "deleted.txt")  # broken, but not a structure by its name
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "CaO-checkpoint.cif").write_bytes((CIF / "CaO.cif").read_bytes())

    report = db.ingest(folder)
    assert (report.read, report.inserted, report.quarantined_by_reason) == (4, 3, {"parse_error": 1})
    with db.session() as s:
        (row,) = s.scalars(select(Quarantine)).all()
        paths = sorted(s.scalars(select(Source.file_path)))
    assert row.file_path.endswith("gone.cif") and "broken symbolic link" in row.message and "deleted.cif" in row.message
    assert paths == [str(folder / "CaO.cif"), str(folder / "again" / "1000017.cif"), str(folder / "again" / "CaTiO3.cif")]
    assert db.ingest(folder).inserted == 0


def test_an_ingest_at_another_symprec_says_that_duplicates_may_be_missed(db, tmp_path):
    import warnings

    assert db.ingest(CIF / "CaO.cif").notes == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = db.ingest(CIF / "CaTiO3.cif", symprec=0.1)
    assert len(report.notes) == 1 and "symprec 0.01 Å" in report.notes[0] and "0.1 Å" in report.notes[0]
    assert [str(w.message) for w in caught if w.category is UserWarning] == report.notes
    assert "notes" not in report.to_dict()  # --json keeps exactly its keys
    proc = subprocess.run([sys.executable, "-m", "xtalbase.cli", "ingest", str(CIF / "1000017.cif"), "--json",
                           "--db", db.url], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0 and proc.stderr.count("note: this database holds structures keyed at symprec 0.1 Å") == 1
