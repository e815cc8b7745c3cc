"""Read-only SQL refuses every write, injection attempts change nothing, and read-only PostgreSQL roles cannot write."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.platform.test_query_fixtures import N_STRUCTURES
from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.platform.optimade_filter import FilterError
from xtalbase.platform.sql import ReadOnlyViolation, check_readonly_statement, run_readonly, split_statements

runner = CliRunner()

WRITES = [
    "INSERT INTO runs (kind) VALUES ('x')",
    "insert into structure_elements select * from structure_elements",
    "UPDATE structures SET nsites = 0",
    "DELETE FROM structures",
    "DROP TABLE structures",
    "DROP VIEW v_structures",
    "CREATE TABLE evil (x int)",
    "ALTER TABLE structures ADD COLUMN evil int",
    "ATTACH DATABASE '/tmp/xtalbase-evil.db' AS evil",
    "PRAGMA query_only = OFF",
    "PRAGMA journal_mode = DELETE",
    "VACUUM",
    "REINDEX",
    "BEGIN; DELETE FROM structures; COMMIT",
    "SELECT 1; DELETE FROM structures",
    "SELECT 1; COMMIT; DROP TABLE structures",
    "/* comment */ DELETE FROM structures",
    "-- comment\nDELETE FROM structures",
    "(DELETE FROM structures)",
    "WITH gone AS (SELECT 1) DELETE FROM structures",
    "WITH gone AS (SELECT id FROM structures) UPDATE structures SET nsites = 1 WHERE id IN (SELECT id FROM gone)",
    "EXPLAIN ANALYZE DELETE FROM structures",
    "COPY structures TO '/tmp/xtalbase-evil.csv'",
    "SET default_transaction_read_only = off",
    "GRANT ALL ON structures TO PUBLIC",
    "TRUNCATE structures",
    "REPLACE INTO runs (id, kind) VALUES (1, 'x')",
]


def _fingerprint(db) -> tuple:
    with db.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*), sum(nsites) FROM structures")).one()
        views = conn.execute(text("SELECT count(*) FROM v_structures")).scalar_one()
    return tuple(n), views, db.counts()


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused_and_change_nothing(qdb, statement):
    before = _fingerprint(qdb)
    with pytest.raises(ReadOnlyViolation) as info:
        run_readonly(qdb, statement)
    assert "\n" not in str(info.value) and ("read-only" in str(info.value) or "one statement" in str(info.value))
    assert _fingerprint(qdb) == before


def test_reads_work_including_semicolons_in_strings_and_comments(qdb):
    r = run_readonly(qdb, "SELECT count(*) AS n, 'a;b' AS s FROM v_structures -- trailing; comment\n;")
    assert r.columns == ["n", "s"] and r.rows == [(N_STRUCTURES, "a;b")]
    r = run_readonly(qdb, "WITH x AS (SELECT nsites FROM structures) SELECT max(nsites) FROM x /* ; DROP */")
    assert r.rows[0][0] == 48
    assert run_readonly(qdb, "SELECT id FROM v_structures ORDER BY id", max_rows=3).rows == [(1,), (2,), (3,)]
    if qdb.backend == "sqlite":
        assert ("nsites",) in {(r[1],) for r in run_readonly(qdb, "SELECT * FROM pragma_table_info('structures')").rows}


def test_sql_errors_surface_with_the_database_message(qdb):
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(Exception) as info:
        run_readonly(qdb, "SELECT * FROM no_such_table")
    assert "no_such_table" in str(info.value) and not isinstance(info.value, ReadOnlyViolation)
    assert isinstance(info.value, (DBAPIError, qdb.engine.dialect.dbapi.Error))


def test_statement_splitting_respects_quotes_comments_and_dollar_quotes():
    assert len(split_statements("SELECT ';' ; ")) == 1
    assert len(split_statements('SELECT "a;b" FROM x')) == 1
    assert len(split_statements("SELECT $$;$$, $t$ ; $t$")) == 1
    assert len(split_statements("SELECT 1 -- ; DROP\n")) == 1
    assert len(split_statements("SELECT 'it''s;'; SELECT 2")) == 2
    with pytest.raises(ReadOnlyViolation, match="no SQL statement"):
        check_readonly_statement(" ; -- nothing")


INJECTIONS = [
    'chemical_formula_reduced = "x\\"; DROP TABLE structures; --"',
    "_xtalbase_source = \"' OR '1'='1\"",
    "_xtalbase_source_id = \"mp-1' UNION SELECT id FROM runs --\"",
    '_xtalbase_property_heat_ref = "1; DELETE FROM structures"',
    'elements HAS "Fe\\") OR 1=1 --"',
    'elements HAS ALL "O", "\'); DROP TABLE structure_elements; --"',
    'chemical_formula_reduced CONTAINS "%"',
    'chemical_formula_reduced STARTS "_"',
    'chemical_formula_reduced ENDS "\' || (SELECT 1) || \'"',
    "_xtalbase_property_x_union_select_1 = 1",
    '_xtalbase_crystal_system = "cubic\\" OR \\"1\\"=\\"1"',
]

BAD_NAMES = [
    "nsites; DROP TABLE structures",
    "nsites = 1; DELETE FROM structures",
    "_xtalbase_property_a'b = 1",
    'nsites = 1 /* */',
    "nsites = 1 -- ",
    "structures.id = 1 OR 1 = 1",
    "nsites = 1 UNION SELECT id FROM runs",
    '"1" = "1"',
    "_xtalbase_property_ = 1",
    "id) OR (1=1",
]


@pytest.mark.parametrize("filter_", INJECTIONS)
def test_injection_inside_values_returns_empty_and_changes_nothing(qdb, filter_):
    before = _fingerprint(qdb)
    assert qdb.query(filter_).ids() == []
    assert _fingerprint(qdb) == before


@pytest.mark.parametrize("filter_", BAD_NAMES)
def test_injection_in_field_names_is_a_filter_error(qdb, filter_):
    before = _fingerprint(qdb)
    with pytest.raises(FilterError):
        qdb.query(filter_).ids()
    assert _fingerprint(qdb) == before


def test_cli_sql_formats_and_refusal(qdb):
    sql = "SELECT crystal_system, count(*) AS n FROM v_structures GROUP BY crystal_system ORDER BY n DESC, crystal_system"
    out = runner.invoke(app, ["sql", sql, "--db", qdb.url, "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows[0] == {"crystal_system": "orthorhombic", "n": 20} and sum(r["n"] for r in rows) == N_STRUCTURES
    out = runner.invoke(app, ["sql", sql, "--db", qdb.url, "--format", "csv"])
    assert out.output.splitlines()[:2] == ["crystal_system,n", "orthorhombic,20"]
    out = runner.invoke(app, ["sql", "SELECT cell FROM structures ORDER BY id LIMIT 1", "--db", qdb.url])
    assert out.exit_code == 0 and "<72 bytes>" in out.output
    refused = runner.invoke(app, ["sql", "DELETE FROM structures", "--db", qdb.url])
    assert refused.exit_code != 0 and isinstance(refused.exception, ReadOnlyViolation)
    assert qdb.query().count() == N_STRUCTURES


def test_cli_query_formats(qdb, tmp_path):
    from ase.io import read

    base = ["query", '_xtalbase_source = "COD"', "--db", qdb.url, "--sort", "_xtalbase_space_group_number"]
    table = runner.invoke(app, base)
    assert table.exit_code == 0 and "8 structure(s)" in table.output and "Fm-3m" in table.output
    rows = json.loads(runner.invoke(app, [*base, "--format", "json"]).output)
    assert [r["spacegroup_number"] for r in rows] == [62, 139, 166, 194, 198, 221, 225, 227]
    csv_out = runner.invoke(app, [*base, "--format", "csv", "--limit", "2"]).output.splitlines()
    assert len(csv_out) == 3 and csv_out[0].startswith("id,formula_reduced")
    page = json.loads(runner.invoke(app, [*base, "--format", "json", "--offset", "3", "--limit", "2"]).output)
    assert [r["spacegroup_number"] for r in page] == [194, 198]
    for fmt, ext in (("cif", "cif"), ("extxyz", "xyz")):
        path = tmp_path / f"cod.{ext}"
        assert runner.invoke(app, [*base, "--format", fmt, "--out", str(path)]).exit_code == 0
        frames = read(path, index=":")
        assert [len(f) for f in frames] == [len(a) for a in qdb.query('_xtalbase_source = "COD"', sort="_xtalbase_space_group_number").atoms()]
    folder = tmp_path / "poscars"
    assert runner.invoke(app, [*base, "--format", "poscar", "--out", str(folder)]).exit_code == 0
    assert len(list(folder.glob("*.vasp"))) == 8
    one = runner.invoke(app, ["query", 'chemical_formula_reduced = "Si"', "--db", qdb.url, "--format", "poscar"])
    assert one.exit_code == 0 and one.output.splitlines()[0].startswith("xtalbase id=")
    bad = runner.invoke(app, ["query", "nsites <", "--db", qdb.url])
    assert bad.exit_code != 0 and "position 9" in str(bad.exception)


def test_grant_readonly_is_postgresql_only_on_sqlite(db):
    if db.backend != "sqlite":
        pytest.skip("SQLite behaviour")
    with pytest.raises(XtalbaseError, match="PostgreSQL-only"):
        from xtalbase.platform.sql import grant_readonly

        grant_readonly(db, "reader")
    out = runner.invoke(app, ["db", "grant-readonly", "reader", "--db", db.url])
    assert out.exit_code != 0 and "PostgreSQL-only" in str(out.exception)


def test_grant_readonly_role_reads_and_cannot_write(db):
    if db.backend != "postgresql":
        pytest.skip("PostgreSQL roles")
    from sqlalchemy.exc import ProgrammingError

    from xtalbase.platform.sql import grant_readonly

    role = f"xb_ro_{uuid.uuid4().hex[:10]}"
    with db.engine.begin() as conn:  # a role that could write before: grant-readonly must take that away
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        conn.execute(text(f'GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{_schema(db)}" TO "{role}"'))
    try:
        with pytest.raises(XtalbaseError, match="invalid role name"):
            grant_readonly(db, 'x"; DROP TABLE runs; --')
        first = grant_readonly(db, role)
        again = runner.invoke(app, ["db", "grant-readonly", role, "--db", db.url, "--json"])
        assert again.exit_code == 0, again.output
        assert first["created"] is False and json.loads(again.output)["readable_relations"] >= 20
        with db.run("seed"):
            pass
        for statement, ok in [("SELECT count(*) FROM runs", True), ("SELECT count(*) FROM v_structures", True),
                              ("INSERT INTO run_notes (run_id, text, created_at) VALUES (1, 'x', now())", False),
                              ("UPDATE runs SET kind = 'x'", False), ("DELETE FROM runs", False),
                              ("CREATE TABLE evil (x int)", False), ("DROP TABLE run_notes", False)]:
            with db.engine.connect() as conn:
                conn.execute(text(f'SET ROLE "{role}"'))
                if ok:
                    assert conn.execute(text(statement)).scalar_one() >= 0
                else:
                    with pytest.raises(ProgrammingError, match="permission denied|must be owner"):
                        conn.execute(text(statement))
                conn.rollback()
        assert db.counts()["runs"] == 1
    finally:
        with db.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def _schema(db) -> str:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT current_schema()")).scalar_one()
