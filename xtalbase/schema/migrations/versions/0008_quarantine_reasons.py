"""Quarantine reasons of the hardening work: ``bad_cell``, ``too_large``, ``timeout``, ``memory_limit``, ``unsafe_path``.

* ``bad_cell``: lattice lengths or volume outside the configured bounds, or a sliver cell (checked before
  any neighbour search);
* ``too_large``: a file or record over a size budget (decompressed bytes, frame text, sites before
  symmetry expansion);
* ``timeout`` / ``memory_limit``: a record that ran past the per-record wall-clock or per-worker memory budget;
* ``unsafe_path``: a path that leaves the given tree (a symlink outside it) or is not a regular file.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# frozen copies of the value sets (later code may add values in a later migration)
BEFORE = (
    "parse_error", "truncated_file", "missing_cell", "missing_coordinates", "unknown_element", "non_finite",
    "zero_volume", "too_many_sites", "low_precision", "partial_occupancy", "overlapping_atoms", "unconverged",
)
AFTER = BEFORE + ("bad_cell", "too_large", "timeout", "memory_limit", "unsafe_path")


def _v0006():
    path = Path(__file__).with_name("0006_typed_provenance.py")
    spec = importlib.util.spec_from_file_location("_xtalbase_migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace(values: tuple[str, ...]) -> None:
    v0006 = _v0006()

    def change() -> None:
        with op.batch_alter_table("quarantine", schema=None) as batch_op:
            batch_op.drop_constraint(op.f("ck_quarantine_reason"), type_="check")
            batch_op.create_check_constraint(op.f("ck_quarantine_reason"), v0006._in("reason", values))

    v0006._around_rebuilds(change)


def upgrade() -> None:
    _replace(AFTER)


def downgrade() -> None:
    bind = op.get_bind()
    new = ", ".join(repr(v) for v in AFTER[len(BEFORE):])
    # rows with a new reason cannot be kept under the old constraint: say so rather than drop them silently
    count = bind.exec_driver_sql(f"SELECT COUNT(*) FROM quarantine WHERE reason IN ({new})").scalar()
    if count:
        raise RuntimeError(f"{count} quarantine rows use reasons added in 0008 ({new}); delete them before downgrading")
    _replace(BEFORE)
