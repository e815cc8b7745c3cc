"""Where parallel work runs: in-process, local worker processes (default), or a Dask cluster.

xtalbase never schedules work itself beyond this: a cluster means Dask. Builders do not use
these executors directly but through :class:`xtalbase.platform.runner.Runner`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Callable


class InlineExecutor(Executor):
    """Runs each task immediately in this process (``workers=1``): simplest to debug and profile."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, as a pool would
            future.set_exception(exc)
        return future


class WorkerPool(ProcessPoolExecutor):
    """Local worker processes that never outlive the process that started them.

    Each worker asks Linux to send it SIGTERM when its parent dies, so a main
    process killed alone (SIGKILL, or SIGTERM to its pid rather than its process
    group) leaves no idle workers behind holding its pipes open. Workers ignore
    SIGINT: Ctrl-C reaches the main process, which stops them. Leaving the ``with``
    block on an error or an interrupt drops the queued tasks instead of running
    them to completion first.
    """

    def __init__(self, workers: int) -> None:
        # fork is cheap and workers only compute; they never touch the parent's DB connections.
        super().__init__(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                         initializer=_worker_setup, initargs=(os.getpid(),))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
        return False


def _worker_setup(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the main process's handler, inherited through fork
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


class DaskExecutor(Executor):
    """Tasks on the workers of a running ``dask.distributed`` scheduler; the client is closed with the executor."""

    def __init__(self, address: str) -> None:
        from dask.distributed import Client

        self._client = Client(address)
        self._inner = self._client.get_executor()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._inner.shutdown(wait=wait)
        finally:
            self._client.close()


def get_executor(workers: int = 1, scheduler: str | None = None) -> Executor:
    """An executor for ``workers`` processes, or for the Dask scheduler at ``scheduler``.

    Parameters
    ----------
    workers : int
        1 runs inline; more starts that many local worker processes (:class:`WorkerPool`).
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``);
        tasks then run on its workers through ``Client.get_executor()``.
    """
    if scheduler:
        return DaskExecutor(scheduler)
    if workers <= 1:
        return InlineExecutor()
    return WorkerPool(workers)
