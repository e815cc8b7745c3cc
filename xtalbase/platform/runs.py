"""The ``with db.run(kind, params) as run:`` context that records provenance for every activity."""

from __future__ import annotations

import os
import socket
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from xtalbase.platform.provenance import environment
from xtalbase.schema import Run, RunLink
from xtalbase.schema.base import utcnow

if TYPE_CHECKING:
    from xtalbase.platform.database import Database


@dataclass
class RunContext:
    """What the block of a run sees: its id and a session committed only if the block succeeds.

    Work that must survive a later failure of the block (whole ingest batches)
    uses its own ``db.session()`` transactions and tags rows with ``run.id``.
    """

    id: int
    kind: str
    params: dict[str, Any]
    session: Session
    summary: dict[str, Any] = field(default_factory=dict)

    def link(self, direction: str, kind: str, ref: str | int, sha256: str | None = None) -> None:
        """Record an input or output of this run (committed with the block)."""
        self.session.add(RunLink(run_id=self.id, direction=direction, kind=kind, ref=str(ref), sha256=sha256))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_abandoned_runs(db: "Database") -> list[int]:
    """Mark ``running`` runs of this host whose process is gone as failed; returns their ids.

    A run killed with SIGKILL never reaches its ``finally``; the next run on the
    same host finds it here. Runs of other hosts are left alone (their process
    table is not visible from here).
    """
    host = socket.gethostname()
    with db.session() as s:
        stale = [r for r in s.scalars(select(Run).where(Run.status == "running", Run.host == host))
                 if r.pid != os.getpid() and not _pid_alive(r.pid)]
        for r in stale:
            r.status = "failed"
            r.ended_at = utcnow()
            r.error = f"abandoned: process {r.pid} on {host} ended without finishing the run (killed?)"
        s.commit()
        return [r.id for r in stale]


@contextmanager
def record_run(db: "Database", kind: str, params: dict[str, Any] | None = None, parent: int | None = None) -> Iterator[RunContext]:
    """Record a ``runs`` row around a block; see :meth:`Database.run`."""
    mark_abandoned_runs(db)
    params = dict(params or {})
    with db.session() as s:
        run = Run(kind=kind, status="running", params=params, parent_id=parent, **environment())
        s.add(run)
        s.commit()
        run_id = run.id
    session = db.session()
    ctx = RunContext(id=run_id, kind=kind, params=params, session=session)
    try:
        yield ctx
        session.commit()
    except BaseException as exc:
        session.rollback()
        session.close()
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip() or type(exc).__name__
        _finish(db, run_id, "failed", error=message, summary=ctx.summary)
        raise
    session.close()
    _finish(db, run_id, "succeeded", summary=ctx.summary)


def _finish(db: "Database", run_id: int, status: str, *, error: str | None = None, summary: dict | None = None) -> None:
    with db.session() as s:
        s.execute(update(Run).where(Run.id == run_id).values(status=status, ended_at=utcnow(), error=error, summary=summary or None))
        s.commit()
