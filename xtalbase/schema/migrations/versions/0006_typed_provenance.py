"""Typed provenance links, CHECK constraints on closed value sets, one set-hash encoding (issue 18).

- ``run_links`` gains one nullable foreign key per linked row kind (``structure_id``,
  ``split_id``, ``dataset_id``, ``model_id``, ``xrd_recipe_id``, ``pattern_id``,
  all ``ON DELETE SET NULL``) and ``path``; ``direction`` and ``kind`` are checked
  against closed sets. Existing links are backfilled from their ``ref`` (a name
  for split/dataset links of split, dataset and export runs; a row id elsewhere).
- CHECK constraints on ``runs.status``, ``xrd_patterns.kind``, ``splits.mode`` and
  ``quarantine.reason``.
- ``models.training_set_hash`` is rewritten to the dataset encoding of a set of
  structures ("set/v2": sorted exact hashes, each followed by a newline) when the
  stored value is the old encoding (lines joined without the final newline) of the
  model's training members; a value that cannot be re-derived is left as it is,
  and ``xtalbase provenance model`` then reports that it differs.

On SQLite the batch (copy-and-rename) rebuilds need the views of 0005 and the
split/dataset triggers of 0004 out of the way (a rename re-parses every view and
trigger, and a dropped table takes its triggers with it), so both are dropped
first and re-created from those revisions afterwards. ``runs``, ``splits`` and
``xrd_patterns`` are rebuilt while other rows reference them, which
:func:`xtalbase.platform.migrate.upgrade` allows by checking foreign keys once
before commit instead of per statement.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# frozen copies of the value sets at this revision (later code may add values in a later migration)
RUN_STATUSES = ("running", "succeeded", "failed")
DIRECTIONS = ("input", "output")
LINK_KINDS = ("structure", "split", "dataset", "model", "xrd_recipe", "xrd_pattern", "predictions", "training_set",
              "file", "path")
PATTERN_KINDS = ("computed", "measured")
SPLIT_MODES = ("stable", "exact", "imported")
QUARANTINE_REASONS = (
    "parse_error", "truncated_file", "missing_cell", "missing_coordinates", "unknown_element", "non_finite",
    "zero_volume", "too_many_sites", "low_precision", "partial_occupancy", "overlapping_atoms", "unconverged",
)

# (table, column, values): the constraint is named ck_<table>_<column> by the metadata's convention
CHECKS = (
    ("runs", "status", RUN_STATUSES),
    ("run_links", "direction", DIRECTIONS),
    ("run_links", "kind", LINK_KINDS),
    ("xrd_patterns", "kind", PATTERN_KINDS),
    ("splits", "mode", SPLIT_MODES),
    ("quarantine", "reason", QUARANTINE_REASONS),
)

# (column, referenced table)
LINK_FKS = (
    ("structure_id", "structures"), ("split_id", "splits"), ("dataset_id", "datasets"), ("model_id", "models"),
    ("xrd_recipe_id", "xrd_recipes"), ("pattern_id", "xrd_patterns"),
)


def _revision(name: str):
    """Another revision's module (its view and trigger statements are the exact ones to re-create)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"_xtalbase_migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _sqlite_guards_off(v0004) -> list[tuple[str, str, str]]:
    guarded = v0004._GUARDED
    for parent, members, _ in guarded:
        for trigger in (f"{parent}_sealed_update", f"{parent}_sealed_delete", f"{members}_sealed_insert",
                        f"{members}_sealed_update", f"{members}_sealed_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_{trigger}")
    return guarded


def _around_rebuilds(change) -> None:
    """Run ``change()`` with SQLite's views and sealed-row triggers set aside, then put them back."""
    dialect = op.get_bind().dialect.name
    if dialect != "sqlite":
        change()
        return
    v0004, v0005 = _revision("0004_splits.py"), _revision("0005_query.py")
    v0005.drop_views()
    guarded = _sqlite_guards_off(v0004)
    change()
    for g in guarded:
        for statement in v0004._sqlite_statements(*g):
            op.execute(statement)
    v0005.create_views(dialect)


def _add_schema() -> None:
    with op.batch_alter_table("run_links", schema=None) as batch_op:
        for column, table in LINK_FKS:
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=True))
            batch_op.create_foreign_key(op.f(f"fk_run_links_{column}_{table}"), table, [column], ["id"], ondelete="SET NULL")
            batch_op.create_index(op.f(f"ix_run_links_{column}"), [column], unique=False)
        batch_op.add_column(sa.Column("path", sa.Text(), nullable=True))
    for table, column, values in CHECKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_check_constraint(op.f(f"ck_{table}_{column}"), _in(column, values))


def _drop_schema() -> None:
    for table, column, _ in reversed(CHECKS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
    with op.batch_alter_table("run_links", schema=None) as batch_op:
        for column, table in reversed(LINK_FKS):
            batch_op.drop_index(op.f(f"ix_run_links_{column}"))
            batch_op.drop_constraint(op.f(f"fk_run_links_{column}_{table}"), type_="foreignkey")
            batch_op.drop_column(column)
        batch_op.drop_column("path")


def _backfill_links() -> None:
    # split and dataset links of split/dataset/export runs named the row; those of train runs held its id
    named_by = "(SELECT id FROM runs WHERE kind IN ('split', 'dataset', 'export'))"
    for column, table, kind in (("split_id", "splits", "split"), ("dataset_id", "datasets", "dataset")):
        op.execute(f"UPDATE run_links SET {column} = (SELECT t.id FROM {table} AS t WHERE t.name = run_links.ref) "
                   f"WHERE kind = '{kind}' AND run_id IN {named_by}")
        op.execute(f"UPDATE run_links SET {column} = (SELECT t.id FROM {table} AS t "
                   f"WHERE CAST(t.id AS VARCHAR(32)) = run_links.ref) WHERE kind = '{kind}' AND run_id NOT IN {named_by}")
    for column, table, kind in (("model_id", "models", "model"), ("xrd_recipe_id", "xrd_recipes", "xrd_recipe")):
        op.execute(f"UPDATE run_links SET {column} = (SELECT t.id FROM {table} AS t "
                   f"WHERE CAST(t.id AS VARCHAR(32)) = run_links.ref) WHERE kind = '{kind}'")
    op.execute("UPDATE run_links SET path = ref WHERE kind IN ('file', 'path')")


def _set_hash(hashes: list[str]) -> str:
    digest = hashlib.sha256()
    for h in sorted(hashes):
        digest.update(f"{h}\n".encode())
    return digest.hexdigest()


def _legacy_set_hash(hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def _rehash_models(old, new) -> None:
    """Rewrite each model's ``training_set_hash`` from encoding ``old`` to ``new`` when its members re-derive it."""
    bind = op.get_bind()
    models = bind.execute(sa.text("SELECT id, target, dataset_id, split_id, fold, training_set_hash FROM models "
                                  "WHERE training_set_hash IS NOT NULL")).all()
    for model_id, target, dataset_id, split_id, fold, stored in models:
        if dataset_id is not None:
            sql = ("SELECT s.exact_hash, s.crystal_system FROM dataset_members AS m JOIN structures AS s "
                   "ON s.id = m.structure_id WHERE m.dataset_id = :owner")
            owner = dataset_id
        elif split_id is not None and fold:
            sql = ("SELECT s.exact_hash, s.crystal_system FROM split_members AS m JOIN structures AS s "
                   "ON s.id = m.structure_id WHERE m.split_id = :owner AND m.fold = :fold")
            owner = split_id
        else:
            continue
        rows = bind.execute(sa.text(sql), {"owner": owner, "fold": fold}).all()
        hashes = [h for h, system in rows if target != "cubic_a" or system == "cubic"]
        if old(hashes) == stored:
            bind.execute(sa.text("UPDATE models SET training_set_hash = :h WHERE id = :id"), {"h": new(hashes), "id": model_id})


def upgrade() -> None:
    _around_rebuilds(_add_schema)
    _backfill_links()
    _rehash_models(_legacy_set_hash, _set_hash)


def downgrade() -> None:
    _rehash_models(_set_hash, _legacy_set_hash)
    _around_rebuilds(_drop_schema)
