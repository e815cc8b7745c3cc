"""SQL of the CSP tables: runs and their samples, evaluations and their per-pair results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import insert, select, update

from xtalbase.errors import NotFound
from xtalbase.platform.repositories import chunks
from xtalbase.schema import CspEvaluation, CspPairResult, CspRun, CspSample, Source, Structure

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Rows per INSERT of samples and pair results.
BATCH = 2000


def get_csp_run(session: "Session", ref: int | str) -> CspRun:
    """The CSP run with id ``ref`` (an int or digits) or name ``ref``; :class:`NotFound` otherwise."""
    row = None
    if isinstance(ref, int) or str(ref).isdigit():
        row = session.get(CspRun, int(ref))
    if row is None:
        row = session.scalars(select(CspRun).where(CspRun.name == str(ref))).first()
    if row is None:
        known = list(session.scalars(select(CspRun.name).order_by(CspRun.id.desc()).limit(20)))
        listed = f"; known: {', '.join(known)}" if known else "; none stored yet (`xtalbase csp sample` or `csp import`)"
        raise NotFound(f"no CSP run {ref!r}{listed}")
    return row


def csp_run_named(session: "Session", name: str) -> bool:
    """Whether a CSP run called ``name`` exists (sealed or not)."""
    return session.scalar(select(CspRun.id).where(CspRun.name == name)) is not None


def csp_runs(session: "Session", split_hash: str | None = None) -> list[CspRun]:
    """Sealed CSP runs, oldest first; only those on ``split_hash`` when given."""
    stmt = select(CspRun).where(CspRun.sealed.is_(True)).order_by(CspRun.id)
    if split_hash is not None:
        stmt = stmt.where(CspRun.split_hash == split_hash)
    return list(session.scalars(stmt))


def add_samples(session: "Session", rows: Iterable[dict[str, Any]]) -> int:
    """Insert sample rows (``csp_run_id, structure_id, sample, nsites, cell, numbers, frac_coords``); returns the count."""
    n = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            session.execute(insert(CspSample), batch)
            n += len(batch)
            batch = []
    if batch:
        session.execute(insert(CspSample), batch)
        n += len(batch)
    return n


def seal(session: "Session", row: CspRun | CspEvaluation, **fields: Any) -> None:
    """Set the final ``fields`` of a run or evaluation and seal it (no change is possible afterwards)."""
    table = type(row)
    session.execute(update(table).where(table.id == row.id).values(sealed=True, **fields))
    session.refresh(row)


def samples_of(session: "Session", csp_run_id: int) -> list[Any]:
    """``(structure_id, sample, nsites, cell, numbers, frac_coords)`` rows of a CSP run, by structure then sample."""
    stmt = (select(CspSample.structure_id, CspSample.sample, CspSample.nsites, CspSample.cell, CspSample.numbers,
                   CspSample.frac_coords)
            .where(CspSample.csp_run_id == csp_run_id).order_by(CspSample.structure_id, CspSample.sample))
    return list(session.execute(stmt))


def structures_by_id(session: "Session", ids: Sequence[int]) -> dict[int, Structure]:
    """Stored ``structures`` rows by id."""
    out: dict[int, Structure] = {}
    for part in chunks(list(ids)):
        out.update({s.id: s for s in session.scalars(select(Structure).where(Structure.id.in_(part)))})
    return out


def source_ids(session: "Session", structure_ids: Sequence[int]) -> dict[int, list[str]]:
    """The source record ids (``material_id`` of a CSV, a file's record name) of each structure."""
    out: dict[int, list[str]] = {}
    for part in chunks(list(structure_ids)):
        rows = session.execute(select(Source.structure_id, Source.external_id).where(Source.structure_id.in_(part))
                               .order_by(Source.structure_id, Source.id))
        for sid, name in rows:
            if name is not None:
                out.setdefault(sid, []).append(str(name))
    return out


def get_evaluation(session: "Session", csp_run_id: int, settings_hash: str) -> CspEvaluation | None:
    """The sealed evaluation of a CSP run with these settings, if one is stored."""
    return session.scalars(select(CspEvaluation).where(CspEvaluation.csp_run_id == csp_run_id,
                                                       CspEvaluation.settings_hash == settings_hash,
                                                       CspEvaluation.sealed.is_(True))).first()


def add_pair_results(session: "Session", rows: Sequence[dict[str, Any]]) -> None:
    """Insert per-pair result rows of one evaluation."""
    for part in chunks(list(rows), BATCH):
        session.execute(insert(CspPairResult), part)


def pair_results(session: "Session", evaluation_id: int) -> list[dict[str, Any]]:
    """Every pair result of an evaluation as dicts, by structure then sample."""
    cols = [c for c in CspPairResult.__table__.columns if c.name != "evaluation_id"]
    stmt = select(*cols).where(CspPairResult.evaluation_id == evaluation_id).order_by(CspPairResult.structure_id,
                                                                                      CspPairResult.sample)
    return [dict(r._mapping) for r in session.execute(stmt)]
