"""Where parallel work runs: in-process, local worker processes (default), or a Dask cluster.

xtalbase never schedules work itself beyond this: a cluster means Dask. Builders do not use
these executors directly but through :class:`xtalbase.platform.runner.Runner`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Optional

from xtalbase.errors import XtalbaseError
from xtalbase.platform import budgets
from xtalbase.platform.budgets import Budget, BudgetExceeded, MarkSlot

log = logging.getLogger("xtalbase.runner")


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


class SupervisedPool(Executor):
    """Local worker processes, each item of work under a :class:`~xtalbase.platform.budgets.Budget`.

    One task at a time per worker, sent over its own pipe. A worker whose current item (from one
    :func:`~xtalbase.platform.budgets.mark` to the next) runs past ``budget.timeout`` is killed (SIGKILL: it may be
    stuck in C code, where no signal handler runs) and replaced, and its task's future fails with
    :class:`~xtalbase.platform.budgets.BudgetExceeded`; so does the task of a worker that dies. Each worker's
    address space is capped at ``budget.memory_mb`` beyond its size at start (Linux ``RLIMIT_AS``).

    Nothing runs in a thread: the consumer drives the pool with :meth:`pump` (``Runner`` does), so workers are
    forked from the main thread only, and Ctrl-C or SIGTERM reach the main process at once even with one worker
    (it never runs a record itself). Workers ignore SIGINT and end with their parent, as :class:`WorkerPool`'s do.
    """

    def __init__(self, workers: int, budget: Budget) -> None:
        if workers < 1:
            raise XtalbaseError(f"workers must be at least 1 (got {workers})")
        self._size, self._budget = workers, budget
        self._queue: deque[tuple[Future, Callable[..., Any], tuple, dict]] = deque()
        self._workers: list[_Worker] = []
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._closed:
            raise XtalbaseError("cannot submit to a closed worker pool")
        future: Future = Future()
        self._queue.append((future, fn, args, kwargs))
        self._dispatch()
        return future

    def pump(self, timeout: float) -> None:
        """Collect finished tasks, stop items past their time and replace dead workers; wait at most ``timeout`` s."""
        self._dispatch()
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            return
        tick = timeout if not self._budget.timeout else min(timeout, max(0.05, self._budget.timeout / 4))
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=tick))
        for worker in busy:
            if worker.conn in ready:
                self._receive(worker)
            elif worker.process.sentinel in ready:
                self._died(worker)
            elif self._budget.timeout:
                started, _ = worker.slot.read()
                if time.monotonic() - started > self._budget.timeout:
                    self._lost(worker, "timeout", f"past the {self._budget.timeout:g} s budget per record")
        self._dispatch()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            while self._queue:
                self._queue.popleft()[0].cancel()
        for worker in self._workers:
            # an unfinished task means an error or interrupt upstream: its result is not wanted, do not wait for it
            worker.stop(kill=worker.task is not None or cancel_futures)
        self._workers = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
        return False

    def _dispatch(self) -> None:
        while self._queue:
            worker = next((w for w in self._workers if w.task is None), None)
            if worker is None:
                if len(self._workers) >= self._size:
                    return
                worker = _Worker(self._budget)
                self._workers.append(worker)
            future, fn, args, kwargs = self._queue.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    worker.start(future, fn, args, kwargs)
                except OSError:  # the idle worker had died (the kernel's OOM killer, a signal): a new one takes the task
                    worker.task = None
                    self._replace(worker)
                    worker = _Worker(self._budget)
                    self._workers.append(worker)
                    worker.start(future, fn, args, kwargs)

    def _receive(self, worker: "_Worker") -> None:
        future = worker.task
        try:
            ok, value, retire = worker.conn.recv()
        except (EOFError, OSError):
            self._died(worker)
            return
        worker.task = None
        if retire:  # after a MemoryError: a fresh process rather than a fragmented heap
            self._replace(worker)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _died(self, worker: "_Worker") -> None:
        worker.process.join(5)  # its pipe closes as it ends: reap it to learn how
        self._lost(worker, "died", f"worker process ended ({_exit_name(worker.process.exitcode)})")

    def _lost(self, worker: "_Worker", reason: str, detail: str) -> None:
        started, label = worker.slot.read()
        seconds = time.monotonic() - started
        future = worker.task
        worker.task = None
        self._replace(worker)
        log.warning("worker %s on %r after %.1f s: %s; a new worker takes its place", reason, label, seconds, detail)
        future.set_exception(BudgetExceeded(reason, label, seconds, detail))

    def _replace(self, worker: "_Worker") -> None:
        worker.stop(kill=True)
        self._workers.remove(worker)  # the next dispatch starts a new one


class _Worker:
    """One supervised worker process: its pipe, its mark slot and the task it runs."""

    def __init__(self, budget: Budget) -> None:
        context = multiprocessing.get_context("fork")  # workers only compute; the parent's DB connections stay unused
        self.conn, child = context.Pipe()
        self.slot = MarkSlot()
        self.task: Optional[Future] = None
        self.process = context.Process(target=_supervised_worker, args=(child, self.slot, os.getpid(), budget.memory_mb),
                                       daemon=True)
        self.process.start()
        child.close()

    def start(self, future: Future, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.slot.write("")  # the clock starts at dispatch, not at the previous task's last mark
        self.task = future
        self.conn.send((fn, args, kwargs))

    def stop(self, kill: bool) -> None:
        if self.process.is_alive():
            if kill:
                os.kill(self.process.pid, signal.SIGKILL)
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()
        self.conn.close()
        self.slot.close()


def _supervised_worker(conn: Connection, slot: MarkSlot, parent: int, memory_mb: Optional[int]) -> None:
    _worker_setup(parent)
    if memory_mb:
        _cap_address_space(memory_mb)
    budgets.in_worker(slot)
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent closed the pipe
            return
        if task is None:
            return
        fn, args, kwargs = task
        try:
            reply = (True, fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, as a pool would
            reply = (False, exc)
        try:
            conn.send((*reply, budgets.retiring()))
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception still ends the task
            conn.send((False, XtalbaseError(f"worker result could not be sent back: {type(exc).__name__}: {exc}"),
                       budgets.retiring()))
        if budgets.retiring():
            return


def _cap_address_space(memory_mb: int) -> None:
    """Cap this process's address space at its present size plus ``memory_mb`` MiB (Linux; elsewhere no cap)."""
    if not sys.platform.startswith("linux"):
        return
    import resource

    with open("/proc/self/statm") as fh:
        present = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = present + memory_mb * (1 << 20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _exit_name(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


#: Seconds a client waits for the scheduler to answer before the run fails (Dask's own default is 30 s).
CONNECT_TIMEOUT = 5.0


class DaskExecutor(Executor):
    """Tasks on the workers of a running ``dask.distributed`` scheduler; the client is closed with the executor.

    Connecting checks that the scheduler answers within ``connect_timeout`` seconds (default
    :data:`CONNECT_TIMEOUT`) and that every worker present runs the same xtalbase version as this process
    (:func:`code_fingerprint`; other module bytes under the same version only log a warning); either failure is
    one :class:`~xtalbase.errors.XtalbaseError`. ``slots`` is the number of worker threads found then. Tasks are
    submitted with ``pure=False``: no hashing of their arguments, and two equal tasks both run. A task whose
    worker dies is run again on another worker by the scheduler (up to its ``allowed-failures``), so the
    consumer sees one result per task.
    """

    def __init__(self, address: str, connect_timeout: Optional[float] = None) -> None:
        from dask.distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port

        connect_timeout = connect_timeout or CONNECT_TIMEOUT
        try:
            protocol, location = parse_address(address)
            if protocol in ("tcp", "tls"):  # checked first: a client built on a bad address fails again when collected
                parse_host_port(location)
        except ValueError as exc:
            raise XtalbaseError(f"{address!r} is not a Dask scheduler address ({exc}): expected e.g. tcp://host:8786") from None
        try:
            self._client = Client(address, timeout=connect_timeout, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError...: one message
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise XtalbaseError(f"cannot reach the Dask scheduler at {address}: {detail} "
                                f"(is `dask scheduler` running there?)") from None
        try:
            self.slots = _check_workers(self._client, address)
        except BaseException:
            self._client.close()
            raise
        self._inner = self._client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._inner.submit(fn, *args, **kwargs)

    def slots_now(self) -> int:
        """Worker threads connected now (one call to the scheduler): workers join and leave during a run."""
        return int(self._client.scheduler_info(n_workers=0).get("total_threads", 0))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._inner.shutdown(wait=wait and not cancel_futures)
        finally:
            self._client.close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        # Executor's own __exit__ waits for every submitted task: after an error or Ctrl-C the cluster would finish
        # (and hold) up to `in_flight` results nobody reads; cancel them, as the local pools do
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
        return False


def code_fingerprint() -> tuple[str, str]:
    """``(version, sha256 prefix of the bytes of its modules)`` of this process's xtalbase.

    Workers of a cluster must compute what this process would: a worker with another release could store other
    rows under the same recipe hash. The digest is read from the files when first asked, not from the modules
    loaded, so a checkout edited meanwhile differs without running other code: a warning, not an error.
    """
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import hashlib
        from pathlib import Path

        from xtalbase import __version__

        root = Path(__file__).resolve().parents[1]  # the xtalbase package
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
        _FINGERPRINT = (__version__, digest.hexdigest()[:16])
    return _FINGERPRINT


_FINGERPRINT: Optional[tuple[str, str]] = None


def _check_workers(client: Any, address: str) -> int:
    """Worker threads now connected to ``client``'s scheduler, after checking they run this process's version."""
    version, digest = code_fingerprint()
    try:
        answers = client.run(code_fingerprint, on_error="return")
    except Exception as exc:  # noqa: BLE001 - the scheduler itself failed to ask them
        raise XtalbaseError(f"cannot ask the workers of the Dask scheduler at {address} for their xtalbase version: "
                            f"{type(exc).__name__}: {exc}") from None
    theirs: dict[str, Any] = {}
    for worker, found in answers.items():
        if isinstance(found, OSError):  # CommClosedError too: a worker leaving (or restarting) as we asked
            log.warning("worker %s of the Dask scheduler at %s did not answer the version check (%s): "
                        "not checked, like a worker that joins later", worker, address, type(found).__name__)
        elif isinstance(found, BaseException):  # e.g. no xtalbase there: the function cannot be unpickled
            raise XtalbaseError(f"worker {worker} of the Dask scheduler at {address} cannot run xtalbase: "
                                f"{type(found).__name__}: {found}")
        else:
            theirs[worker] = found
    other = sorted(f"{worker} ({found[0]})" for worker, found in theirs.items() if found[0] != version)
    if other:
        raise XtalbaseError(f"{len(other)} worker(s) of the Dask scheduler at {address} run another xtalbase version "
                            f"than this process ({version}): {', '.join(other[:5])}; install {version} on the workers")
    edited = sorted(worker for worker, found in theirs.items() if found[1] != digest)
    if edited:
        log.warning("%d worker(s) at %s have xtalbase %s with other module files than this process (%s...): "
                    "results may differ", len(edited), address, version, ", ".join(edited[:3]))
    slots = sum(client.nthreads().values())
    if not slots:
        log.warning("the Dask scheduler at %s has no workers yet: tasks wait until one joins", address)
    return slots


def get_executor(workers: int = 1, scheduler: str | None = None, budget: Budget | None = None) -> Executor:
    """An executor for ``workers`` processes, or for the Dask scheduler at ``scheduler``.

    Parameters
    ----------
    workers : int
        1 runs inline; more starts that many local worker processes (:class:`WorkerPool`).
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``);
        tasks then run on its workers through ``Client.get_executor()`` and ``workers`` is not used.
        :class:`~xtalbase.platform.runner.Runner` fills it from ``$XTALBASE_DASK_SCHEDULER``.
    budget : Budget, optional
        Limits per item and per worker: with any limit set, local work runs in a :class:`SupervisedPool` (one
        child process even for ``workers=1``). Dask workers keep their own limits (``--memory-limit``); the time
        per item is not enforced there.
    """
    if scheduler:
        return DaskExecutor(scheduler)
    if budget is not None and budget.active:
        return SupervisedPool(workers, budget)
    if workers <= 1:
        return InlineExecutor()
    return WorkerPool(workers)
