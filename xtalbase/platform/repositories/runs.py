"""The SQL of ``runs``, ``run_links`` and ``run_notes``: start, finish, link, note, read back.

Functions take the ``Session`` they work in; the caller owns the transaction.
"""

from __future__ import annotations

import socket
from typing import Any, Iterable, Optional

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.schema import Run, RunLink, RunNote
from xtalbase.schema.base import utcnow
from xtalbase.schema.runs import LINK_COLUMNS, Direction, LinkKind, RunStatus

#: Kinds whose link names a file or folder (``path`` is required).
PATH_KINDS = (LinkKind.FILE, LinkKind.PATH)


class LinkError(XtalbaseError):
    """A run link is malformed: unknown direction or kind, or the reference its kind needs is missing."""


def make_link(run_id: int, direction: Direction | str, kind: LinkKind | str, row_id: int | None = None, *,
              label: str | None = None, sha256: str | None = None, path: str | None = None) -> RunLink:
    """A checked, unsaved :class:`RunLink`; raises :class:`LinkError` naming the run and the reason.

    Row kinds (:data:`LINK_COLUMNS`) need ``row_id``; ``file``/``path`` need
    ``path``; ``training_set`` and ``predictions`` need a ``label``.
    """
    where = f"run {run_id}"
    try:
        direction = Direction(direction)
        kind = LinkKind(kind)
    except ValueError as exc:
        raise LinkError(f"{where}: {exc}; directions {[d.value for d in Direction]}, kinds {[k.value for k in LinkKind]}") from None
    values: dict[str, Any] = {"run_id": run_id, "direction": direction.value, "kind": kind.value, "sha256": sha256}
    if kind in LINK_COLUMNS:
        if isinstance(row_id, bool) or not isinstance(row_id, int):
            raise LinkError(f"{where}: a {kind.value} link needs the row id (an int), got {row_id!r}")
        values[LINK_COLUMNS[kind]] = row_id
        label = label if label is not None else str(row_id)
    elif row_id is not None:
        raise LinkError(f"{where}: a {kind.value} link refers to no table row; pass label= or path=, not {row_id!r}")
    if kind in PATH_KINDS:
        if not path:
            raise LinkError(f"{where}: a {kind.value} link needs path=")
        values["path"] = str(path)
        label = label if label is not None else str(path)[-255:]  # the tail names the file
    if not label:
        raise LinkError(f"{where}: a {kind.value} link needs a label")
    values["ref"] = str(label)[:255]
    return RunLink(**values)


def start_run(session: Session, kind: str, params: dict[str, Any], parent: int | None, environment: dict[str, Any]) -> int:
    """Insert a ``running`` run and return its id (the caller commits)."""
    run = Run(kind=kind, status=RunStatus.RUNNING.value, params=params, parent_id=parent, **environment)
    session.add(run)
    session.flush()
    return run.id


def finish_run(session: Session, run_id: int, status: RunStatus, *, error: str | None = None,
               summary: dict[str, Any] | None = None) -> None:
    """Close a run as ``succeeded`` or ``failed`` (the caller commits)."""
    session.execute(update(Run).where(Run.id == run_id).values(
        status=RunStatus(status).value, ended_at=utcnow(), error=error, summary=summary or None))


def running_runs_of_host(session: Session, host: str | None = None) -> list[Run]:
    """Runs still marked ``running`` on ``host`` (this machine by default)."""
    host = host or socket.gethostname()
    return list(session.scalars(select(Run).where(Run.status == RunStatus.RUNNING.value, Run.host == host)))


def get_run(session: Session, run_id: int) -> Run:
    """The run with ``run_id`` or :class:`NotFound`."""
    run = session.get(Run, int(run_id))
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def list_runs(session: Session, *, kind: str | None = None, status: str | None = None, limit: int = 50) -> list[Run]:
    """Runs newest first, optionally of one kind and status."""
    stmt = select(Run).order_by(Run.id.desc()).limit(limit)
    if kind:
        stmt = stmt.where(Run.kind == kind)
    if status:
        stmt = stmt.where(Run.status == status)
    return list(session.scalars(stmt))


def add_links(session: Session, links: Iterable[RunLink]) -> None:
    """Add checked links (from :func:`make_link`) to ``session``."""
    session.add_all(list(links))


def links_of(session: Session, run_id: int, direction: Direction | str | None = None) -> list[RunLink]:
    """The links of a run in the order written, optionally of one direction."""
    stmt = select(RunLink).where(RunLink.run_id == run_id).order_by(RunLink.id)
    if direction is not None:
        stmt = stmt.where(RunLink.direction == Direction(direction).value)
    return list(session.scalars(stmt))


def runs_linking(session: Session, kind: LinkKind | str, row_id: int, direction: Direction | str) -> list[Run]:
    """Runs with a ``direction`` link to row ``row_id`` of ``kind`` (e.g. the run that output a model), oldest first."""
    kind = LinkKind(kind)
    if kind not in LINK_COLUMNS:
        raise LinkError(f"{kind.value} links refer to no table row")
    column = getattr(RunLink, LINK_COLUMNS[kind])
    stmt = (select(Run).join(RunLink, RunLink.run_id == Run.id)
            .where(column == row_id, RunLink.direction == Direction(direction).value).distinct().order_by(Run.id))
    return list(session.scalars(stmt))


def add_note(session: Session, run_id: int, text: str) -> RunNote:
    """Attach a free-text note to a run (notes stay editable; the run's facts do not)."""
    get_run(session, run_id)
    if not text.strip():
        raise XtalbaseError(f"run {run_id}: a note needs some text")
    note = RunNote(run_id=run_id, text=text)
    session.add(note)
    session.flush()
    return note


def notes_of(session: Session, run_id: int) -> list[RunNote]:
    """The notes of a run, oldest first."""
    return list(session.scalars(select(RunNote).where(RunNote.run_id == run_id).order_by(RunNote.id)))


def link_dict(link: RunLink) -> dict[str, Any]:
    """A link as a JSON-ready dict: kind, label, the row id of its kind (``id``), path and sha256."""
    kind = LinkKind(link.kind)
    row: Optional[int] = getattr(link, LINK_COLUMNS[kind]) if kind in LINK_COLUMNS else None
    return {"kind": link.kind, "ref": link.ref, "id": row, "path": link.path, "sha256": link.sha256}


def run_dict(run: Run) -> dict[str, Any]:
    """The facts of a run as a JSON-ready dict (no links or notes)."""
    return {"id": run.id, "kind": run.kind, "status": run.status, "started_at": run.started_at, "ended_at": run.ended_at,
            "package_version": run.package_version, "git_revision": run.git_revision, "host": run.host, "user": run.user,
            "pid": run.pid, "parent_id": run.parent_id, "params": run.params, "dependency_versions": run.dependency_versions,
            "summary": run.summary, "error": run.error}


def run_detail(session: Session, run_id: int) -> dict[str, Any]:
    """A run with its params, versions, inputs, outputs and notes (``xtalbase runs show``)."""
    run = get_run(session, run_id)
    links = links_of(session, run.id)
    return {**run_dict(run),
            "inputs": [link_dict(link) for link in links if link.direction == Direction.INPUT.value],
            "outputs": [link_dict(link) for link in links if link.direction == Direction.OUTPUT.value],
            "notes": [{"id": n.id, "created_at": n.created_at, "text": n.text} for n in notes_of(session, run.id)]}
