import os
import socket

import pytest
from sqlalchemy import func, select

from xtalbase.platform.provenance import environment
from xtalbase.schema import Run, XrdRecipe


def _recipe(tag: str) -> XrdRecipe:
    return XrdRecipe(hash=tag * 8, wavelength=1.54184, two_theta_min=0, two_theta_max=90, merge_tol=0.01, code_version="t")


def test_successful_run_records_provenance_and_commits(db):
    with db.run("ingest", {"paths": ["a.cif"]}) as run:
        run.session.add(_recipe("ok"))
        run.summary["inserted"] = 1
    with db.session() as s:
        row = s.get(Run, run.id)
        assert row.status == "succeeded"
        assert row.params == {"paths": ["a.cif"]}
        assert row.summary == {"inserted": 1}
        assert row.ended_at is not None and row.ended_at >= row.started_at
        assert row.package_version and row.host == socket.gethostname()
        assert "sqlalchemy" in row.dependency_versions
        assert s.scalar(select(func.count()).select_from(XrdRecipe)) == 1


def test_failed_block_leaves_failed_run_and_no_partial_rows(db):
    with pytest.raises(ValueError, match="bad record"):
        with db.run("ingest", {}) as run:
            run.session.add(_recipe("aa"))
            run.session.flush()  # the row reached the database inside the transaction
            raise ValueError("bad record 17")
    with db.session() as s:
        row = s.get(Run, run.id)
        assert row.status == "failed"
        assert "bad record 17" in row.error
        assert s.scalar(select(func.count()).select_from(XrdRecipe)) == 0


def test_abandoned_run_is_marked_failed_by_next_run(db):
    env = environment() | {"pid": 2**22 + 12345}  # a pid that cannot be alive
    assert env["host"] == socket.gethostname()
    with db.session() as s:
        ghost = Run(kind="ingest", status="running", params={}, **env)
        s.add(ghost)
        s.commit()
        ghost_id = ghost.id
    with db.run("ingest", {}):
        pass
    with db.session() as s:
        row = s.get(Run, ghost_id)
        assert row.status == "failed" and "abandoned" in row.error


def test_parent_runs_link(db):
    with db.run("pipeline") as parent:
        with db.run("xrd", parent=parent.id) as child:
            pass
    with db.session() as s:
        assert s.get(Run, child.id).parent_id == parent.id
        assert s.get(Run, child.id).pid == os.getpid()
