"""Descriptors: ``descriptor_recipes`` (stored once per content hash) and ``descriptor_values`` (cached vectors).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('descriptor_recipes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('n_features', sa.Integer(), nullable=False),
    sa.Column('names', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_descriptor_recipes')),
    sa.UniqueConstraint('hash', name=op.f('uq_descriptor_recipes_hash'))
    )
    with op.batch_alter_table('descriptor_recipes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_descriptor_recipes_name'), ['name'], unique=False)

    op.create_table('descriptor_values',
    sa.Column('recipe_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['recipe_id'], ['descriptor_recipes.id'], name=op.f('fk_descriptor_values_recipe_id_descriptor_recipes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_descriptor_values_run_id_runs')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_descriptor_values_structure_id_structures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('recipe_id', 'structure_id', name=op.f('pk_descriptor_values'))
    )
    with op.batch_alter_table('descriptor_values', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_descriptor_values_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_descriptor_values_structure_id'), ['structure_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('descriptor_values', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_descriptor_values_structure_id'))
        batch_op.drop_index(batch_op.f('ix_descriptor_values_run_id'))

    op.drop_table('descriptor_values')
    with op.batch_alter_table('descriptor_recipes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_descriptor_recipes_name'))

    op.drop_table('descriptor_recipes')
