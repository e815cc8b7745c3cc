"""Hostile OPTIMADE filters (issue 25): each gives the positioned FilterError and nothing else, on both backends.

Before: nesting >= 300 levels raised RecursionError, long AND/OR chains SQLite's "Expression tree is too large",
a NUL byte a raw DataError on PostgreSQL, a lone surrogate UnicodeEncodeError, a huge integer OverflowError
(SQLite) or ValueError (over 4300 digits).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from xtalbase.cli import app
from xtalbase.platform.optimade_filter import (
    MAX_FILTER_COMPARISONS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    FilterError,
)

runner = CliRunner()
INVALID_UTF8 = b"Fe\xff\xfeO".decode("utf-8", "surrogateescape")  # what Python makes of undecodable bytes

# (filter, 1-based position the error names, a word the message holds)
HOSTILE = [
    ("(" * 300 + "nsites=1" + ")" * 300, MAX_FILTER_DEPTH + 1, "nest deeper"),
    ("(" * 1000 + "nsites=1" + ")" * 1000, MAX_FILTER_DEPTH + 1, "nest deeper"),
    ("nsites=1 AND " + "NOT (" * 200 + "nsites=2" + ")" * 200, 18 + 5 * MAX_FILTER_DEPTH, "nest deeper"),
    ('chemical_formula_reduced = "((((" AND ' + "(" * 65 + "nsites=1" + ")" * 65, 39 + MAX_FILTER_DEPTH, "nest deeper"),
    (" AND ".join(["nsites=1"] * 80_000), MAX_FILTER_LENGTH + 1, "characters long"),
    (" OR ".join(["nsites=1"] * 90_000), MAX_FILTER_LENGTH + 1, "characters long"),
    (" OR ".join(['_xtalbase_source = "MP"'] * 2000), 1 + 27 * MAX_FILTER_COMPARISONS, "comparisons"),
    (" AND ".join(["nsites=1"] * (MAX_FILTER_COMPARISONS + 1)), 1 + 13 * MAX_FILTER_COMPARISONS, "comparisons"),
    ('chemical_formula_reduced = "Fe\x00O"', 31, "NUL"),
    ('_xtalbase_source = "\x00"', 21, "NUL"),
    ("nsites = 1\x00", 11, "NUL"),
    ('chemical_formula_reduced = "Fe\ud800"', 31, "surrogate"),
    (f'_xtalbase_source_id = "{INVALID_UTF8}"', 26, "surrogate"),
    ("nsites < 1e309", 10, "out of range"),
    ("_xtalbase_volume > -1e400", 20, "out of range"),
    ("nsites < 9223372036854775808", 10, "out of range"),
    ("nsites > -9223372036854775809", 10, "out of range"),
    ("nsites < " + "9" * 5000, 10, "out of range"),
    ('id = "99999999999999999999999"', 1, "out of range"),
    ("elements LENGTH 99999999999999999999", 17, "out of range"),
    ("_xtalbase_property_heat_ref < 1e999", 31, "out of range"),
]


@pytest.mark.parametrize("filter_,position,word", HOSTILE, ids=[f"f{i:02d}" for i in range(len(HOSTILE))])
def test_hostile_filter_gives_the_positioned_error_and_nothing_else(qdb, filter_, position, word):
    before = qdb.counts()
    with pytest.raises(FilterError) as info:
        qdb.query(filter_).ids()
    message = str(info.value)
    assert message.startswith(f"invalid filter at position {position}: ") and word in message, message[:300]
    assert "\n" not in message and len(message) < 400
    assert qdb.counts() == before


def test_filters_at_the_limits_still_run(qdb):
    n = MAX_FILTER_DEPTH
    everything = qdb.query().count()
    deep = "(" * n + "nsites >= 1" + ")" * n
    assert qdb.query(deep).count() == everything
    with pytest.raises(FilterError, match=f"position {n + 1}: parentheses"):
        qdb.query("(" + deep + ")")
    # the shapes that run at the full depth on both backends: left-folded chains, NOT chains, alternating AND/OR
    folded = "(" * n + "nsites >= 1" + "".join(f" AND nsites >= {i % 2})" for i in range(n))
    assert qdb.query(folded).count() == everything
    assert qdb.query("NOT (" * n + "nsites >= 1" + ")" * n).count() == everything  # n is even
    alternating = "".join("nsites > 0 AND (" if i % 2 else "nsites < 0 OR (" for i in range(n)) + "nsites >= 1" + ")" * n
    assert qdb.query(alternating).count() == everything
    # the deepest nested NOT/OR/AND (what fills SQLite's parser stack fastest) that SQLite still holds,
    # then a long OR chain of semi-joins; deeper ones fail positioned (the next test)
    depth = 11  # and one more for the chain's parentheses (SQLite overflows at 12 + 1 here)
    level = 'NOT (chemical_formula_reduced ENDS "Q" OR NOT _xtalbase_crystal_system = "none" AND nsites > 0 AND '
    chain = " OR ".join(['_xtalbase_source = "none"'] * (MAX_FILTER_COMPARISONS - 3 * depth))
    nested = level * depth + "(" + chain + ")" + ")" * depth
    assert len(qdb.query(nested, sort="-nsites", limit=5).frame()) == (0 if depth % 2 == 0 else 5)
    flat = " AND ".join(["nsites >= 1"] * MAX_FILTER_COMPARISONS)
    assert qdb.query(flat).count() == qdb.query().count()
    assert qdb.query("_xtalbase_volume < 1e308 AND nsites < 9223372036854775807").count() == qdb.query().count()
    assert qdb.query("id = -9223372036854775807 OR elements LENGTH > 4294967296").count() == 0
    assert qdb.query("_xtalbase_xrd_recipe_id = 3000000000 AND _xtalbase_xrd_peak_2theta > 1e308").count() == 0
    assert qdb.query('chemical_formula_reduced = "Fe\\\\O"').ids() == []


def test_cli_query_prints_one_positioned_line(qdb, capsys):
    from xtalbase.cli import main

    with pytest.raises(SystemExit) as info:
        main(["query", "(" * 500 + "nsites=1" + ")" * 500, "--db", qdb.url])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: invalid filter at position {MAX_FILTER_DEPTH + 1}: parentheses nest deeper")
    out = runner.invoke(app, ["query", 'chemical_formula_reduced = "a\x00"', "--db", qdb.url])
    assert out.exit_code != 0 and "position 30" in str(out.exception)


def test_limit_beyond_64_bits_is_a_clear_error(qdb):
    from xtalbase.errors import XtalbaseError

    with pytest.raises(XtalbaseError, match="64-bit"):
        qdb.query("nsites > 0", limit=2**64)


def test_a_generated_filter_wrapping_each_step_in_parentheses_runs(qdb):
    # what a filter builder makes: every step wraps what came before, 11 clauses, 11 levels
    steps = [("", "nsites >= 2"), ("AND", 'elements HAS "O"'), ("OR", "nsites = 1"), ("AND", "nsites < 40"),
             ("OR", 'elements HAS "Fe"'), ("AND", "NOT nsites = 7"), ("AND", "nelements >= 1"),
             ("OR", 'chemical_formula_reduced = "Si"'), ("AND", "nsites <= 30"), ("AND", "NOT elements HAS \"Xe\""),
             ("OR", 'elements HAS "Li"')]
    filter_, expected = "", set()
    for op, clause in steps:
        ids = set(qdb.query(clause).ids())
        filter_ = f"({clause})" if not op else f"({filter_} {op} {clause})"
        expected = ids if not op else (expected & ids if op == "AND" else expected | ids)
    assert len(steps) == 11 and deepest_level(filter_) == 11
    assert 0 < len(expected) < qdb.query().count()
    assert qdb.query(filter_).ids() == sorted(expected)


def deepest_level(text: str) -> int:
    level = deepest = 0
    for ch in text:
        level += {"(": 1, ")": -1}.get(ch, 0)
        deepest = max(deepest, level)
    return deepest


def test_a_filter_too_deep_for_the_database_parser_is_positioned_too(qdb, monkeypatch):
    from xtalbase.platform.optimade_filter import check_filter_text

    level = "NOT (nsites < 0 OR nsites > 1 AND "  # 34 characters
    within = level * MAX_FILTER_DEPTH + "nsites = 1" + ")" * MAX_FILTER_DEPTH
    check_filter_text(within)  # within every limit of the text
    if qdb.backend == "sqlite":  # SQLite's parser stack (100 entries) overflows from 16 such levels on
        position = 34 * (MAX_FILTER_DEPTH - 1) + 5
        with pytest.raises(FilterError, match=rf"^invalid filter at position {position}: .*too deeply nested for sqlite "
                                              r"\(parser stack overflow\)"):
            qdb.query(within).count()
        return
    # PostgreSQL holds it and gives the right rows ...
    every, small, big = (set(qdb.query(f).ids()) for f in ("", "nsites < 0", "nsites > 1"))
    expected = set(qdb.query("nsites = 1").ids())
    for _ in range(MAX_FILTER_DEPTH):
        expected = every - (small | (big & expected))
    assert expected and qdb.query(within).ids() == sorted(expected)
    # ... and overflows only far deeper (past the text limit), with its smallest stack: positioned all the same
    import sys

    import sqlalchemy as sa
    from sqlalchemy import event

    from xtalbase.platform import optimade_filter

    engine = sa.create_engine(qdb.url).execution_options(postgresql_readonly=True)

    @event.listens_for(engine, "connect")
    def _small_stack(dbapi_conn, _record):  # a superuser setting: the test user is one
        with dbapi_conn.cursor() as cur:
            cur.execute("SET max_stack_depth = '100kB'")
        dbapi_conn.commit()

    monkeypatch.setattr(optimade_filter, "MAX_FILTER_DEPTH", 1000)
    monkeypatch.setattr(qdb, "read_only_engine", lambda: engine)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # SQLAlchemy compiles recursively
    try:
        deep = level * 150 + "nsites = 1" + ")" * 150
        with pytest.raises(FilterError, match=r"^invalid filter at position 5071: .*too deeply nested for postgresql "
                                              r"\(stack depth limit exceeded\)"):
            qdb.query(deep).count()
    finally:
        sys.setrecursionlimit(limit)
        engine.dispose()
