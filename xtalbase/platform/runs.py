"""The ``with db.run(kind, params) as run:`` context that records provenance for every activity."""

from __future__ import annotations

import os
import socket
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy.orm import Session

from xtalbase.platform.provenance import environment
from xtalbase.platform.repositories import runs as repo
from xtalbase.schema.base import utcnow
from xtalbase.schema.runs import Direction, LinkKind, RunLink, RunStatus

if TYPE_CHECKING:
    from xtalbase.platform.database import Database


@dataclass
class RunContext:
    """What the block of a run sees: its id and a session committed only if the block succeeds.

    Work that must survive a later failure of the block (whole ingest batches)
    uses its own ``db.session()`` transactions and tags rows with ``run.id``.

    Inputs are committed on their own, so a failed run still shows what it
    read; outputs are written in the block's session and vanish with it.
    """

    id: int
    kind: str
    params: dict[str, Any]
    session: Session
    db: "Database"
    summary: dict[str, Any] = field(default_factory=dict)
    pending_inputs: list[RunLink] = field(default_factory=list)

    def link(self, direction: Direction | str, kind: LinkKind | str, row_id: int | None = None, *,
             label: str | None = None, sha256: str | None = None, path: str | None = None) -> None:
        """Record a typed input or output of this run (see :func:`~xtalbase.platform.repositories.runs.make_link`).

        Row kinds take the row id (``run.link("input", "model", model.id)``);
        ``file``/``path`` take ``path=``; ``label`` is the name shown to people.
        """
        link = repo.make_link(self.id, direction, kind, row_id, label=label, sha256=sha256, path=path)
        if link.direction == Direction.OUTPUT.value:
            self.session.add(link)
        elif self.db.engine.dialect.name == "sqlite" and self.session.in_transaction():
            # the block's open transaction holds SQLite's only write lock: a second one would wait on it
            self.pending_inputs.append(link)
        else:
            _commit_links(self.db, [link])

    def link_input(self, kind: LinkKind | str, row_id: int | None = None, **ref: Any) -> None:
        """Record something this run read; see :meth:`link`."""
        self.link(Direction.INPUT, kind, row_id, **ref)

    def link_output(self, kind: LinkKind | str, row_id: int | None = None, **ref: Any) -> None:
        """Record something this run made; see :meth:`link`."""
        self.link(Direction.OUTPUT, kind, row_id, **ref)


def _commit_links(db: "Database", links: list[RunLink]) -> None:
    with db.session() as s:
        repo.add_links(s, links)
        s.commit()


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
        stale = [r for r in repo.running_runs_of_host(s, host) if r.pid != os.getpid() and not _pid_alive(r.pid)]
        for r in stale:
            r.status = RunStatus.FAILED.value
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
        run_id = repo.start_run(s, kind, params, parent, environment())
        s.commit()
    session = db.session()
    ctx = RunContext(id=run_id, kind=kind, params=params, session=session, db=db)
    try:
        yield ctx
        session.commit()
    except BaseException as exc:
        session.rollback()
        session.close()
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip() or type(exc).__name__
        _finish(db, ctx, RunStatus.FAILED, error=message)
        raise
    session.close()
    _finish(db, ctx, RunStatus.SUCCEEDED)


def _finish(db: "Database", ctx: RunContext, status: RunStatus, *, error: str | None = None) -> None:
    with db.session() as s:
        repo.add_links(s, ctx.pending_inputs)  # inputs held back while the block held the write lock
        repo.finish_run(s, ctx.id, status, error=error, summary=ctx.summary)
        s.commit()
