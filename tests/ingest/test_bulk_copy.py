"""The PostgreSQL COPY write path stores exactly what the executemany path stores, awkward text included."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import text

import xtalbase
from tests.conftest import new_database_url
from tests.ingest.helpers import CIF, DATA
from xtalbase.platform.repositories import bulk
from xtalbase.schema import Source
from xtalbase.xrd.builder import compute_missing

#: A file name and licence with every character COPY's text format escapes, and some it does not need to.
AWKWARD = "tab\there new\nline back\\slash quote' \"dq\" é ☃ 𝔛 \\N"
#: Columns that differ between two runs of the same ingest by nature.
VOLATILE = {"created_at"}


@pytest.fixture
def copies(monkeypatch):
    """Every bulk write of two rows or more goes through COPY; returns the list of tables copied into."""
    seen: list[str] = []
    inner, inner_tuples = bulk._copy_insert, bulk._copy_tuples

    def spy(conn, table, rows, keys, returning):
        seen.append(table.name)
        return inner(conn, table, rows, keys, returning)

    def spy_tuples(conn, table, columns, rows):
        seen.append(table.name)
        return inner_tuples(conn, table, columns, rows)

    monkeypatch.setattr(bulk, "MIN_COPY_ROWS", 2)
    monkeypatch.setattr(bulk, "_copy_insert", spy)
    monkeypatch.setattr(bulk, "_copy_tuples", spy_tuples)
    return seen


def _dump(db, tables: list[str]) -> dict[str, list[tuple]]:
    out = {}
    with db.engine.connect() as conn:
        for table in tables:
            result = conn.execute(text(f"SELECT * FROM {table}"))
            keep = [i for i, k in enumerate(result.keys()) if k not in VOLATILE]
            out[table] = sorted((tuple(str(row[i]) for i in keep) for row in result), key=repr)
    return out


def _populate(url: str) -> dict[str, list[tuple]]:
    db = xtalbase.connect(url)
    try:
        db.init()
        report = db.ingest([DATA / "perov5_head.csv", CIF, DATA / "extxyz"], batch_size=7)
        assert report.inserted > 20 and report.quarantined < report.read, report
        compute_missing(db)
        db.splits.create("s", strategy="random", fractions=(0.6, 0.2, 0.2), seed=3)
        db.datasets.create("d", split="s", fold="train")
        return _dump(db, ["structures", "structure_elements", "sources", "source_properties", "calculations",
                          "xrd_patterns", "xrd_peaks", "quarantine", "split_members", "dataset_members"])
    finally:
        db.close()


def test_the_kill_and_concurrency_tests_write_through_copy_on_postgresql(db):
    from tests.ingest.test_safety import BATCH

    with db.engine.connect() as conn:
        assert bulk.uses_copy(conn, BATCH) == (db.backend == "postgresql")


def test_copy_and_executemany_store_the_same_rows_ids_and_hashes(tmp_path, copies, monkeypatch):
    with new_database_url("postgresql", tmp_path) as url:
        copied = _populate(url)
    assert {"structures", "structure_elements", "sources", "source_properties", "calculations", "xrd_patterns",
            "xrd_peaks", "split_members", "dataset_members"} <= set(copies)
    monkeypatch.setattr(bulk, "ENABLED", False)
    n_copies = len(copies)
    with new_database_url("postgresql", tmp_path) as url:
        inserted = _populate(url)
    assert len(copies) == n_copies  # the second database was written without COPY
    for table, rows in inserted.items():
        assert rows, table
        assert copied[table] == rows, table


def test_awkward_text_and_nulls_round_trip(db, tmp_path, copies):
    folder = tmp_path / AWKWARD.replace("/", "_")
    folder.mkdir()
    paths = []
    for i, name in enumerate(["CaO.cif", "CaTiO3.cif", "1000017.cif"]):
        paths.append(folder / f"{i} {AWKWARD}.cif")
        shutil.copy(CIF / name, paths[-1])
    report = db.ingest(folder, licence=AWKWARD, source="awk\tward")
    assert report.inserted == 3, report
    with db.session() as s:
        rows = s.query(Source.file_path, Source.licence, Source.database, Source.external_id).all()
    assert sorted(r.file_path for r in rows) == sorted(str(p) for p in paths)
    assert {r.licence for r in rows} == {AWKWARD} and {r.database for r in rows} == {"awk\tward"}
    assert db.backend != "postgresql" or "sources" in copies


def test_bulk_insert_keeps_json_none_as_sql_null_and_refuses_nul_whole(db, copies):
    db.ingest(CIF / "CaO.cif")
    with db.engine.connect() as conn:
        sid = conn.execute(text("SELECT id FROM structures")).scalar_one()
    rows = [{"file_hash": f"h{i}", "record_locator": AWKWARD, "format": "cif", "database": "x", "file_path": AWKWARD,
             "raw_hash": "r", "structure_id": sid, "warnings": None if i % 2 else [AWKWARD, {"k": "\\\t"}], "licence": None}
            for i in range(4)]
    with db.engine.begin() as conn:
        ids = bulk.bulk_insert(conn, Source.__table__, rows, ["file_hash", "record_locator"], returning=("id",))
        again = bulk.bulk_insert(conn, Source.__table__, rows, ["file_hash", "record_locator"], returning=("id",))
        stored = conn.execute(text("SELECT warnings IS NULL, licence IS NULL, file_path, created_at IS NOT NULL FROM sources "
                                   "WHERE file_hash LIKE 'h_' ORDER BY file_hash")).all()
    assert len(ids) == 4 and again == []  # conflicts skipped, and only inserted rows returned
    assert [tuple(r) for r in stored] == [(bool(i % 2), True, AWKWARD, True) for i in range(4)]
    with db.session() as s:
        warnings = [w for (w,) in s.query(Source.warnings).filter(Source.file_hash == "h0")]
    assert warnings == [[AWKWARD, {"k": "\\\t"}]]
    if db.backend == "postgresql":  # PostgreSQL text refuses NUL: the whole statement fails, nothing is left behind
        with pytest.raises(Exception, match="(?i)nul|0x00"):
            with db.engine.begin() as conn:
                bulk.bulk_insert(conn, Source.__table__, [{**rows[0], "file_hash": f"n{i}", "file_path": "a\x00b"} for i in range(3)], None)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sources WHERE file_hash LIKE 'n_'")).scalar_one() == 0
    assert db.backend != "postgresql" or copies.count("sources") >= 2
