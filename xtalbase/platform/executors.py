"""Where parallel work runs: in-process, local worker processes (default), or a Dask cluster.

xtalbase never schedules work itself beyond this: a cluster means Dask.
"""

from __future__ import annotations

import multiprocessing
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


def get_executor(workers: int = 1, scheduler: str | None = None) -> Executor:
    """An executor for ``workers`` processes, or for the Dask scheduler at ``scheduler``.

    Parameters
    ----------
    workers : int
        1 runs inline; more starts that many local worker processes.
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``);
        tasks then run on its workers through ``Client.get_executor()``.
    """
    if scheduler:
        from dask.distributed import Client

        return Client(scheduler).get_executor()
    if workers <= 1:
        return InlineExecutor()
    # fork is cheap and workers only compute; they never touch the parent's DB connections.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
