"""Indexes for filters that were slow at 100,000 structures (``bench/scale.py``, ``docs/scale.md``).

* ``structures (spacegroup_number, nsites, id)``: a space group with an nsites range (and an element) is one
  index range scan, index-only on PostgreSQL, instead of AND-ing two bitmaps and reading the table pages;
* ``xrd_peaks (recipe_id, two_theta, intensity, structure_id)`` replaces ``(recipe_id, two_theta)``, its prefix:
  a peak window with an intensity bound is answered from the index alone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('structures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_structures_spacegroup_number_nsites_id'), ['spacegroup_number', 'nsites', 'id'], unique=False)
    with op.batch_alter_table('xrd_peaks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xrd_peaks_recipe_id_two_theta_intensity_structure_id'),
                              ['recipe_id', 'two_theta', 'intensity', 'structure_id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_xrd_peaks_recipe_id_two_theta'))


def downgrade() -> None:
    with op.batch_alter_table('xrd_peaks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xrd_peaks_recipe_id_two_theta'), ['recipe_id', 'two_theta'], unique=False)
        batch_op.drop_index(batch_op.f('ix_xrd_peaks_recipe_id_two_theta_intensity_structure_id'))
    with op.batch_alter_table('structures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_structures_spacegroup_number_nsites_id'))
