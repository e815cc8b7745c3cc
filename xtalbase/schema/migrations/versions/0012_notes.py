"""Structure notes: ``structure_notes``, free text a curator adds to a structure from the web pages.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('structure_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_structure_notes_structure_id_structures'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_structure_notes'))
    )
    with op.batch_alter_table('structure_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_structure_notes_structure_id'), ['structure_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('structure_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_structure_notes_structure_id'))
    op.drop_table('structure_notes')
