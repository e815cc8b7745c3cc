"""Schema changes for XRD patterns and peaks (issue 4): index measured scans by file hash.

The XRD tables themselves are in 0001; importing a measured scan looks it up by ``file_hash``
so that a re-import is a no-op.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("xrd_patterns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_xrd_patterns_file_hash"), ["file_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("xrd_patterns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_xrd_patterns_file_hash"))
