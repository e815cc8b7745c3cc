"""The one builder runner: a function over a stream of tasks on an executor, with bounded work in flight.

Ingest, XRD computation and measured-scan imports all read tasks in the main
process, compute them in workers (:mod:`xtalbase.platform.executors`: inline,
local processes or Dask) and write results in the main process. :class:`Runner`
holds that loop once: at most ``in_flight`` tasks are submitted ahead of the
consumer (memory stays bounded however long the stream), results come back in
submission order or as they finish, progress goes to a callback and counts to
the ``xtalbase.runner`` logger, and an interrupt (Ctrl-C, SIGTERM raised as
:class:`~xtalbase.errors.Terminated`, an error while writing) cancels the queued
tasks before the executor is closed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, TypeVar

from xtalbase.errors import XtalbaseError
from xtalbase.platform.executors import get_executor

K = TypeVar("K")
R = TypeVar("R")

log = logging.getLogger("xtalbase.runner")


class Runner(Generic[K, R]):
    """Runs ``fn(*args)`` for each ``(key, args)`` of a task stream and yields ``(key, result)``.

    Parameters
    ----------
    fn : callable
        Picklable (a module-level function) when ``workers > 1`` or a scheduler is given; it must
        not touch the database (workers compute, the caller writes).
    workers : int
        1 runs inline; more starts local worker processes.
    scheduler : str, optional
        A ``dask.distributed`` scheduler address; its workers run the tasks.
    in_flight : int, optional
        Most tasks submitted and not yet consumed (default ``2 * workers``, at least 2).
    ordered : bool
        Yield results in submission order (True) or as they finish.
    name : str
        What the work is, for the log.
    progress : callable, optional
        Called as ``progress(tasks_done)`` after each yielded result.

    Examples
    --------
    >>> with Runner(pow, workers=1) as runner:
    ...     list(runner.map([("a", (2, 3)), ("b", (3, 2))]))
    [('a', 8), ('b', 9)]
    """

    def __init__(self, fn: Callable[..., R], *, workers: int = 1, scheduler: Optional[str] = None,
                 in_flight: Optional[int] = None, ordered: bool = True, name: str = "tasks",
                 progress: Optional[Callable[[int], None]] = None) -> None:
        if workers < 1:
            raise XtalbaseError(f"workers must be at least 1 (got {workers})")
        if in_flight is not None and in_flight < 1:
            raise XtalbaseError(f"in_flight must be at least 1 (got {in_flight})")
        self.fn, self.workers, self.scheduler = fn, workers, scheduler
        self.in_flight = in_flight or max(2, 2 * workers)
        self.ordered, self.name, self.progress = ordered, name, progress
        self._executor: Optional[Executor] = None

    def __enter__(self) -> "Runner[K, R]":
        self._executor = get_executor(self.workers, self.scheduler)
        self._executor.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.__exit__(exc_type, exc, tb)
        return False

    def map(self, tasks: Iterable[tuple[K, tuple]]) -> Iterator[tuple[K, R]]:
        """``(key, fn(*args))`` for each ``(key, args)`` of ``tasks``, read lazily as room frees up.

        A task's exception is raised here, when its result is reached; the queued tasks are then
        cancelled, as they are when the consumer stops early or is interrupted.
        """
        if self._executor is None:
            raise XtalbaseError("Runner.map needs an open runner: use it in a `with Runner(...) as runner:` block")
        executor = self._executor
        pending: deque[tuple[K, Future]] = deque()
        done = 0
        started = time.perf_counter()
        try:
            for key, args in tasks:
                pending.append((key, executor.submit(self.fn, *args)))
                while len(pending) >= self.in_flight:
                    yield self._next(pending)
                    done += 1
                    self._tick(done)
            while pending:
                yield self._next(pending)
                done += 1
                self._tick(done)
        except BaseException:
            # an error, Ctrl-C or SIGTERM: queued tasks would otherwise run to completion before the pool closes
            cancelled = sum(future.cancel() for _, future in pending)
            log.info("%s: stopped after %d tasks, %d queued tasks cancelled", self.name, done, cancelled)
            raise
        log.info("%s: %d tasks in %.2f s on %d worker(s)%s", self.name, done, time.perf_counter() - started,
                 self.workers, f" at {self.scheduler}" if self.scheduler else "")

    def _next(self, pending: deque[tuple[K, Future]]) -> tuple[K, R]:
        if self.ordered:
            key, future = pending.popleft()
            return key, future.result()
        finished, _ = wait([f for _, f in pending], return_when=FIRST_COMPLETED)
        index = next(i for i, (_, f) in enumerate(pending) if f in finished)
        key, future = pending[index]
        del pending[index]
        return key, future.result()

    def _tick(self, done: int) -> None:
        log.debug("%s: %d tasks done", self.name, done)
        if self.progress is not None:
            self.progress(done)
