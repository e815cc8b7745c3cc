"""Filter parsing and compilation without a database: errors name the position, values stay bound parameters."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from xtalbase.errors import XtalbaseError
from xtalbase.platform.optimade_filter import (
    FilterError,
    anonymous_formula_spellings,
    compile_filter,
    known_fields,
    reduced_formula_spellings,
)
from xtalbase.schema import Structure


def _sql(filter_: str, dialect=sqlite.dialect()) -> tuple[str, dict]:
    compiled = select(Structure.id).where(compile_filter(filter_)).compile(dialect=dialect)
    return str(compiled), compiled.params


@pytest.mark.parametrize(
    "filter_, position, words",
    [
        ('elements HAS ALL "Fe",, AND', 23, "unexpected ','"),
        ("nsites <", 9, "ends too early"),
        ("nsites < 3 AND", 15, "ends too early"),
        ("Nsites = 3", 1, "lower case"),
        ("nsites = 3 AND (nelements = 2", 30, "ends too early"),
        ("nsites == 3", 9, "unexpected"),
        ('elements HAS "Fe" ; DROP TABLE structures', 19, "unexpected character ';'"),
        ("nsites = 3 -- comment", 12, "unexpected"),
    ],
)
def test_syntax_errors_name_the_position(filter_, position, words):
    with pytest.raises(FilterError) as info:
        compile_filter(filter_)
    message = str(info.value)
    assert f"position {position}:" in message and words in message
    assert isinstance(info.value, XtalbaseError) and "\n" not in message


def test_unknown_field_names_the_known_ones():
    with pytest.raises(FilterError) as info:
        compile_filter('nsites > 2 AND spacegroup = 225')
    message = str(info.value)
    assert "position 16" in message and "unknown field 'spacegroup'" in message
    for name in ("_xtalbase_space_group_number", "elements", "nsites", "chemical_formula_reduced", "_xtalbase_property_<name>"):
        assert name in message
    assert set(known_fields()) >= {"_xtalbase_a", "_xtalbase_gamma", "_xtalbase_energy_per_atom", "_xtalbase_xrd_peak_2theta"}


@pytest.mark.parametrize(
    "filter_, words",
    [
        ('nsites = "5"', "nsites is a number"),
        ("chemical_formula_reduced = SiO2", "position 28: unexpected character 'S'"),
        ("chemical_formula_reduced = sio2", "unknown field 'sio2'"),
        ('elements = "Fe"', "elements is a list"),
        ("elements HAS 26", "double quotes"),
        ('nsites HAS "Fe"', "not a list"),
        ('nsites CONTAINS "5"', "needs a string field"),
        ('elements HAS < "Fe"', "HAS < is not supported"),
        ("nsites = nelements", "another property"),
        ('a.b = "x"', "nested property"),
        ('elements:nsites HAS "Fe":3', "zipped HAS"),
        ('"Fe" = "Fe"', "comparing two constants"),
        ("_xtalbase_converged > TRUE", "use = or !="),
        ("_xtalbase_xrd_peak_2theta > \"x\"", "is a number"),
        ("_xtalbase_property_heat_ref = TRUE", "TRUE/FALSE"),
    ],
)
def test_semantic_errors_are_clear(filter_, words):
    with pytest.raises(FilterError, match="invalid filter") as info:
        compile_filter(filter_)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "value",
    ["Fe'; DROP TABLE structures; --", 'O\\" OR 1=1 --', "x' UNION SELECT id FROM runs --", "/* */", "%_%", "a\\\\b"],
)
def test_values_are_bound_parameters_never_sql_text(value):
    for field in ("chemical_formula_reduced", "_xtalbase_source", "_xtalbase_property_note"):
        sql, params = _sql(f'{field} = "{value}"')
        assert "DROP" not in sql and "UNION" not in sql and "--" not in sql and "1=1" not in sql
        assert any(isinstance(v, str) and ("DROP" in v or "UNION" in v or "1=1" in v or "%" in v or "*" in v or "\\" in v)
                   for v in _flatten(params.values()))
    sql, params = _sql(f'elements HAS ALL "{value}", "O"')
    assert "DROP" not in sql and "UNION" not in sql


def _flatten(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from v
        else:
            yield v


def test_string_escapes_follow_optimade():
    _, params = _sql(r'chemical_formula_reduced = "a\"b\\c"')
    assert 'a"b\\c' in list(_flatten(params.values()))


def test_element_filters_use_the_element_index_and_compile_on_both_backends():
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        sql, params = _sql('elements HAS ALL "Fe","O" AND elements HAS ONLY "Fe","O","H" OR elements HAS ANY "Ni"', dialect)
        assert sql.count("structure_elements") >= 3
    sql, _ = _sql('chemical_formula_reduced CONTAINS "Ti"', postgresql.dialect())
    assert "strpos(" in sql
    sql, _ = _sql('chemical_formula_reduced CONTAINS "Ti"', sqlite.dialect())
    assert "instr(" in sql


def test_not_on_a_nullable_column_keeps_unknown_values():
    sql, _ = _sql("NOT _xtalbase_space_group_number = 225")
    assert "spacegroup_number IS NOT NULL" in sql
    # but != never matches an unknown value (a comparison with unknown is false in OPTIMADE)
    sql, _ = _sql('_xtalbase_crystal_system != "cubic"')
    assert "crystal_system IS NOT NULL AND" in sql and "NOT IN" in sql


def test_peak_terms_in_one_clause_merge_into_one_peak():
    sql, _ = _sql("_xtalbase_xrd_peak_2theta > 28 AND _xtalbase_xrd_peak_2theta < 29 AND _xtalbase_xrd_peak_intensity > 50")
    assert sql.count("FROM xrd_peaks") == 1
    sql, _ = _sql("(_xtalbase_xrd_peak_2theta > 28 AND _xtalbase_xrd_peak_2theta < 29) AND (_xtalbase_xrd_peak_2theta > 40)")
    assert sql.count("FROM xrd_peaks") == 2


@pytest.mark.parametrize(
    "text, expected",
    [("O3SrTi", "SrTiO3"), ("SrTiO3", "SrTiO3"), ("Sr2Ti2O6", "SrTiO3"), ("O", "O2"), ("N", "N2"), ("H2O", "H2O")],
)
def test_reduced_formula_spellings_include_pymatgen_and_alphabetical(text, expected):
    spellings = reduced_formula_spellings(text)
    assert expected in spellings and text in spellings


def test_anonymous_formula_spellings():
    assert set(anonymous_formula_spellings("A3BC")) == {"A3BC", "ABC3"}
    assert set(anonymous_formula_spellings("A2B4")) == {"A2B4", "AB2", "A2B"}
    assert anonymous_formula_spellings("not a formula!") == ["not a formula!"]
