"""Bulk work on a real ``dask.distributed`` cluster: the rows it stores equal those of local workers.

One ``LocalCluster`` per module (TCP on loopback, two worker processes of one thread, each under a nanny). On it,
per backend: ingest of the ``tests/data/query`` structures, their XRD patterns and RDF descriptors against the same
work on two local worker processes (same structure ids, exact and canonical hashes, pattern bytes, vectors); the
same patterns when a worker busy with a task is killed mid-run (the scheduler runs its task again elsewhere, the
main process writes each result once); CSP matching and a potential's evaluation with the same numbers; an
unreachable scheduler as one line of error; relative ingest paths, queued tasks cancelled on an error, and workers
of another version or without xtalbase refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import BACKENDS, new_database_url, shared
from tests.platform.test_query_fixtures import N_STRUCTURES, QUERY_DATA, STRUCTURE_FOLDERS
from xtalbase.errors import XtalbaseError

distributed = pytest.importorskip("dask.distributed")

INPUTS = [QUERY_DATA / name for name in STRUCTURE_FOLDERS]
#: Structures per XRD task: several tasks per worker, so that killing one finds work in flight.
XRD_BATCH = 6


@contextlib.contextmanager
def local_cluster() -> Iterator[Any]:
    """Two worker processes of one thread, each under a nanny, talking TCP on loopback. Without the nanny's
    ``MALLOC_TRIM_THRESHOLD_=65536``, which made the potential's evaluation 3x slower (docs/scale.md); the nannies
    read the setting as they start, which may be after the cluster object is made, and a nanny leaves the variable
    in this process's environment, where the next cluster's workers would inherit it."""
    from unittest import mock

    import dask

    with mock.patch.dict(os.environ), dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        # dashboard on a free port: None still binds 8787, which another cluster (a test beside, a user's) may hold
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tcp",
                                      dashboard_address="127.0.0.1:0") as cluster:
            cluster.wait_for_workers(2, timeout=120)
            yield cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster() as local:
        yield local


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two databases on one backend, the same bulk work done on 2 local worker processes and on the cluster."""
    import xtalbase
    from xtalbase.xrd.builder import compute_missing

    folder = tmp_path_factory.mktemp("dask")
    (folder / "local").mkdir()
    (folder / "remote").mkdir()
    with new_database_url(request.param, folder / "local") as local_url, \
            new_database_url(request.param, folder / "remote") as remote_url:
        out: dict[str, Any] = {}
        for name, url, where in (("local", local_url, {"workers": 2}),
                                 ("remote", remote_url, {"scheduler": cluster.scheduler_address})):
            db = xtalbase.connect(url)
            db.init()
            report = db.ingest(INPUTS, **where)
            xrd = compute_missing(db, batch_size=XRD_BATCH, **where)
            frame = db.descriptors.frame(db.descriptors.recipe("rdf"), **where)
            out[name] = {"db": db, "ingest": report, "xrd": xrd, "rdf": frame}
        yield out
        for side in out.values():
            side["db"].close()


def structure_rows(db: Any) -> list[tuple]:
    from sqlalchemy import select

    from xtalbase.schema import Structure

    with db.session() as s:
        return list(s.execute(select(Structure.id, Structure.exact_hash, Structure.canonical_hash, Structure.formula_reduced,
                                     Structure.spacegroup_number).order_by(Structure.id)))


def pattern_hashes(db: Any) -> list[tuple[int, str]]:
    """``(structure id, sha256 of the peak arrays)`` of every computed pattern, in id order (duplicates kept)."""
    from sqlalchemy import select

    from xtalbase.schema import XrdPattern

    with db.session() as s:
        return sorted((p.structure_id, hashlib.sha256(bytes(p.two_theta) + bytes(p.intensity) + bytes(p.d_spacing)).hexdigest())
                      for p in s.scalars(select(XrdPattern)))


def test_the_cluster_stores_the_rows_local_workers_store(pair):
    local, remote = pair["local"], pair["remote"]
    counts = ("read", "inserted", "duplicates", "quarantined")
    assert [getattr(remote["ingest"], k) for k in counts] == [getattr(local["ingest"], k) for k in counts]
    assert remote["ingest"].inserted == N_STRUCTURES
    rows = structure_rows(remote["db"])
    assert rows == structure_rows(local["db"]) and len(rows) == N_STRUCTURES
    assert remote["xrd"]["computed"] == local["xrd"]["computed"] == N_STRUCTURES
    assert pattern_hashes(remote["db"]) == pattern_hashes(local["db"])
    assert [sid for sid, _ in pattern_hashes(remote["db"])] == [r[0] for r in rows]  # one pattern each
    assert remote["rdf"].index.tolist() == local["rdf"].index.tolist() == [r[0] for r in rows]
    assert (remote["rdf"].to_numpy() == local["rdf"].to_numpy()).all()


def test_a_worker_killed_mid_run_loses_no_pattern_and_writes_none_twice(pair):
    """SIGKILL to a worker process while it computes a task: the scheduler gives its tasks (and the results it held)
    to the live worker, and the main process writes every pattern once. A cluster of its own: the test must not
    wait for the nanny's new worker (once in four runs on a loaded machine it had not registered after 60 s)."""
    from sqlalchemy import delete

    from xtalbase.schema import XrdPattern, XrdPeak
    from xtalbase.xrd.builder import compute_missing

    db = pair["remote"]["db"]
    with db.session() as s:  # recompute every pattern: the rows to match are the local workers'
        s.execute(delete(XrdPeak))
        s.execute(delete(XrdPattern))
        s.commit()
    killed: list[tuple[str, int]] = []
    seen: list[int] = []
    with local_cluster() as cluster, distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        def kill_a_busy_worker(done: int, total: int) -> None:
            seen.append(done)
            deadline = time.monotonic() + 5
            while not killed and time.monotonic() < deadline:
                busy = sorted(w for w, keys in client.processing().items() if keys)
                if busy:
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((busy[0], pid))
                else:
                    time.sleep(0.01)

        summary = compute_missing(db, batch_size=XRD_BATCH, scheduler=cluster.scheduler_address, progress=kill_a_busy_worker)
    assert killed, "no worker was busy when the first batch was written"
    assert summary["computed"] == N_STRUCTURES and summary["failed"] == []
    assert len(seen) == -(-N_STRUCTURES // XRD_BATCH) and seen == sorted(set(seen))  # each batch written once
    assert seen[-1] == N_STRUCTURES
    assert pattern_hashes(db) == pattern_hashes(pair["local"]["db"])


def test_csp_matching_on_the_cluster_gives_the_local_rows(cluster):
    from tests.csp.helpers import arrays, reference_pairs
    from xtalbase.csp.matching import MatchSettings, MatchTask, match_all

    tasks = [MatchTask(i, arrays(p["ref"]), ((0, arrays(p["pred"])), (1, arrays(p["ref"]))), MatchSettings())
             for i, p in enumerate(reference_pairs()[:16])]

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    local = match_all(tasks, workers=1, timeout=None)
    assert strip(match_all(tasks, scheduler=cluster.scheduler_address)) == strip(local)
    assert {r["status"] for r in local} >= {"matched"}


def test_a_potential_evaluated_on_the_cluster_gives_the_local_numbers(cluster, tmp_path, monkeypatch):
    """The published n2p2 Mo potential on 6 configurations of the mlearn Mo test set (both surfaces, a vacancy,
    AIMD frames) in two tasks, through ``xtalbase potential evaluate``."""
    import json

    import torch
    from typer.testing import CliRunner

    import xtalbase
    from xtalbase.cli import app
    from xtalbase.mlip import evaluation

    data = shared("mlip", "mlearn", "Mo")
    rows = json.loads((data / "test.json").read_text())
    subset = tmp_path / "mo-test-6.json"
    subset.write_text(json.dumps([rows[k] for k in (15, 16, 0, 3, 4, 5)]))
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    db = xtalbase.connect(url)
    db.init()
    assert db.ingest([subset]).inserted == 6
    db.close()
    # tasks are cut here, in 4s: one forward pass each in the workers (BATCH 16 there) as in this process
    monkeypatch.setattr(evaluation, "BATCH", 4)
    monkeypatch.setattr(evaluation, "TASK_BATCHES", 1)
    runner = CliRunner()

    def cli(*args: str) -> dict:
        result = runner.invoke(app, ["--db", url, "potential", *args, "--json"])
        assert result.exit_code == 0, (args, result.output, result.exception)
        return json.loads(result.stdout)

    before = torch.get_num_threads()
    try:  # the commands run torch on --threads (default 1) here
        cli("import-n2p2", str(data / "nnp"), "--name", "mo")
        local = cli("evaluate", "mo", "--filter", 'elements HAS "Mo"')
        remote = cli("evaluate", "mo", "--filter", 'elements HAS "Mo"', "--scheduler", cluster.scheduler_address)
    finally:
        torch.set_num_threads(before)
    assert local["n_structures"] == 6
    assert remote == local


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def quick_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    from xtalbase.platform import executors

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", 1.0)


@pytest.fixture
def small_db(tmp_path: Path) -> Iterator[Any]:
    """A SQLite database with the 8 COD structures (the connection fails before any backend matters)."""
    import xtalbase

    db = xtalbase.connect(f"sqlite:///{tmp_path / 'small.db'}")
    db.init()
    yield db
    db.close()


def test_an_unreachable_scheduler_is_one_clear_error_within_seconds(small_db, quick_timeout):
    from xtalbase.xrd.builder import compute_missing

    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.perf_counter()
    with pytest.raises(XtalbaseError, match=f"cannot reach the Dask scheduler at {address}: "):
        compute_missing(small_db, scheduler=address)
    assert time.perf_counter() - started < 10  # 1 s of retries; Dask's own default would wait 30 s (margin for a busy CI)
    with pytest.raises(XtalbaseError, match="'nowhere' is not a Dask scheduler address"):
        compute_missing(small_db, scheduler="nowhere")


@pytest.mark.parametrize("command", [["ingest", str(QUERY_DATA / "cod")], ["xrd", "compute"], ["describe", "--recipe", "magpie"]])
def test_every_bulk_command_reports_an_unreachable_scheduler_in_one_line(small_db, quick_timeout, capsys, monkeypatch,
                                                                         command):
    """``--scheduler`` and, without it, ``$XTALBASE_DASK_SCHEDULER``; ``--scheduler ''`` runs on local workers."""
    from xtalbase.cli import main

    db = small_db
    if command[0] != "ingest":
        db.ingest([QUERY_DATA / "cod"])
    address = f"tcp://127.0.0.1:{free_port()}"
    for extra, env in (([f"--scheduler={address}"], None), ([], address)):
        if env:
            monkeypatch.setenv("XTALBASE_DASK_SCHEDULER", env)
        with pytest.raises(SystemExit) as exc:
            main(["--db", db.url, *command, *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 1, err
        assert err.startswith(f"error: cannot reach the Dask scheduler at {address}: ") and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exc:
        main(["--db", db.url, *command, "--scheduler="])  # the variable is still set: '' means local workers
    assert exc.value.code == 0, capsys.readouterr().err


def test_scheduler_resolution_prefers_the_argument_then_the_variable(monkeypatch):
    from xtalbase.platform.config import resolve_scheduler

    monkeypatch.delenv("XTALBASE_DASK_SCHEDULER", raising=False)
    assert resolve_scheduler(None) is None and resolve_scheduler("tcp://a:1") == "tcp://a:1"
    monkeypatch.setenv("XTALBASE_DASK_SCHEDULER", "tcp://b:2")
    assert resolve_scheduler(None) == "tcp://b:2"
    assert resolve_scheduler("tcp://a:1") == "tcp://a:1"
    assert resolve_scheduler("") is None


def test_workers_of_another_xtalbase_version_are_refused(cluster, monkeypatch):
    from xtalbase.platform import executors

    monkeypatch.setattr(executors, "_FINGERPRINT", ("0.0.0-other", "0" * 16))  # this process only: workers differ
    with pytest.raises(XtalbaseError, match=r"2 worker\(s\) of the Dask scheduler at .* run another xtalbase version"):
        executors.DaskExecutor(cluster.scheduler_address)



def test_ingest_on_the_cluster_reads_relative_paths_from_the_submitting_directory(cluster, tmp_path, monkeypatch):
    """The workers started in another directory (this one's is changed after the cluster started): a relative path
    reaches them as an absolute one, and the stored ``file_path`` stays as given, as with local workers."""
    from sqlalchemy import select

    import xtalbase
    from xtalbase.schema import Source

    monkeypatch.chdir(QUERY_DATA)
    out = {}
    for name, where in (("local", {"workers": 1}), ("remote", {"scheduler": cluster.scheduler_address})):
        db = xtalbase.connect(f"sqlite:///{tmp_path / name}.db")
        db.init()
        report = db.ingest(["cod"], **where)
        with db.session() as s:
            paths = sorted(s.scalars(select(Source.file_path)))
        db.close()
        out[name] = (report.inserted, report.quarantined, report.quarantined_by_reason, paths)
    assert out["local"][0] > 0 and out["local"][1] == 0
    assert out["remote"] == out["local"]
    assert all(p.startswith("cod/") for p in out["remote"][3])


def test_an_error_with_tasks_in_flight_cancels_them_on_the_cluster(cluster):
    """Leaving the executor on an error cancels its queued tasks (as the local pools do) instead of waiting for them:
    here 8 one-second tasks on 2 workers, 4 s of waiting otherwise."""
    from xtalbase.platform.executors import DaskExecutor

    futures = []
    with pytest.raises(KeyboardInterrupt), DaskExecutor(cluster.scheduler_address) as executor:
        futures.extend(executor.submit(time.sleep, 1.0) for _ in range(8))
        interrupted = time.perf_counter()
        raise KeyboardInterrupt
    assert time.perf_counter() - interrupted < 2.5
    assert sum(f.cancelled() for f in futures) >= 6  # at most the two running when it stopped may have finished


def test_csp_matching_told_no_scheduler_keeps_its_per_pair_timeout(monkeypatch):
    """``--scheduler ''`` (local workers, whatever the variable says) still runs pairs under their timeout: a pair of
    two random 150-atom cells (~13 s in the matcher) is stopped after 1 s instead of running to its end here."""
    import numpy as np

    from xtalbase.csp.matching import MatchSettings, MatchTask, match_all
    from xtalbase.platform.budgets import BudgetExceeded
    from xtalbase.platform.convert import StructureArrays

    monkeypatch.setenv("XTALBASE_DASK_SCHEDULER", f"tcp://127.0.0.1:{free_port()}")  # unreachable: must not be used
    rng = np.random.default_rng(0)
    big = [StructureArrays(np.eye(3) * 1800 ** (1 / 3), np.full(150, 14), rng.random((150, 3))) for _ in range(2)]
    try:
        statuses = {r["status"] for r in match_all([MatchTask(0, big[0], ((0, big[1]),), MatchSettings())],
                                                   scheduler="", timeout=1.0)}
    except BudgetExceeded as exc:  # stopped before its pair was marked (a slow first call): not a pair to pass over
        statuses = {exc.reason}
    assert statuses == {"timeout"}


def test_a_worker_without_xtalbase_is_refused_by_name():
    """A real worker process that cannot import xtalbase (hidden from it) beside a scheduler: one error naming it."""
    import subprocess
    import sys

    from xtalbase.platform.executors import DaskExecutor

    hide = ("import sys; sys.modules['xtalbase'] = None; from distributed.cli.dask_worker import main; "
            "sys.argv[0] = 'dask-worker'; main()")
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", protocol="tcp", dashboard_address="127.0.0.1:0") as cluster:
        worker = subprocess.Popen([sys.executable, "-c", hide, cluster.scheduler_address, "--nthreads", "1", "--no-nanny",
                                   "--no-dashboard", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            cluster.wait_for_workers(1, timeout=120)
            with pytest.raises(XtalbaseError, match=r"^worker tcp://127\.0\.0\.1:\d+ of the Dask scheduler at "
                                                    r".* cannot run xtalbase: .*xtalbase"):
                DaskExecutor(cluster.scheduler_address)
        finally:
            worker.terminate()
            worker.wait(60)


def test_the_work_in_flight_grows_with_workers_that_join_during_the_run(monkeypatch):
    """A cluster with no worker when the run starts (an adaptive cluster, a SLURM job still queued): once 4 worker
    threads join, up to 8 tasks are in flight, not the 2 sized at the start."""
    from xtalbase.platform import runner as runner_module
    from xtalbase.platform.runner import Runner

    monkeypatch.setattr(runner_module, "RESIZE_SECONDS", 0.1)
    peak = 0
    with distributed.LocalCluster(n_workers=0, threads_per_worker=2, processes=True, host="127.0.0.1", protocol="tcp",
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster.scheduler_address, set_as_default=False) as watch:
        with Runner(time.sleep, scheduler=cluster.scheduler_address) as runner:
            assert runner.in_flight == 2
            cluster.scale(2)
            cluster.wait_for_workers(2, timeout=120)
            for _ in runner.map((k, (0.2,)) for k in range(24)):
                peak = max(peak, watch.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))
    assert peak >= 6
