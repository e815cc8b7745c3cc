"""Documented SQL views for people who query the database directly (issue 6).

Creates ``v_structures``, ``v_sources``, ``v_source_properties``, ``v_xrd_features``,
``v_calculations`` and ``v_predictions`` (documented in ``docs/sql.md``). The
views have the same columns, in the same order, on SQLite and PostgreSQL; only
the element list (``group_concat`` vs ``string_agg``) is spelled per dialect.

Note for later migrations: on SQLite a batch (copy-and-rename) rebuild of a table
that a view reads fails ("error in view ...: no such table"), so such a migration
drops the views first and re-creates them afterwards (``drop_views`` /
``create_views`` below hold the exact statements of this revision).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ELEMENTS = {
    # comma list in alphabetical order
    "sqlite": "(SELECT group_concat(e.element, ',') FROM "
              "(SELECT element FROM structure_elements WHERE structure_id = s.id ORDER BY element) AS e)",
    "postgresql": "(SELECT string_agg(e.element, ',' ORDER BY e.element) FROM structure_elements AS e "
                  "WHERE e.structure_id = s.id)",
}

_PEAKS = ",\n    ".join(f"MAX(CASE WHEN k.rank = {i} THEN k.two_theta END) AS two_theta_{i + 1}" for i in range(10))

VIEWS: dict[str, str] = {
    "v_structures": """
SELECT s.id, s.formula_reduced, s.formula_anonymous, s.chemical_system, {elements} AS elements,
    s.nelements, s.nsites, s.spacegroup_number, s.spacegroup_symbol, s.crystal_system,
    s.a, s.b, s.c, s.alpha, s.beta, s.gamma, s.volume, s.density,
    src.database AS source_database, src.external_id AS source_external_id,
    (SELECT count(*) FROM sources AS x WHERE x.structure_id = s.id) AS nsources,
    s.exact_hash, s.canonical_hash, s.created_at, s.run_id
FROM structures AS s
LEFT JOIN sources AS src ON src.id = (SELECT min(x.id) FROM sources AS x WHERE x.structure_id = s.id)""",
    "v_sources": """
SELECT src.id, src.structure_id, src.database, src.external_id, src.format, src.file_path, src.record_locator,
    src.licence, s.formula_reduced, s.spacegroup_number,
    (SELECT count(*) FROM source_properties AS p WHERE p.source_id = src.id) AS nproperties,
    src.file_hash, src.raw_hash, src.created_at, src.run_id
FROM sources AS src
JOIN structures AS s ON s.id = src.structure_id""",
    "v_source_properties": """
SELECT p.source_id, src.structure_id, src.database, src.external_id, p.name, p.value_float, p.value_text
FROM source_properties AS p
JOIN sources AS src ON src.id = p.source_id""",
    "v_xrd_features": f"""
SELECT p.id AS pattern_id, p.structure_id, p.recipe_id, r.name AS recipe_name, r.wavelength, p.kind, p.npeaks,
    {_PEAKS}
FROM xrd_patterns AS p
LEFT JOIN xrd_recipes AS r ON r.id = p.recipe_id
LEFT JOIN xrd_peaks AS k ON k.pattern_id = p.id AND k.rank < 10
GROUP BY p.id, p.structure_id, p.recipe_id, r.name, r.wavelength, p.kind, p.npeaks""",
    "v_calculations": """
SELECT c.id, c.structure_id, c.source_id, s.formula_reduced, s.nsites, c.code, c.code_version, c.functional,
    c.ionic_step, c.energy, c.energy_per_atom, c.converged, c.electronic_converged, c.ionic_converged,
    c.energy_unit, c.stress_unit, c.created_at, c.run_id
FROM calculations AS c
JOIN structures AS s ON s.id = c.structure_id""",
    "v_predictions": """
SELECT p.id, p.model_id, m.name AS model_name, m.task, m.algorithm, p.target, p.structure_id, p.pattern_id,
    p.value, p.label, m.training_set_hash, m.code_version, m.split_id, m.dataset_id, m.fold,
    m.artifact_sha256, p.created_at, p.run_id
FROM predictions AS p
JOIN models AS m ON m.id = p.model_id""",
}


def create_views(dialect: str) -> None:
    """Create every view of this revision for ``dialect`` (``sqlite`` or ``postgresql``)."""
    elements = _ELEMENTS["postgresql" if dialect == "postgresql" else "sqlite"]
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body.replace('{elements}', elements)}")


def drop_views() -> None:
    """Drop every view of this revision (in reverse order of creation)."""
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    create_views(op.get_bind().dialect.name)


def downgrade() -> None:
    drop_views()
