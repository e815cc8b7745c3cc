"""XRD peak indexes: ``xrd_peak_indexes``, every computed pattern of a recipe in one blob for phase search.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('xrd_peak_indexes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipe_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('n_patterns', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['recipe_id'], ['xrd_recipes.id'], name=op.f('fk_xrd_peak_indexes_recipe_id_xrd_recipes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_xrd_peak_indexes')),
    sa.UniqueConstraint('recipe_id', 'fingerprint', name=op.f('uq_xrd_peak_indexes_recipe_id_fingerprint'))
    )
    with op.batch_alter_table('xrd_peak_indexes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xrd_peak_indexes_recipe_id'), ['recipe_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('xrd_peak_indexes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_xrd_peak_indexes_recipe_id'))
    op.drop_table('xrd_peak_indexes')
