"""The one builder runner: a function over a stream of tasks on an executor, with bounded work in flight.

Ingest, XRD computation and measured-scan imports all read tasks in the main
process, compute them in workers (:mod:`xtalbase.platform.executors`: inline,
local processes or Dask) and write results in the main process. :class:`Runner`
holds that loop once: at most ``in_flight`` tasks are submitted ahead of the
consumer (memory stays bounded however long the stream), results come back in
submission order or as they finish, progress goes to a callback and counts to
the ``xtalbase.runner`` logger, and an interrupt (Ctrl-C, SIGTERM raised as
:class:`~xtalbase.errors.Terminated`, an error while writing) cancels the queued
tasks before the executor is closed. With a :class:`~xtalbase.platform.budgets.Budget`, local work runs in a
:class:`~xtalbase.platform.executors.SupervisedPool`: a task whose item runs past its time (or whose worker
dies) is handed to ``retry``, which returns the task's arguments with that item passed over, and runs again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, TypeVar

from xtalbase.errors import XtalbaseError
from xtalbase.platform.budgets import Budget, BudgetExceeded
from xtalbase.platform.config import resolve_scheduler
from xtalbase.platform.executors import get_executor

#: Seconds between two looks at a cluster's size during a run (workers of an adaptive cluster join late).
RESIZE_SECONDS = 2.0

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
        A ``dask.distributed`` scheduler address; its workers run the tasks and ``workers`` is ignored. Default:
        ``$XTALBASE_DASK_SCHEDULER`` (:func:`~xtalbase.platform.config.resolve_scheduler`; ``""``: local workers).
    in_flight : int, optional
        Most tasks submitted and not yet consumed (default ``2 * workers``, at least 2); on a cluster at least
        twice its worker threads, counted when the run starts and again every :data:`RESIZE_SECONDS` as workers join.
    ordered : bool
        Yield results in submission order (True) or as they finish.
    name : str
        What the work is, for the log.
    progress : callable, optional
        Called as ``progress(tasks_done)`` after each yielded result.
    budget : Budget, optional
        Time per item and memory per worker (:mod:`xtalbase.platform.budgets`); with a limit set, even
        ``workers=1`` runs in one child process, and ``fn`` must be picklable.
    retry : callable, optional
        ``retry(args, exceeded)`` -> the arguments to run a task again with after its item ``exceeded.label``
        ran past the budget or killed its worker, or ``None`` to raise the
        :class:`~xtalbase.platform.budgets.BudgetExceeded`; the retried task keeps its key and its place.

    Examples
    --------
    >>> with Runner(pow, workers=1) as runner:
    ...     list(runner.map([("a", (2, 3)), ("b", (3, 2))]))
    [('a', 8), ('b', 9)]
    """

    def __init__(self, fn: Callable[..., R], *, workers: int = 1, scheduler: Optional[str] = None,
                 in_flight: Optional[int] = None, ordered: bool = True, name: str = "tasks",
                 progress: Optional[Callable[[int], None]] = None, budget: Optional[Budget] = None,
                 retry: Optional[Callable[[tuple, BudgetExceeded], Optional[tuple]]] = None) -> None:
        if workers < 1:
            raise XtalbaseError(f"workers must be at least 1 (got {workers})")
        if in_flight is not None and in_flight < 1:
            raise XtalbaseError(f"in_flight must be at least 1 (got {in_flight})")
        self.fn, self.workers, self.scheduler = fn, workers, resolve_scheduler(scheduler)
        self.in_flight = in_flight or max(2, 2 * workers)
        self.ordered, self.name, self.progress = ordered, name, progress
        self.budget, self.retry = budget, retry
        self._executor: Optional[Executor] = None
        self._resized = 0.0

    def __enter__(self) -> "Runner[K, R]":
        self._executor = get_executor(self.workers, self.scheduler, self.budget)
        self._executor.__enter__()
        slots = getattr(self._executor, "slots", None)
        if slots is not None:  # a cluster: its threads, not --workers, set how much work should wait in its queues
            if self.workers > 1:
                log.info("%s: workers=%d not used: the tasks run on the Dask cluster at %s (%d threads)",
                         self.name, self.workers, self.scheduler, slots)
            self.workers = max(1, slots)
            self.in_flight = max(self.in_flight, 2 * self.workers)
            self._resized = time.monotonic()
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
        pending: deque[tuple[K, tuple, Future]] = deque()
        done = 0
        started = time.perf_counter()
        try:
            for key, args in tasks:
                pending.append((key, args, executor.submit(self.fn, *args)))
                while len(pending) >= self._room():
                    yield self._next(pending)
                    done += 1
                    self._tick(done)
            while pending:
                yield self._next(pending)
                done += 1
                self._tick(done)
        except BaseException:
            # an error, Ctrl-C or SIGTERM: queued tasks would otherwise run to completion before the pool closes
            cancelled = sum(future.cancel() for _, _, future in pending)
            log.info("%s: stopped after %d tasks, %d queued tasks cancelled", self.name, done, cancelled)
            raise
        log.info("%s: %d tasks in %.2f s on %d worker(s)%s", self.name, done, time.perf_counter() - started,
                 self.workers, f" at {self.scheduler}" if self.scheduler else "")

    def _room(self) -> int:
        """Tasks that may be in flight now. A cluster that started with few workers (an adaptive one, a SLURM job
        still queued) would otherwise be fed the few tasks sized at the start for the whole run: it grows here."""
        slots_now = getattr(self._executor, "slots_now", None)
        if slots_now is not None and time.monotonic() - self._resized >= RESIZE_SECONDS:
            self._resized = time.monotonic()
            try:
                slots = slots_now()
            except OSError:  # the scheduler busy or reconnecting: keep the size, the tasks tell if it is gone
                slots = 0
            if slots > self.workers:
                log.info("%s: the cluster has %d worker threads now: up to %d tasks in flight", self.name, slots, 2 * slots)
                self.workers = slots
                self.in_flight = max(self.in_flight, 2 * slots)
        return self.in_flight

    def _next(self, pending: deque[tuple[K, tuple, Future]]) -> tuple[K, R]:
        while True:
            if self.ordered:
                index = 0
                self._settle([pending[0][2]])
            else:
                self._settle([f for _, _, f in pending])
                finished, _ = wait([f for _, _, f in pending], return_when=FIRST_COMPLETED)
                index = next(i for i, (_, _, f) in enumerate(pending) if f in finished)
            key, args, future = pending[index]
            exceeded = future.exception()
            again = self.retry(args, exceeded) if isinstance(exceeded, BudgetExceeded) and self.retry else None
            if again is None:
                del pending[index]
                return key, future.result()
            log.info("%s: task run again without %r (%s)", self.name, exceeded.label, exceeded.reason)
            pending[index] = (key, again, self._executor.submit(self.fn, *again))

    def _settle(self, futures: list[Future]) -> None:
        # a supervised pool is driven by its consumer (no thread forks its workers): pump it until one is done
        pump = getattr(self._executor, "pump", None)
        while pump is not None and not any(f.done() for f in futures):
            pump(0.5)

    def _tick(self, done: int) -> None:
        log.debug("%s: %d tasks done", self.name, done)
        if self.progress is not None:
            self.progress(done)
