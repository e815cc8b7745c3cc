"""The packaged migration chain matches the models and round-trips on every backend."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import xtalbase
from xtalbase.platform import migrate
from xtalbase.schema import Base


def test_init_is_idempotent(db_url):
    db = xtalbase.connect(db_url)
    first = db.init()
    assert first["before"] is None and first["revision"] == migrate.head_revision()
    second = db.init()
    assert second["before"] == second["revision"] == migrate.head_revision()
    db.close()


def test_models_and_migrations_do_not_drift(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_round_trip_upgrade_downgrade_upgrade(db):
    migrate.downgrade(db.engine, "base")
    assert db.revision() is None
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(db.engine, "head")
    assert db.revision() == migrate.head_revision()
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())


def test_status_reports_head_and_counts(db):
    info = db.status()
    assert info["up_to_date"] and info["revision"] == migrate.head_revision()
    assert info["counts"]["structures"] == 0 and "runs" in info["counts"]
