"""XRD failures per (structure, recipe): ``xrd_failures``, so that a re-run skips what cannot be computed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The reason codes of this revision (``xtalbase.schema.xrd.XRD_FAILURE_REASONS`` at the time).
REASONS = ("no_sites", "bad_cell", "no_scattering_factors", "engine_error")


def upgrade() -> None:
    op.create_table(
        "xrd_failures",
        sa.Column("structure_id", sa.Integer(), nullable=False),
        sa.Column("recipe_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("reason IN ('" + "', '".join(REASONS) + "')", name=op.f("ck_xrd_failures_reason")),
        sa.ForeignKeyConstraint(["recipe_id"], ["xrd_recipes.id"], name=op.f("fk_xrd_failures_recipe_id_xrd_recipes")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_xrd_failures_run_id_runs")),
        sa.ForeignKeyConstraint(["structure_id"], ["structures.id"], name=op.f("fk_xrd_failures_structure_id_structures")),
        sa.PrimaryKeyConstraint("structure_id", "recipe_id", name=op.f("pk_xrd_failures")),
    )
    with op.batch_alter_table("xrd_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_xrd_failures_recipe_id"), ["recipe_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_xrd_failures_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("xrd_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_xrd_failures_run_id"))
        batch_op.drop_index(batch_op.f("ix_xrd_failures_recipe_id"))
    op.drop_table("xrd_failures")
