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
    deep = "(" * MAX_FILTER_DEPTH + "nsites >= 1" + ")" * MAX_FILTER_DEPTH
    assert qdb.query(deep).count() == qdb.query().count()
    with pytest.raises(FilterError, match=f"position {MAX_FILTER_DEPTH + 1}: parentheses"):
        qdb.query("(" + deep + ")")
    # the deepest SQL the limits allow: nested NOT/OR/AND (what fills SQLite's parser stack fastest),
    # then a long OR chain of semi-joins
    depth = MAX_FILTER_DEPTH - 1  # and one more for the chain's parentheses
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


def test_a_filter_too_deep_for_the_database_parser_is_positioned_too(qdb, monkeypatch):
    if qdb.backend != "sqlite":
        pytest.skip("SQLite's parser stack (100 entries) is the smaller one")
    from xtalbase.platform import optimade_filter

    monkeypatch.setattr(optimade_filter, "MAX_FILTER_DEPTH", 1000)  # past the text check, to the database's parser
    deep = "NOT (nsites < 0 OR nsites > 1 AND " * 40 + "nsites = 1" + ")" * 40
    with pytest.raises(FilterError, match=r"^invalid filter at position 1331: .*too deeply nested for sqlite \(parser stack overflow\)"):
        qdb.query(deep).count()
