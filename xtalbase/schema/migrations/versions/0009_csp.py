"""Crystal-structure prediction: ``csp_runs``, ``csp_samples``, ``csp_evaluations``, ``csp_pair_results``.

Runs and their samples, and evaluations and their pair results, are sealed when written: the triggers of
revision 0004 (same SQL, same ``immutable`` message) refuse any later change.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

#: The pair statuses of this revision (``xtalbase.schema.csp.PAIR_STATUSES`` at the time).
STATUSES = ("matched", "no_match", "invalid", "composition_mismatch", "missing", "timeout", "error")

# (parent table, member table, foreign key column in the member table)
_GUARDED = (("csp_runs", "csp_samples", "csp_run_id"), ("csp_evaluations", "csp_pair_results", "evaluation_id"))


def _v0004():
    path = Path(__file__).with_name("0004_splits.py")
    spec = importlib.util.spec_from_file_location("_xtalbase_migration_0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.create_table('csp_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('split_id', sa.Integer(), nullable=False),
    sa.Column('split_hash', sa.String(length=64), nullable=False),
    sa.Column('fold', sa.String(length=16), nullable=False),
    sa.Column('k', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('n_structures', sa.Integer(), nullable=False),
    sa.Column('n_samples', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('library_versions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('sealed', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("origin IN ('sampled', 'imported')", name=op.f('ck_csp_runs_origin')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_csp_runs_model_id_models')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_csp_runs_run_id_runs')),
    sa.ForeignKeyConstraint(['split_id'], ['splits.id'], name=op.f('fk_csp_runs_split_id_splits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csp_runs')),
    sa.UniqueConstraint('name', name=op.f('uq_csp_runs_name'))
    )
    with op.batch_alter_table('csp_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_csp_runs_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_csp_runs_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_csp_runs_split_hash'), ['split_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_csp_runs_split_id'), ['split_id'], unique=False)

    op.create_table('csp_evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('csp_run_id', sa.Integer(), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('settings_hash', sa.String(length=64), nullable=False),
    sa.Column('library_versions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('sealed', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['csp_run_id'], ['csp_runs.id'], name=op.f('fk_csp_evaluations_csp_run_id_csp_runs')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_csp_evaluations_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_csp_evaluations')),
    sa.UniqueConstraint('csp_run_id', 'settings_hash', name=op.f('uq_csp_evaluations_csp_run_id_settings_hash'))
    )
    with op.batch_alter_table('csp_evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_csp_evaluations_csp_run_id'), ['csp_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_csp_evaluations_run_id'), ['run_id'], unique=False)

    op.create_table('csp_samples',
    sa.Column('csp_run_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('sample', sa.Integer(), nullable=False),
    sa.Column('nsites', sa.Integer(), nullable=False),
    sa.Column('cell', sa.LargeBinary(), nullable=False),
    sa.Column('numbers', sa.LargeBinary(), nullable=False),
    sa.Column('frac_coords', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['csp_run_id'], ['csp_runs.id'], name=op.f('fk_csp_samples_csp_run_id_csp_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_csp_samples_structure_id_structures')),
    sa.PrimaryKeyConstraint('csp_run_id', 'structure_id', 'sample', name=op.f('pk_csp_samples'))
    )
    with op.batch_alter_table('csp_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_csp_samples_structure_id'), ['structure_id'], unique=False)

    op.create_table('csp_pair_results',
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('sample', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('struct_valid', sa.Boolean(), nullable=False),
    sa.Column('comp_valid', sa.Boolean(), nullable=False),
    sa.Column('ref_struct_valid', sa.Boolean(), nullable=False),
    sa.Column('ref_comp_valid', sa.Boolean(), nullable=False),
    sa.Column('rms', sa.Float(), nullable=True),
    sa.Column('volume_ratio', sa.Float(), nullable=True),
    sa.Column('spacegroup_pred', sa.Integer(), nullable=True),
    sa.Column('spacegroup_ref', sa.Integer(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.CheckConstraint("status IN ('" + "', '".join(STATUSES) + "')", name=op.f('ck_csp_pair_results_status')),
    sa.ForeignKeyConstraint(['evaluation_id'], ['csp_evaluations.id'], name=op.f('fk_csp_pair_results_evaluation_id_csp_evaluations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_csp_pair_results_structure_id_structures')),
    sa.PrimaryKeyConstraint('evaluation_id', 'structure_id', 'sample', name=op.f('pk_csp_pair_results'))
    )
    with op.batch_alter_table('csp_pair_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_csp_pair_results_structure_id'), ['structure_id'], unique=False)
    v0004 = _v0004()
    sqlite = op.get_bind().dialect.name == "sqlite"
    for guarded in _GUARDED:
        for statement in (v0004._sqlite_statements(*guarded) if sqlite else v0004._postgresql_statements(*guarded)):
            op.execute(statement)


def downgrade() -> None:
    v0004 = _v0004()
    dialect = op.get_bind().dialect.name
    for parent, members, _ in _GUARDED:
        for statement in v0004._drop_statements(parent, members, dialect):
            op.execute(statement)
    with op.batch_alter_table('csp_pair_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_csp_pair_results_structure_id'))
    op.drop_table('csp_pair_results')
    with op.batch_alter_table('csp_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_csp_samples_structure_id'))

    op.drop_table('csp_samples')
    with op.batch_alter_table('csp_evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_csp_evaluations_run_id'))
        batch_op.drop_index(batch_op.f('ix_csp_evaluations_csp_run_id'))

    op.drop_table('csp_evaluations')
    with op.batch_alter_table('csp_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_csp_runs_split_id'))
        batch_op.drop_index(batch_op.f('ix_csp_runs_split_hash'))
        batch_op.drop_index(batch_op.f('ix_csp_runs_run_id'))
        batch_op.drop_index(batch_op.f('ix_csp_runs_model_id'))

    op.drop_table('csp_runs')
