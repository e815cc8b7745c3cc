"""Per-item budgets of supervised workers: a wall-clock limit per item and a memory cap per worker.

The worker side is two calls: :func:`mark` when the work on an item (a record, the reading of the next one)
begins, and :func:`retire` after a ``MemoryError`` so that the worker is replaced by a fresh process. Outside a
supervised worker (:class:`xtalbase.platform.executors.SupervisedPool`) both do nothing, so library code can
call them unconditionally. The parent reads the marks from memory shared with the worker: when one item runs
past its limit it kills the worker, starts another and reports :class:`BudgetExceeded` with the item's label.
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass
from typing import Optional

from xtalbase.errors import XtalbaseError

#: Layout of a worker's mark slot: started (CLOCK_MONOTONIC seconds, shared by all processes), label length.
_HEADER = struct.Struct("<dI")
#: Bytes of a label kept (a longer one is cut: it names a file and a record, not a document).
MAX_LABEL = 16384


@dataclass(frozen=True)
class Budget:
    """What one item of work may take in a supervised worker.

    Parameters
    ----------
    timeout : float or None
        Seconds of wall-clock time from one :func:`mark` to the next (per item); ``None`` or 0: no limit.
    memory_mb : int or None
        Address space in MiB a worker process may map beyond what it holds when it starts (``RLIMIT_AS``);
        an allocation past it raises ``MemoryError`` in the worker. ``None`` or 0: no cap.
    """

    timeout: Optional[float] = None
    memory_mb: Optional[int] = None

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout < 0:
            raise XtalbaseError(f"a time budget must be positive seconds, or 0 for none (got {self.timeout})")
        if self.memory_mb is not None and self.memory_mb < 0:
            raise XtalbaseError(f"a memory cap must be positive MiB, or 0 for none (got {self.memory_mb})")

    @property
    def active(self) -> bool:
        """Whether any limit is set (otherwise work may run unsupervised, in this process)."""
        return bool(self.timeout) or bool(self.memory_mb)


class BudgetExceeded(XtalbaseError):
    """An item ran past its budget, or its worker died on it; the worker was replaced.

    Attributes
    ----------
    reason : {"timeout", "died"}
        Past the wall-clock limit (the worker was killed), or the worker ended on its own (a signal such as
        SIGSEGV or SIGKILL from the kernel's OOM killer, or an exit) while on the item.
    label : str
        The label of the last :func:`mark` of the worker ("" when it marked nothing).
    seconds : float
        How long the item had run when it was stopped.
    """

    def __init__(self, reason: str, label: str, seconds: float, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.label, self.seconds, self.detail = reason, label, seconds, detail

    def __reduce__(self) -> tuple:
        return type(self), (self.reason, self.label, self.seconds, self.detail)


class MarkSlot:
    """A worker's mark, in an anonymous shared mapping created before the fork (the parent reads it)."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _HEADER.size + MAX_LABEL)

    def write(self, label: str) -> None:
        """Start the clock of a new item named ``label``."""
        # surrogatepass: a file name that is not UTF-8 (os.fsdecode's surrogates) must come back exactly, or the
        # parent could not tell which record to pass over
        data = label.encode("utf-8", "surrogatepass")[:MAX_LABEL]
        self._map[_HEADER.size:_HEADER.size + len(data)] = data
        self._map[:_HEADER.size] = _HEADER.pack(time.monotonic(), len(data))

    def read(self) -> tuple[float, str]:
        """``(when the item began, its label)``."""
        started, size = _HEADER.unpack(self._map[:_HEADER.size])
        return started, self._map[_HEADER.size:_HEADER.size + size].decode("utf-8", "surrogatepass")

    def close(self) -> None:
        """Release the mapping."""
        self._map.close()


class _WorkerState:
    slot: Optional[MarkSlot] = None
    retire: bool = False


_state = _WorkerState()


def mark(label: str) -> None:
    """Begin the item named ``label`` in this worker: its time budget starts now (a no-op outside a worker)."""
    if _state.slot is not None:
        _state.slot.write(label)


def retire() -> None:
    """Ask for this worker to be replaced after its current task (its heap may be fragmented after a
    ``MemoryError``); a no-op outside a supervised worker."""
    _state.retire = True


def in_worker(slot: MarkSlot) -> None:
    """Called once in a new worker process: its marks go to ``slot``."""
    _state.slot, _state.retire = slot, False


def retiring() -> bool:
    """Whether :func:`retire` was called in this worker."""
    return _state.retire
