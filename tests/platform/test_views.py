"""The documented SQL views: same columns on both backends, and the example queries of docs/sql.md answer as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.conftest import BACKENDS, ROOT, new_database_url
from tests.platform.test_query_fixtures import CALC_FILE
from xtalbase.platform.query import V_STRUCTURES_COLUMNS

VIEWS = ("v_structures", "v_sources", "v_source_properties", "v_xrd_features", "v_calculations", "v_predictions")
DOC = ROOT / "docs" / "sql.md"


def _columns(db, view: str) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.execute(text(f"SELECT * FROM {view} WHERE 1 = 0")).keys())


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both backends (XTALBASE_TEST_BACKENDS limits to one)")
def test_views_have_identical_columns_on_sqlite_and_postgresql(tmp_path):
    import xtalbase

    with new_database_url("sqlite", tmp_path) as lite_url, new_database_url("postgresql", tmp_path) as pg_url:
        lite, pg = xtalbase.connect(lite_url), xtalbase.connect(pg_url)
        lite.init(), pg.init()
        for view in VIEWS:
            assert _columns(lite, view) == _columns(pg, view), view
        assert set(VIEWS) <= set(inspect(pg.engine).get_view_names())
        lite.close(), pg.close()


def test_v_structures_columns_are_what_the_query_api_reads(db):
    assert _columns(db, "v_structures") == list(V_STRUCTURES_COLUMNS)
    assert set(VIEWS) <= set(inspect(db.engine).get_view_names())


def test_views_are_dropped_and_recreated_by_the_migrations(db):
    from xtalbase.platform import migrate

    migrate.downgrade(db.engine, "0004")
    assert not set(VIEWS) & set(inspect(db.engine).get_view_names())
    migrate.upgrade(db.engine, "head")
    assert set(VIEWS) <= set(inspect(db.engine).get_view_names())


def _doc_examples() -> list[tuple[str, list[list[str]]]]:
    """(sql, rows) pairs from docs/sql.md: a ```sql block followed by a markdown answer table."""
    text_ = DOC.read_text()
    out = []
    for m in re.finditer(r"```sql\n(.*?)```\n+((?:\|[^\n]*\|\n)+)", text_, flags=re.S):
        lines = [line for line in m.group(2).strip().splitlines() if not re.match(r"^\|\s*-", line)]
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
        out.append((m.group(1).strip(), rows))
    return out


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def test_documented_examples_answer_as_documented(qdb):
    from xtalbase.platform.sql import run_readonly
    from xtalbase.xrd.builder import compute_missing

    compute_missing(qdb, structure_ids=qdb.query('_xtalbase_source = "COD"').ids())
    qdb.ingest(CALC_FILE)
    examples = _doc_examples()
    assert len(examples) >= 6
    for sql, rows in examples:
        result = run_readonly(qdb, sql)
        assert result.columns == rows[0], sql
        assert [[_shown(v) for v in r] for r in result.rows] == rows[1:], sql


def test_v_predictions_joins_model_provenance(db):
    from xtalbase.schema import Model, Prediction

    # hand-made model and prediction rows: only the join is under test here
    with db.session() as s:
        model = Model(name="m1", task="regression", target="heat_ref", algorithm="xgboost", code_version="0.1.0+gabc",
                      training_set_hash="f" * 64, artifact_format="xgboost-ubj", artifact_sha256="0" * 64)
        s.add(model)
        s.flush()
        s.add(Prediction(model_id=model.id, target="heat_ref", value=1.25))
        s.commit()
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT model_name, target, value, training_set_hash, code_version FROM v_predictions")).one()
    assert tuple(row) == ("m1", "heat_ref", 1.25, "f" * 64, "0.1.0+gabc")


def test_doc_exists_and_names_every_view():
    text_ = Path(DOC).read_text()
    for view in VIEWS:
        assert f"`{view}`" in text_
