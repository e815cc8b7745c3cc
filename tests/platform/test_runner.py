"""The builder runner: bounded work in flight, ordered or unordered results, progress, cancellation."""

from __future__ import annotations

import time

import pytest

from xtalbase.errors import XtalbaseError
from xtalbase.platform.runner import Runner


def _square_after(x: int, delay: float) -> int:
    time.sleep(delay)
    return x * x


def _fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"task {x} failed")
    return x


def test_results_come_back_keyed_and_in_order_inline_and_in_workers():
    tasks = [(f"t{i}", (i, 0.0)) for i in range(20)]
    for workers in (1, 2):
        with Runner(_square_after, workers=workers) as runner:
            assert list(runner.map(iter(tasks))) == [(f"t{i}", i * i) for i in range(20)]


def test_unordered_results_arrive_as_they_finish():
    with Runner(_square_after, workers=2, ordered=False, in_flight=2) as runner:
        got = [key for key, _ in runner.map([("slow", (1, 1.0)), ("fast", (2, 0.0))])]
    assert got == ["fast", "slow"]


def test_the_task_stream_is_read_only_as_room_frees_up():
    read: list[int] = []

    def tasks():
        for i in range(10):
            read.append(i)
            yield i, (i, 0.0)

    with Runner(_square_after, in_flight=3) as runner:
        results = runner.map(tasks())
        next(results)
        assert read == [0, 1, 2]  # three submitted, one consumed: the rest of the stream is untouched
        assert [k for k, _ in results] == list(range(1, 10))


def test_progress_counts_tasks_and_a_failed_task_raises_and_cancels_the_queue():
    seen: list[int] = []
    with Runner(_fail_on, progress=seen.append) as runner:
        assert [v for _, v in runner.map((i, (i, 99)) for i in range(4))] == [0, 1, 2, 3]
    assert seen == [1, 2, 3, 4]
    started = time.perf_counter()
    with pytest.raises(ValueError, match="task 1 failed"):
        with Runner(_square_after, workers=2, in_flight=40) as runner:
            for key, _ in runner.map((i, (i, 0.5 if i else 0.0)) for i in range(40)):
                if key == 0:
                    _fail_on(1, 1)  # the consumer fails: the queued tasks must not all run first
    assert time.perf_counter() - started < 5  # 39 queued half-second tasks on 2 workers would take ~10 s


def test_map_needs_an_open_runner_and_sane_bounds():
    with pytest.raises(XtalbaseError, match="open runner"):
        list(Runner(_square_after).map([]))
    with pytest.raises(XtalbaseError, match="workers must be at least 1"):
        Runner(_square_after, workers=0)


def test_a_dask_scheduler_runs_the_same_tasks_and_its_client_is_closed():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Runner(_square_after, scheduler=cluster.scheduler_address, in_flight=3) as runner:
            executor = runner._executor
            assert [v for _, v in runner.map((i, (i, 0.0)) for i in range(6))] == [i * i for i in range(6)]
        assert executor._client.status == "closed"


def test_ingest_through_a_dask_scheduler_stores_what_inline_ingest_stores(db, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    import xtalbase
    from tests.ingest.helpers import CIF, DATA

    inputs = [CIF, DATA / "perov5_head.csv"]
    inline = db.ingest(inputs)
    other = xtalbase.connect(f"sqlite:///{tmp_path / 'dask.db'}")
    other.init()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        remote = other.ingest(inputs, scheduler=cluster.scheduler_address, batch_size=7)
    other.close()
    assert (remote.read, remote.inserted, remote.duplicates, remote.quarantined) == \
        (inline.read, inline.inserted, inline.duplicates, inline.quarantined)


def test_a_supervised_pool_replaces_an_idle_worker_that_died():
    """A worker killed while idle (the kernel's OOM killer) must not fail the next task with a broken pipe."""
    import os
    import signal

    from xtalbase.platform.budgets import Budget
    from xtalbase.platform.executors import SupervisedPool

    with SupervisedPool(1, Budget(timeout=30)) as pool:
        first = pool.submit(_square_after, 3, 0.0)
        while not first.done():
            pool.pump(0.1)
        assert first.result() == 9
        (worker,) = pool._workers
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.join(5)
        second = pool.submit(_square_after, 4, 0.0)
        while not second.done():
            pool.pump(0.1)
        assert second.result() == 16
