"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('package_version', sa.String(length=64), nullable=False),
    sa.Column('git_revision', sa.String(length=64), nullable=True),
    sa.Column('dependency_versions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['runs.id'], name=op.f('fk_runs_parent_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_status'), ['status'], unique=False)

    op.create_table('xrd_recipes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('radiation', sa.String(length=16), nullable=True),
    sa.Column('wavelength', sa.Float(), nullable=False),
    sa.Column('two_theta_min', sa.Float(), nullable=False),
    sa.Column('two_theta_max', sa.Float(), nullable=False),
    sa.Column('merge_tol', sa.Float(), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_xrd_recipes')),
    sa.UniqueConstraint('hash', name=op.f('uq_xrd_recipes_hash'))
    )
    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('record_locator', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('raw_text', sa.Text(), nullable=True),
    sa.Column('raw_hash', sa.String(length=64), nullable=True),
    sa.Column('raw_size', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_quarantine_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine')),
    sa.UniqueConstraint('file_hash', 'record_locator', 'reason', name=op.f('uq_quarantine_file_hash_record_locator_reason'))
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_quarantine_run_id'), ['run_id'], unique=False)

    op.create_table('run_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_links_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_links'))
    )
    with op.batch_alter_table('run_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_links_kind_ref'), ['kind', 'ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_links_run_id'), ['run_id'], unique=False)

    op.create_table('run_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_notes_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_notes'))
    )
    with op.batch_alter_table('run_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_notes_run_id'), ['run_id'], unique=False)

    op.create_table('splits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('strategy', sa.String(length=32), nullable=False),
    sa.Column('recipe', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('counts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_splits_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_splits')),
    sa.UniqueConstraint('name', name=op.f('uq_splits_name'))
    )
    with op.batch_alter_table('splits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_splits_hash'), ['hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_splits_run_id'), ['run_id'], unique=False)

    op.create_table('structures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('exact_hash', sa.String(length=64), nullable=False),
    sa.Column('canonical_hash', sa.String(length=64), nullable=False),
    sa.Column('hash_version', sa.Integer(), nullable=False),
    sa.Column('formula_reduced', sa.String(length=255), nullable=False),
    sa.Column('formula_anonymous', sa.String(length=255), nullable=False),
    sa.Column('chemical_system', sa.String(length=255), nullable=False),
    sa.Column('nelements', sa.Integer(), nullable=False),
    sa.Column('nsites', sa.Integer(), nullable=False),
    sa.Column('a', sa.Float(), nullable=False),
    sa.Column('b', sa.Float(), nullable=False),
    sa.Column('c', sa.Float(), nullable=False),
    sa.Column('alpha', sa.Float(), nullable=False),
    sa.Column('beta', sa.Float(), nullable=False),
    sa.Column('gamma', sa.Float(), nullable=False),
    sa.Column('volume', sa.Float(), nullable=False),
    sa.Column('density', sa.Float(), nullable=False),
    sa.Column('cell', sa.LargeBinary(), nullable=False),
    sa.Column('numbers', sa.LargeBinary(), nullable=False),
    sa.Column('frac_coords', sa.LargeBinary(), nullable=False),
    sa.Column('site_occupancies', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('spacegroup_number', sa.Integer(), nullable=True),
    sa.Column('spacegroup_symbol', sa.String(length=32), nullable=True),
    sa.Column('crystal_system', sa.String(length=16), nullable=True),
    sa.Column('symprec', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_structures_run_id_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_structures')),
    sa.UniqueConstraint('exact_hash', name=op.f('uq_structures_exact_hash'))
    )
    with op.batch_alter_table('structures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_structures_canonical_hash'), ['canonical_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_chemical_system'), ['chemical_system'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_crystal_system'), ['crystal_system'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_density'), ['density'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_formula_anonymous'), ['formula_anonymous'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_formula_reduced'), ['formula_reduced'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_nelements'), ['nelements'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_nsites'), ['nsites'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_spacegroup_number'), ['spacegroup_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_structures_volume'), ['volume'], unique=False)

    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('split_id', sa.Integer(), nullable=True),
    sa.Column('fold', sa.String(length=16), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('n_members', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['datasets.id'], name=op.f('fk_datasets_parent_id_datasets')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_datasets_run_id_runs')),
    sa.ForeignKeyConstraint(['split_id'], ['splits.id'], name=op.f('fk_datasets_split_id_splits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_datasets_hash'), ['hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_datasets_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_datasets_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_datasets_split_id'), ['split_id'], unique=False)

    op.create_table('sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('database', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('record_locator', sa.String(length=255), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('licence', sa.Text(), nullable=True),
    sa.Column('raw_hash', sa.String(length=64), nullable=False),
    sa.Column('warnings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_sources_run_id_runs')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_sources_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources')),
    sa.UniqueConstraint('file_hash', 'record_locator', name=op.f('uq_sources_file_hash_record_locator'))
    )
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sources_database'), ['database'], unique=False)
        batch_op.create_index(batch_op.f('ix_sources_external_id'), ['external_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sources_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sources_structure_id'), ['structure_id'], unique=False)

    op.create_table('split_members',
    sa.Column('split_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('fold', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['split_id'], ['splits.id'], name=op.f('fk_split_members_split_id_splits'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_split_members_structure_id_structures')),
    sa.PrimaryKeyConstraint('split_id', 'structure_id', name=op.f('pk_split_members'))
    )
    with op.batch_alter_table('split_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_split_members_split_id_fold'), ['split_id', 'fold'], unique=False)
        batch_op.create_index(batch_op.f('ix_split_members_structure_id'), ['structure_id'], unique=False)

    op.create_table('structure_elements',
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('element', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_structure_elements_structure_id_structures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('structure_id', 'element', name=op.f('pk_structure_elements'))
    )
    with op.batch_alter_table('structure_elements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_structure_elements_element_structure_id'), ['element', 'structure_id'], unique=False)

    op.create_table('xrd_patterns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=True),
    sa.Column('recipe_id', sa.Integer(), nullable=True),
    sa.Column('npeaks', sa.Integer(), nullable=False),
    sa.Column('two_theta', sa.LargeBinary(), nullable=False),
    sa.Column('intensity', sa.LargeBinary(), nullable=False),
    sa.Column('d_spacing', sa.LargeBinary(), nullable=False),
    sa.Column('hkl_families', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=True),
    sa.Column('file_hash', sa.String(length=64), nullable=True),
    sa.Column('wavelength', sa.Float(), nullable=True),
    sa.Column('profile_x', sa.LargeBinary(), nullable=True),
    sa.Column('profile_y', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['recipe_id'], ['xrd_recipes.id'], name=op.f('fk_xrd_patterns_recipe_id_xrd_recipes')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_xrd_patterns_run_id_runs')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_xrd_patterns_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_xrd_patterns')),
    sa.UniqueConstraint('structure_id', 'recipe_id', name=op.f('uq_xrd_patterns_structure_id_recipe_id'))
    )
    with op.batch_alter_table('xrd_patterns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xrd_patterns_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_xrd_patterns_recipe_id'), ['recipe_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_xrd_patterns_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_xrd_patterns_structure_id'), ['structure_id'], unique=False)

    op.create_table('calculations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=True),
    sa.Column('functional', sa.String(length=64), nullable=True),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('ionic_step', sa.Integer(), nullable=True),
    sa.Column('energy', sa.Float(), nullable=True),
    sa.Column('energy_per_atom', sa.Float(), nullable=True),
    sa.Column('forces', sa.LargeBinary(), nullable=True),
    sa.Column('stress', sa.LargeBinary(), nullable=True),
    sa.Column('energy_unit', sa.String(length=16), nullable=False),
    sa.Column('forces_unit', sa.String(length=16), nullable=False),
    sa.Column('stress_unit', sa.String(length=16), nullable=True),
    sa.Column('converged', sa.Boolean(), nullable=True),
    sa.Column('electronic_converged', sa.Boolean(), nullable=True),
    sa.Column('ionic_converged', sa.Boolean(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_calculations_run_id_runs')),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_calculations_source_id_sources')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_calculations_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calculations'))
    )
    with op.batch_alter_table('calculations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calculations_energy_per_atom'), ['energy_per_atom'], unique=False)
        batch_op.create_index(batch_op.f('ix_calculations_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calculations_source_id'), ['source_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calculations_structure_id'), ['structure_id'], unique=False)

    op.create_table('dataset_members',
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=False),
    sa.Column('inherited', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('source_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_dataset_members_dataset_id_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_run_id'], ['runs.id'], name=op.f('fk_dataset_members_source_run_id_runs')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_dataset_members_structure_id_structures')),
    sa.PrimaryKeyConstraint('dataset_id', 'structure_id', name=op.f('pk_dataset_members'))
    )
    with op.batch_alter_table('dataset_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_members_structure_id'), ['structure_id'], unique=False)

    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('task', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=32), nullable=False),
    sa.Column('hyperparameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('feature_recipe', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('xrd_recipe_id', sa.Integer(), nullable=True),
    sa.Column('split_id', sa.Integer(), nullable=True),
    sa.Column('dataset_id', sa.Integer(), nullable=True),
    sa.Column('fold', sa.String(length=16), nullable=True),
    sa.Column('training_set_hash', sa.String(length=64), nullable=True),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('library_versions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('artifact', sa.LargeBinary(), nullable=True),
    sa.Column('artifact_path', sa.Text(), nullable=True),
    sa.Column('artifact_format', sa.String(length=32), nullable=False),
    sa.Column('artifact_sha256', sa.String(length=64), nullable=False),
    sa.Column('parent_model_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_models_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['parent_model_id'], ['models.id'], name=op.f('fk_models_parent_model_id_models')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_models_run_id_runs')),
    sa.ForeignKeyConstraint(['split_id'], ['splits.id'], name=op.f('fk_models_split_id_splits')),
    sa.ForeignKeyConstraint(['xrd_recipe_id'], ['xrd_recipes.id'], name=op.f('fk_models_xrd_recipe_id_xrd_recipes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models'))
    )
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_models_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_models_parent_model_id'), ['parent_model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_models_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_models_split_id'), ['split_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_models_task'), ['task'], unique=False)

    op.create_table('source_properties',
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value_float', sa.Float(), nullable=True),
    sa.Column('value_text', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], name=op.f('fk_source_properties_source_id_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source_id', 'name', name=op.f('pk_source_properties'))
    )
    with op.batch_alter_table('source_properties', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_properties_name_value_float'), ['name', 'value_float'], unique=False)

    op.create_table('xrd_peaks',
    sa.Column('pattern_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('recipe_id', sa.Integer(), nullable=True),
    sa.Column('structure_id', sa.Integer(), nullable=True),
    sa.Column('two_theta', sa.Float(), nullable=False),
    sa.Column('intensity', sa.Float(), nullable=False),
    sa.Column('d_spacing', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['pattern_id'], ['xrd_patterns.id'], name=op.f('fk_xrd_peaks_pattern_id_xrd_patterns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recipe_id'], ['xrd_recipes.id'], name=op.f('fk_xrd_peaks_recipe_id_xrd_recipes')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_xrd_peaks_structure_id_structures')),
    sa.PrimaryKeyConstraint('pattern_id', 'rank', name=op.f('pk_xrd_peaks'))
    )
    with op.batch_alter_table('xrd_peaks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xrd_peaks_recipe_id_two_theta'), ['recipe_id', 'two_theta'], unique=False)
        batch_op.create_index(batch_op.f('ix_xrd_peaks_structure_id'), ['structure_id'], unique=False)

    op.create_table('predictions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('structure_id', sa.Integer(), nullable=True),
    sa.Column('pattern_id', sa.Integer(), nullable=True),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_predictions_model_id_models')),
    sa.ForeignKeyConstraint(['pattern_id'], ['xrd_patterns.id'], name=op.f('fk_predictions_pattern_id_xrd_patterns')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_predictions_run_id_runs')),
    sa.ForeignKeyConstraint(['structure_id'], ['structures.id'], name=op.f('fk_predictions_structure_id_structures')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_predictions'))
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_predictions_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_pattern_id'), ['pattern_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_predictions_structure_id'), ['structure_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_predictions_structure_id'))
        batch_op.drop_index(batch_op.f('ix_predictions_run_id'))
        batch_op.drop_index(batch_op.f('ix_predictions_pattern_id'))
        batch_op.drop_index(batch_op.f('ix_predictions_model_id'))

    op.drop_table('predictions')
    with op.batch_alter_table('xrd_peaks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_xrd_peaks_structure_id'))
        batch_op.drop_index(batch_op.f('ix_xrd_peaks_recipe_id_two_theta'))

    op.drop_table('xrd_peaks')
    with op.batch_alter_table('source_properties', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_properties_name_value_float'))

    op.drop_table('source_properties')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_models_task'))
        batch_op.drop_index(batch_op.f('ix_models_split_id'))
        batch_op.drop_index(batch_op.f('ix_models_run_id'))
        batch_op.drop_index(batch_op.f('ix_models_parent_model_id'))
        batch_op.drop_index(batch_op.f('ix_models_dataset_id'))

    op.drop_table('models')
    with op.batch_alter_table('dataset_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_members_structure_id'))

    op.drop_table('dataset_members')
    with op.batch_alter_table('calculations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calculations_structure_id'))
        batch_op.drop_index(batch_op.f('ix_calculations_source_id'))
        batch_op.drop_index(batch_op.f('ix_calculations_run_id'))
        batch_op.drop_index(batch_op.f('ix_calculations_energy_per_atom'))

    op.drop_table('calculations')
    with op.batch_alter_table('xrd_patterns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_xrd_patterns_structure_id'))
        batch_op.drop_index(batch_op.f('ix_xrd_patterns_run_id'))
        batch_op.drop_index(batch_op.f('ix_xrd_patterns_recipe_id'))
        batch_op.drop_index(batch_op.f('ix_xrd_patterns_kind'))

    op.drop_table('xrd_patterns')
    with op.batch_alter_table('structure_elements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_structure_elements_element_structure_id'))

    op.drop_table('structure_elements')
    with op.batch_alter_table('split_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_split_members_structure_id'))
        batch_op.drop_index(batch_op.f('ix_split_members_split_id_fold'))

    op.drop_table('split_members')
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sources_structure_id'))
        batch_op.drop_index(batch_op.f('ix_sources_run_id'))
        batch_op.drop_index(batch_op.f('ix_sources_external_id'))
        batch_op.drop_index(batch_op.f('ix_sources_database'))

    op.drop_table('sources')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datasets_split_id'))
        batch_op.drop_index(batch_op.f('ix_datasets_run_id'))
        batch_op.drop_index(batch_op.f('ix_datasets_parent_id'))
        batch_op.drop_index(batch_op.f('ix_datasets_hash'))

    op.drop_table('datasets')
    with op.batch_alter_table('structures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_structures_volume'))
        batch_op.drop_index(batch_op.f('ix_structures_spacegroup_number'))
        batch_op.drop_index(batch_op.f('ix_structures_run_id'))
        batch_op.drop_index(batch_op.f('ix_structures_nsites'))
        batch_op.drop_index(batch_op.f('ix_structures_nelements'))
        batch_op.drop_index(batch_op.f('ix_structures_formula_reduced'))
        batch_op.drop_index(batch_op.f('ix_structures_formula_anonymous'))
        batch_op.drop_index(batch_op.f('ix_structures_density'))
        batch_op.drop_index(batch_op.f('ix_structures_crystal_system'))
        batch_op.drop_index(batch_op.f('ix_structures_created_at'))
        batch_op.drop_index(batch_op.f('ix_structures_chemical_system'))
        batch_op.drop_index(batch_op.f('ix_structures_canonical_hash'))

    op.drop_table('structures')
    with op.batch_alter_table('splits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_splits_run_id'))
        batch_op.drop_index(batch_op.f('ix_splits_hash'))

    op.drop_table('splits')
    with op.batch_alter_table('run_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_notes_run_id'))

    op.drop_table('run_notes')
    with op.batch_alter_table('run_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_links_run_id'))
        batch_op.drop_index(batch_op.f('ix_run_links_kind_ref'))

    op.drop_table('run_links')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_run_id'))
        batch_op.drop_index(batch_op.f('ix_quarantine_reason'))

    op.drop_table('quarantine')
    op.drop_table('xrd_recipes')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_status'))
        batch_op.drop_index(batch_op.f('ix_runs_parent_id'))
        batch_op.drop_index(batch_op.f('ix_runs_kind'))

    op.drop_table('runs')
