"""Paths of the ingest fixtures and small query helpers shared by the ingest tests."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from tests.conftest import TEST_DATA

DATA = TEST_DATA / "ingest"
BAD = DATA / "bad"
CIF = DATA / "cif"


def count(db, model, *where) -> int:
    """Rows of ``model`` matching ``where``."""
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def structure_ids_of(db, *paths: Path) -> dict[str, int]:
    """``{file name: structure id}`` for sources read from ``paths``."""
    from xtalbase.schema import Source

    with db.session() as s:
        rows = s.execute(select(Source.file_path, Source.structure_id)).all()
    wanted = {str(p) for p in paths}
    return {Path(f).name: sid for f, sid in rows if f in wanted}
