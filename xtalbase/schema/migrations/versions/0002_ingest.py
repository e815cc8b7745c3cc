"""Schema changes for ingest (sources, quarantine, calculations) (issue 3).

None were needed: the foundation's ``structures``, ``sources`` (unique file_hash +
record_locator), ``source_properties``, ``calculations`` and ``quarantine`` (unique
file_hash + record_locator + reason) tables carry everything ingest stores, and the
unique keys serve its lookups. The revision stays in the chain as a no-op.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
