"""Schema changes for model registry (issue 7): none.

The ``models`` and ``predictions`` tables of 0001 already hold everything the registry stores (task,
algorithm, hyperparameters, seed, feature and XRD recipes, split/dataset and fold, training-set hash,
metrics, library and code versions, artifact bytes + format + sha256, parent model; predictions with label,
value and a JSON payload of top-k classes). This revision stays in the chain as an explicit no-op so later
changes to the registry have their place.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
