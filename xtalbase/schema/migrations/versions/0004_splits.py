"""Schema changes for splits and datasets (immutability) (issue 5).

Adds ``splits.sealed`` and ``datasets.sealed`` and triggers that refuse, once a
split or dataset is sealed, any UPDATE or DELETE of its row and any INSERT,
UPDATE or DELETE of its member rows. SQLite uses ``RAISE(ABORT, ...)``;
PostgreSQL uses PL/pgSQL trigger functions raising SQLSTATE 23000 (integrity
constraint violation), so both backends surface the refusal as an
``IntegrityError`` whose message contains ``immutable``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (parent table, member table, foreign key column in the member table)
_GUARDED = (("splits", "split_members", "split_id"), ("datasets", "dataset_members", "dataset_id"))


def _sqlite_statements(parent: str, members: str, fk: str) -> list[str]:
    sealed = f"(SELECT sealed FROM {parent} WHERE id = %s.{fk}) = 1"
    msg = f"{parent} is immutable: sealed rows and their {members} cannot change"
    body = f"BEGIN SELECT RAISE(ABORT, '{msg}'); END"
    return [
        f"CREATE TRIGGER trg_{parent}_sealed_update BEFORE UPDATE ON {parent} WHEN OLD.sealed = 1 {body}",
        f"CREATE TRIGGER trg_{parent}_sealed_delete BEFORE DELETE ON {parent} WHEN OLD.sealed = 1 {body}",
        f"CREATE TRIGGER trg_{members}_sealed_insert BEFORE INSERT ON {members} WHEN {sealed % 'NEW'} {body}",
        f"CREATE TRIGGER trg_{members}_sealed_update BEFORE UPDATE ON {members} "
        f"WHEN {sealed % 'OLD'} OR {sealed % 'NEW'} {body}",
        f"CREATE TRIGGER trg_{members}_sealed_delete BEFORE DELETE ON {members} WHEN {sealed % 'OLD'} {body}",
    ]


def _postgresql_statements(parent: str, members: str, fk: str) -> list[str]:
    refuse = (f"RAISE EXCEPTION '{parent} is immutable: % on % refused (sealed)', TG_OP, TG_TABLE_NAME "
              "USING ERRCODE = 'integrity_constraint_violation'")
    return [
        f"""CREATE FUNCTION xtalbase_guard_{parent}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.sealed THEN
        {refuse};
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$""",
        f"""CREATE FUNCTION xtalbase_guard_{members}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND EXISTS (SELECT 1 FROM {parent} WHERE id = OLD.{fk} AND sealed) THEN
        {refuse};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND EXISTS (SELECT 1 FROM {parent} WHERE id = NEW.{fk} AND sealed) THEN
        {refuse};
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$""",
        f"CREATE TRIGGER trg_{parent}_sealed BEFORE UPDATE OR DELETE ON {parent} "
        f"FOR EACH ROW EXECUTE FUNCTION xtalbase_guard_{parent}()",
        f"CREATE TRIGGER trg_{members}_sealed BEFORE INSERT OR UPDATE OR DELETE ON {members} "
        f"FOR EACH ROW EXECUTE FUNCTION xtalbase_guard_{members}()",
    ]


def upgrade() -> None:
    for parent, _, _ in _GUARDED:
        with op.batch_alter_table(parent, schema=None) as batch_op:
            batch_op.add_column(sa.Column("sealed", sa.Boolean(), server_default=sa.false(), nullable=False))
        # rows written before this revision were complete when written
        op.execute(sa.text(f"UPDATE {parent} SET sealed = :yes").bindparams(yes=True))
    dialect = op.get_bind().dialect.name
    for guarded in _GUARDED:
        statements = _sqlite_statements(*guarded) if dialect == "sqlite" else _postgresql_statements(*guarded)
        for statement in statements:
            op.execute(statement)


def _drop_statements(parent: str, members: str, dialect: str) -> list[str]:
    """The statements that remove what :func:`_sqlite_statements` / :func:`_postgresql_statements` created."""
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS trg_{t}" for t in (f"{parent}_sealed_update", f"{parent}_sealed_delete",
                                                              f"{members}_sealed_insert", f"{members}_sealed_update",
                                                              f"{members}_sealed_delete")]
    return [f"DROP TRIGGER IF EXISTS trg_{parent}_sealed ON {parent}", f"DROP TRIGGER IF EXISTS trg_{members}_sealed ON {members}",
            f"DROP FUNCTION IF EXISTS xtalbase_guard_{parent}()", f"DROP FUNCTION IF EXISTS xtalbase_guard_{members}()"]


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for parent, members, _ in _GUARDED:
        for statement in _drop_statements(parent, members, dialect):
            op.execute(statement)
    for parent, _, _ in _GUARDED:
        with op.batch_alter_table(parent, schema=None) as batch_op:
            batch_op.drop_column("sealed")
