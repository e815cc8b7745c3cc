"""OPTIMADE filter strings -> SQLAlchemy boolean expressions over ``structures``.

The filter is parsed with the grammar shipped by the ``optimade`` package (its
:class:`~optimade.filterparser.LarkParser`) and the tree is transformed into
SQLAlchemy expressions: values always travel as bound parameters, never as
SQL text. :func:`compile_filter` is the single entry point; the fields it knows
are listed in :data:`FIELDS` (``docs/sql.md`` documents them with units).

Element filters use the ``structure_elements`` index; fields that live in other
tables (sources, source properties, calculations, XRD peaks) become
``structures.id IN (SELECT structure_id ...)`` semi-joins, so every form keeps
its meaning under ``AND``/``OR``/``NOT``.

XRD peak search: comparisons on ``_xtalbase_xrd_peak_two_theta`` (alias
``_xtalbase_xrd_peak_2theta``, degrees), ``_xtalbase_xrd_peak_intensity`` (max
100), ``_xtalbase_xrd_peak_d_spacing`` (Å) and ``_xtalbase_xrd_recipe_id`` that
stand side by side in one ``AND`` clause constrain the *same* peak::

    _xtalbase_xrd_peak_2theta >= 28.3 AND _xtalbase_xrd_peak_2theta <= 28.6 AND _xtalbase_xrd_peak_intensity > 50

A second peak goes in its own parentheses:
``(_xtalbase_xrd_peak_2theta > 28 AND ...) AND (_xtalbase_xrd_peak_2theta > 47 AND ...)``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import ColumnElement, Select, String, and_, cast, false, func, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean, Float, Integer

from xtalbase.errors import XtalbaseError
from xtalbase.schema import Calculation, Source, SourceProperty, Structure, StructureElement, XrdPeak, XrdRecipe

__all__ = ["FilterError", "MAX_FILTER_COMPARISONS", "MAX_FILTER_DEPTH", "MAX_FILTER_LENGTH", "UnsupportedFilter",
           "check_filter_text", "compile_filter", "deepest_parenthesis", "known_fields", "optimade_anonymous",
           "optimade_reduced", "parse", "sort_column"]

PROPERTY_PREFIX = "_xtalbase_property_"
PEAK_PREFIX = "_xtalbase_xrd_peak_"


class FilterError(XtalbaseError):
    """The filter string cannot be parsed or names something xtalbase cannot answer."""


class UnsupportedFilter(FilterError):
    """A well-formed filter on a field that is known but cannot be filtered on (OPTIMADE's 501 Not Implemented)."""


#: ``distinct(column, spelling)``: ``(stored, spelling(stored))`` for every distinct stored value of a column
#: (see :func:`spelled`), for comparisons that the stored spelling cannot answer in SQL (<, >, STARTS, ENDS,
#: CONTAINS on formulas, which OPTIMADE spells in another element order).
Distinct = Callable[[Any, Callable[[str], "str | None"]], list[tuple[Any, str]]]


def spelled(values: Iterable[Any], spelling: Callable[[str], str | None]) -> list[tuple[Any, str]]:
    """``(value, spelling(value))`` of ``values``, leaving out nulls and values without a spelling."""
    out = []
    for v in values:
        if v is not None and (shown := spelling(v)) is not None:
            out.append((v, shown))
    return out


# --------------------------------------------------------------------------- helpers


class _strpos(FunctionElement):
    """1-based position of a substring, 0 when absent (case-sensitive on both backends)."""

    type = Integer()
    inherit_cache = True


@compiles(_strpos)
def _strpos_default(element, compiler, **kw):  # noqa: ANN001 - SQLAlchemy compiler hook
    return "instr(%s)" % compiler.process(element.clauses, **kw)


@compiles(_strpos, "postgresql")
def _strpos_pg(element, compiler, **kw):  # noqa: ANN001
    return "strpos(%s)" % compiler.process(element.clauses, **kw)


class _in_json(FunctionElement):
    """``column IN (the strings of a JSON array)``: one bound parameter however long the list (no limit on the number
    of parameters; SQLite answers it with an ephemeral index, PostgreSQL with a hashed semi-join)."""

    type = Boolean()
    inherit_cache = True


@compiles(_in_json)
def _in_json_default(element, compiler, **kw):  # noqa: ANN001 - SQLAlchemy compiler hook
    col, values = list(element.clauses)
    return f"{compiler.process(col, **kw)} IN (SELECT value FROM json_each({compiler.process(values, **kw)}))"


@compiles(_in_json, "postgresql")
def _in_json_pg(element, compiler, **kw):  # noqa: ANN001
    col, values = list(element.clauses)
    return f"{compiler.process(col, **kw)} IN (SELECT jsonb_array_elements_text(CAST({compiler.process(values, **kw)} AS jsonb)))"


#: Longest list of values written as an IN list of parameters; longer ones travel as one JSON parameter.
INLINE_IN_VALUES = 100

_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_REVERSED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


@dataclass(frozen=True)
class _Prop:
    """A property name as written in the filter, with its position (0-based offset)."""

    name: str
    pos: int


def _where(msg: str, pos: int | None) -> str:
    return f"invalid filter at position {pos + 1}: {msg}" if pos is not None else f"invalid filter: {msg}"


# --------------------------------------------------------------------------- fields


@dataclass
class Field:
    """One filterable quantity: its type (``number``, ``string``, ``bool``) and how it maps to SQL."""

    name: str
    kind: str
    doc: str
    column: Any = None  # a column of ``structures`` (sortable), or the value column of a related table
    related: Callable[[ColumnElement[bool]], Select] | None = None  # condition on column -> SELECT structure_id
    nullable: bool = False
    normalise: Callable[[Any], list[Any]] | None = None  # equality value -> accepted stored spellings
    text: Any = None  # the column as text, for CONTAINS/STARTS/ENDS on a number (``id``)
    spelling: Callable[[str], str | None] | None = None  # stored value -> the spelling <, > compare (OPTIMADE's; None: null)

    @property
    def sortable(self) -> bool:
        return self.related is None and self.column is not None

    def _wrap(self, cond: ColumnElement[bool]) -> ColumnElement[bool]:
        if self.related is not None:
            return Structure.id.in_(self.related(cond))
        if self.nullable:
            # Unknown values never match a comparison, so NOT (x = v) matches them (OPTIMADE semantics).
            return and_(self.column.is_not(None), cond)
        return cond

    def compare(self, op: str, value: Any, pos: int, distinct: Distinct | None = None) -> ColumnElement[bool]:
        value = self._check_value(value, pos)
        if self.spelling is not None and op not in ("=", "!=") and distinct is not None:
            return self._wrap(self._ordered(op, value, distinct, pos))
        if self.normalise is not None and op in ("=", "!="):
            spellings = self.normalise(value)
            return self._wrap(self.column.in_(spellings) if op == "=" else self.column.not_in(spellings))
        if self.kind == "bool" and op not in ("=", "!="):
            raise FilterError(_where(f"{self.name} is TRUE or FALSE: use = or !=", pos))
        return self._wrap(_OPS[op](self.column, _bind_number(value) if self.kind == "number" else value))

    def known(self, is_known: bool, pos: int) -> ColumnElement[bool]:
        if self.related is not None:
            cond = Structure.id.in_(self.related(self.column.is_not(None)))
        elif self.nullable:
            cond = self.column.is_not(None)
        else:
            cond = true()
        return cond if is_known else not_(cond)

    def _ordered(self, op: str, value: str, distinct: Distinct, pos: int) -> ColumnElement[bool]:
        return self._shown(lambda shown: _OPS[op](shown, value), distinct)

    def _shown(self, test: Callable[[str], bool], distinct: Distinct) -> ColumnElement[bool]:
        # The stored spelling differs from the one shown: test the shown spelling of every distinct stored
        # value in Python and select the stored values that pass.
        passing = [v for v, shown in distinct(self.column, self.spelling) if test(shown)]
        if not passing:
            return false()
        if len(passing) <= INLINE_IN_VALUES:
            return self.column.in_(passing)
        return _in_json(self.column, literal(json.dumps(passing), String()))

    def fuzzy(self, how: str, value: Any, pos: int, distinct: Distinct | None = None) -> ColumnElement[bool]:
        if self.kind != "string" and self.text is None:
            raise FilterError(_where(f"{how} needs a string field; {self.name} is a {self.kind}", pos))
        if not isinstance(value, str):
            raise FilterError(_where(f"{self.name} {how} needs a string value, got {value!r}", pos))
        if self.spelling is not None and distinct is not None:
            test = {"CONTAINS": lambda s: value in s, "STARTS": lambda s: s.startswith(value)}.get(how, lambda s: s.endswith(value))
            return self._wrap(self._shown(test, distinct))
        col, n = (self.column if self.text is None else self.text), len(value)
        if how == "CONTAINS":
            cond = _strpos(col, literal(value)) > 0
        elif how == "STARTS":
            cond = func.substr(col, 1, n) == value
        else:  # ENDS
            cond = and_(func.length(col) >= n, func.substr(col, func.length(col) - n + 1) == value)
        return self._wrap(cond)

    def _check_value(self, value: Any, pos: int) -> Any:
        if isinstance(value, _Prop):
            raise FilterError(_where(f"comparing {self.name} with another property ({value.name}) is not supported", pos))
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FilterError(_where(f"{self.name} is a number; cannot compare it with {_show(value)}", pos))
        elif self.kind == "string":
            if not isinstance(value, str):
                raise FilterError(_where(f"{self.name} is a string; put the value in double quotes, e.g. {self.name}=\"{value}\"", pos))
        elif self.kind == "bool" and not isinstance(value, bool):
            raise FilterError(_where(f"{self.name} is TRUE or FALSE, not {_show(value)}", pos))
        elif self.kind == "timestamp":
            return _timestamp(self.name, value, pos)
        return value


def _timestamp(name: str, value: Any, pos: int) -> datetime:
    """An RFC 3339 / ISO 8601 filter value as an aware UTC datetime (no zone given: UTC)."""
    if not isinstance(value, str):
        raise FilterError(_where(f"{name} is a timestamp; give it as a quoted string, e.g. \"2024-01-31T12:00:00Z\"", pos))
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(_where(f"{name}: {_show(value)} is not an ISO 8601 timestamp (e.g. \"2024-01-31T12:00:00Z\")", pos)) from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _bind_number(value: Any) -> Any:
    """``value``, or a float literal for an integer beyond 32 bits: PostgreSQL casts an integer parameter to
    the column's type, and an INTEGER column cannot hold it (the comparison itself is still right as float8)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**31 - 1:
        return literal(float(value), Float())
    return value


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _via_sources(cond: ColumnElement[bool]) -> Select:
    return select(Source.structure_id).where(cond)


def _via_calculations(cond: ColumnElement[bool]) -> Select:
    return select(Calculation.structure_id).where(cond)


def _lower(value: str) -> list[str]:
    return [value.lower()]


_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]{0,2})(\d*\.?\d*)")


def _parse_formula(text: str) -> dict[str, float]:
    """``"SrTiO3"`` / ``"O3SrTi"`` -> ``{"Sr": 1, "Ti": 1, "O": 3}`` (no brackets, as in OPTIMADE)."""
    pos, amounts = 0, {}
    for m in _FORMULA_TOKEN.finditer(text):
        if m.start() != pos or not m.group(0):
            break
        amounts[m.group(1)] = amounts.get(m.group(1), 0.0) + (float(m.group(2)) if m.group(2) else 1.0)
        pos = m.end()
    if pos != len(text) or not amounts:
        raise ValueError(text)
    return amounts


def reduced_formula_spellings(text: str) -> list[str]:
    """Every stored spelling that means the same reduced formula as ``text``.

    Accepts OPTIMADE's alphabetical form (``O3SrTi``) and pymatgen's
    electronegativity order (``SrTiO3``, what ingest stores), in any element
    order and unreduced (``Sr2Ti2O6``). Returns the input itself, pymatgen's
    ``reduced_formula`` and the alphabetical OPTIMADE spelling.
    """
    try:
        amounts = _parse_formula(text)
    except ValueError:
        return [text]  # not a formula: matches nothing but itself
    from pymatgen.core import Composition  # heavy; only when a formula filter is used

    try:
        comp = Composition(amounts)
    except (ValueError, KeyError):
        return [text]
    reduced = comp.reduced_composition
    alphabetical = "".join(
        f"{el}{_fmt_amount(reduced[el])}" for el in sorted(str(e) for e in reduced.elements)
    )
    return sorted({text, comp.reduced_formula, alphabetical})


def anonymous_formula_spellings(text: str) -> list[str]:
    """Stored spellings of an anonymous formula: pymatgen's ``ABC3`` (ascending) and OPTIMADE's ``A3BC``."""
    try:
        amounts = list(_parse_anonymous(text))
    except ValueError:
        return [text]
    if all(float(a).is_integer() for a in amounts):
        g = functools.reduce(math.gcd, (int(a) for a in amounts))
        amounts = [a / g for a in amounts]
    letters = [chr(ord("A") + i) for i in range(len(amounts))]
    ascending = "".join(f"{l}{_fmt_amount(a)}" for l, a in zip(letters, sorted(amounts)))
    descending = "".join(f"{l}{_fmt_amount(a)}" for l, a in zip(letters, sorted(amounts, reverse=True)))
    return sorted({text, ascending, descending})


def optimade_reduced(amounts: dict[str, float]) -> str:
    """OPTIMADE's ``chemical_formula_reduced``: elements in alphabetical order, counts divided by their
    greatest common divisor, 1 omitted (``{"Sr": 2, "Ti": 2, "O": 6}`` -> ``"O3SrTi"``)."""
    scaled = _reduce(amounts)
    return "".join(f"{el}{_fmt_amount(scaled[el])}" for el in sorted(scaled))


def optimade_anonymous(amounts: dict[str, float]) -> str:
    """OPTIMADE's ``chemical_formula_anonymous``: reduced counts in descending order named A, B, C, ...
    (``{"Sr": 1, "Ti": 1, "O": 3}`` -> ``"A3BC"``); beyond Z the names go on as Aa, Ba, ..."""
    counts = sorted(_reduce(amounts).values(), reverse=True)
    return "".join(f"{_anonymous_name(i)}{_fmt_amount(a)}" for i, a in enumerate(counts))


def _anonymous_name(i: int) -> str:
    return chr(ord("A") + i % 26) + ("" if i < 26 else "abcdefghijklmnopqrstuvwxyz"[i // 26 - 1])


def _reduce(amounts: dict[str, float]) -> dict[str, float]:
    if amounts and all(float(a).is_integer() and a > 0 for a in amounts.values()):
        g = functools.reduce(math.gcd, (int(a) for a in amounts.values()))
        return {el: int(a) // g for el, a in amounts.items()}
    return dict(amounts)


def _stored_to_optimade(converter: Callable[[dict[str, float]], str]) -> Callable[[str], str | None]:
    """A stored pymatgen formula -> OPTIMADE's spelling (text that is no formula is compared as it is); ``None`` for
    non-integer counts (a disordered structure), which the API shows as null, so no comparison selects them."""
    def integral(amounts: dict[str, float]) -> str | None:
        return converter(amounts) if all(float(a).is_integer() for a in amounts.values()) else None

    @functools.lru_cache(maxsize=200_000)
    def convert(text: str) -> str | None:
        try:
            return integral(_parse_formula(text))
        except ValueError:
            pass
        try:  # brackets, as pymatgen writes some reduced formulas ("Zn3As2(HO)16")
            from pymatgen.core import Composition

            return integral({str(el): amount for el, amount in Composition(text).items()})
        except (ValueError, KeyError):
            return text
    return convert


def _parse_anonymous(text: str) -> list[float]:
    out, pos = [], 0
    for m in re.finditer(r"([A-Z][a-z]*)(\d*\.?\d*)", text):
        if m.start() != pos:
            raise ValueError(text)
        out.append(float(m.group(2)) if m.group(2) else 1.0)
        pos = m.end()
    if pos != len(text) or not out or len(out) > 26:
        raise ValueError(text)
    return out


def _fmt_amount(amount: float) -> str:
    if float(amount).is_integer():
        return "" if int(amount) == 1 else str(int(amount))
    return f"{amount:g}"


def _structure_fields() -> dict[str, Field]:
    s = Structure
    simple = [
        ("id", "number", s.id, "structure id (integer; a quoted \"123\" also works)"),
        ("nsites", "number", s.nsites, "number of sites in the cell"),
        ("nelements", "number", s.nelements, "number of distinct elements"),
        ("_xtalbase_volume", "number", s.volume, "cell volume, Å³"),
        ("_xtalbase_density", "number", s.density, "density, g/cm³"),
        ("_xtalbase_a", "number", s.a, "lattice length a, Å"),
        ("_xtalbase_b", "number", s.b, "lattice length b, Å"),
        ("_xtalbase_c", "number", s.c, "lattice length c, Å"),
        ("_xtalbase_alpha", "number", s.alpha, "lattice angle α, degrees"),
        ("_xtalbase_beta", "number", s.beta, "lattice angle β, degrees"),
        ("_xtalbase_gamma", "number", s.gamma, "lattice angle γ, degrees"),
        ("_xtalbase_chemical_system", "string", s.chemical_system, "elements joined by '-', as stored"),
        ("_xtalbase_exact_hash", "string", s.exact_hash, "hash of the stored arrays"),
        ("_xtalbase_canonical_hash", "string", s.canonical_hash, "hash of the standardised cell"),
    ]
    fields = {name: Field(name, kind, doc, column=col) for name, kind, col, doc in simple}
    fields["id"].text = cast(s.id, String)
    fields["_xtalbase_space_group_number"] = Field(
        "_xtalbase_space_group_number", "number", "international space-group number (1-230)", s.spacegroup_number, nullable=True)
    fields["_xtalbase_space_group_symbol"] = Field(
        "_xtalbase_space_group_symbol", "string", "Hermann-Mauguin symbol as stored (e.g. \"Fm-3m\")", s.spacegroup_symbol, nullable=True)
    fields["_xtalbase_crystal_system"] = Field(
        "_xtalbase_crystal_system", "string", "cubic, hexagonal, trigonal, tetragonal, orthorhombic, monoclinic or triclinic (any case)",
        s.crystal_system, nullable=True, normalise=_lower)
    fields["_xtalbase_symprec"] = Field("_xtalbase_symprec", "number", "symmetry tolerance used, Å", s.symprec, nullable=True)
    fields["chemical_formula_reduced"] = Field(
        "chemical_formula_reduced", "string", "reduced formula; \"O3SrTi\" (OPTIMADE) and \"SrTiO3\" (pymatgen) both match; "
        "<, >, STARTS, ENDS, CONTAINS compare OPTIMADE's spelling given distinct= (the API), else the stored one", s.formula_reduced,
        normalise=reduced_formula_spellings, spelling=_stored_to_optimade(optimade_reduced))
    fields["chemical_formula_anonymous"] = Field(
        "chemical_formula_anonymous", "string", "anonymous formula; \"A3BC\" (OPTIMADE) and \"ABC3\" (pymatgen) both match; "
        "<, >, STARTS, ENDS, CONTAINS compare OPTIMADE's spelling given distinct= (the API), else the stored one",
        s.formula_anonymous, normalise=anonymous_formula_spellings, spelling=_stored_to_optimade(optimade_anonymous))
    fields["chemical_formula_descriptive"] = Field(
        "chemical_formula_descriptive", "string", "the reduced formula as stored (pymatgen's spelling, e.g. \"SrTiO3\")",
        s.formula_reduced)
    fields["immutable_id"] = Field("immutable_id", "string", "the structure's exact hash (never changes)", s.exact_hash)
    fields["last_modified"] = Field("last_modified", "timestamp", "when the structure was stored (rows never change), UTC",
                                    s.created_at)
    fields["space_group_it_number"] = Field(
        "space_group_it_number", "number", "international space-group number (1-230), as _xtalbase_space_group_number",
        s.spacegroup_number, nullable=True)
    fields["_xtalbase_source"] = Field(
        "_xtalbase_source", "string", "name of a source database the structure was read from (any of its sources)",
        Source.database, related=_via_sources)
    fields["_xtalbase_source_id"] = Field(
        "_xtalbase_source_id", "string", "external id in a source database (e.g. \"mp-1234\")", Source.external_id, related=_via_sources)
    fields["_xtalbase_energy_per_atom"] = Field(
        "_xtalbase_energy_per_atom", "number", "DFT energy of any calculation on the structure, eV/atom",
        Calculation.energy_per_atom, related=_via_calculations)
    fields["_xtalbase_energy"] = Field(
        "_xtalbase_energy", "number", "DFT energy of the cell of any calculation, eV", Calculation.energy, related=_via_calculations)
    fields["_xtalbase_converged"] = Field(
        "_xtalbase_converged", "bool", "TRUE/FALSE: a calculation on the structure converged", Calculation.converged, related=_via_calculations)
    fields["_xtalbase_functional"] = Field(
        "_xtalbase_functional", "string", "exchange-correlation functional of any calculation", Calculation.functional, related=_via_calculations)
    return fields


#: Every field a filter may name (``elements``, ``nperiodic_dimensions`` and the
#: ``_xtalbase_property_<name>`` / ``_xtalbase_xrd_peak_*`` families are handled apart).
FIELDS: dict[str, Field] = {}

PEAK_COLUMNS = {
    "two_theta": XrdPeak.two_theta,
    "2theta": XrdPeak.two_theta,
    "intensity": XrdPeak.intensity,
    "d_spacing": XrdPeak.d_spacing,
}


def _fields() -> dict[str, Field]:
    if not FIELDS:
        FIELDS.update(_structure_fields())
    return FIELDS


def known_fields() -> list[str]:
    """Names a filter may use, for error messages and documentation."""
    special = ["elements", "nperiodic_dimensions", "structure_features", PROPERTY_PREFIX + "<name>",
               *(PEAK_PREFIX + k for k in PEAK_COLUMNS), "_xtalbase_xrd_recipe_id"]
    return sorted(_fields()) + special


def sort_column(name: str) -> tuple[Any, bool]:
    """``(column, descending)`` for a sort key such as ``nsites`` or ``-_xtalbase_density``."""
    descending = name.startswith("-")
    key = name.lstrip("-+").strip()
    fld = _fields().get(key)
    if fld is None or not fld.sortable:
        sortable = sorted(n for n, f in _fields().items() if f.sortable)
        raise FilterError(f"cannot sort by {key!r}: sortable fields are {', '.join(sortable)} (prefix - for descending)")
    return fld.column, descending


# --------------------------------------------------------------------------- XRD peak conditions


@dataclass
class _PeakTerms:
    """Comparisons on one XRD peak, merged across one AND clause into a single semi-join."""

    conds: list[ColumnElement[bool]] = field(default_factory=list)
    recipe_given: bool = False

    def sql(self) -> ColumnElement[bool]:
        conds = list(self.conds)
        if not self.recipe_given:
            # Naming every recipe lets the (recipe_id, two_theta) index serve a 2θ range.
            conds.append(XrdPeak.recipe_id.in_(select(XrdRecipe.id)))
        return Structure.id.in_(select(XrdPeak.structure_id).where(*conds))


def _peak_comparison(prop: _Prop, op: str, value: Any) -> _PeakTerms:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FilterError(_where(f"{prop.name} is a number; cannot compare it with {_show(value)}", prop.pos))
    if prop.name == "_xtalbase_xrd_recipe_id":
        return _PeakTerms([_OPS[op](XrdPeak.recipe_id, _bind_number(value))], recipe_given=True)
    return _PeakTerms([_OPS[op](PEAK_COLUMNS[prop.name[len(PEAK_PREFIX):]], _bind_number(value))])


def _is_peak_field(name: str) -> bool:
    return name == "_xtalbase_xrd_recipe_id" or (name.startswith(PEAK_PREFIX) and name[len(PEAK_PREFIX):] in PEAK_COLUMNS)


# --------------------------------------------------------------------------- element conditions

_SE = StructureElement


def _element_values(values: list[Any], prop: _Prop, what: str = "elements holds element symbols") -> list[str]:
    out = []
    for v in values:
        if not isinstance(v, str):
            raise FilterError(_where(f"{what}; put them in double quotes, e.g. \"Fe\" (got {_show(v)})", prop.pos))
        if v not in out:
            out.append(v)
    return out


#: Elements roughly by how many inorganic crystal structures contain them, commonest first. Only used to
#: pick which element of ``HAS ALL`` drives the search (the rarest); answers never depend on it.
COMMON_ELEMENTS = ("O", "Li", "F", "P", "S", "N", "Mn", "Fe", "Co", "Na", "Mg", "Si", "H", "C", "Se", "Cu", "V", "Ni",
                   "K", "Ba", "Ca", "Sr", "Zn", "Cl", "Al", "Ti", "Cr", "B", "Te", "Ge", "Sn", "Bi", "Sb", "Ga", "In")


def _has_all(elements: list[str]) -> ColumnElement[bool]:
    # Walk the (element, structure_id) index for the rarest element and probe the primary key
    # (structure_id, element) for each other one: cost follows the rarest element, not the commonest.
    rank = {el: i for i, el in enumerate(COMMON_ELEMENTS)}
    ordered = sorted(elements, key=lambda el: -rank.get(el, len(COMMON_ELEMENTS)))
    driver = _SE.__table__.alias("se_driver")
    sub = select(driver.c.structure_id).where(driver.c.element == ordered[0])
    for i, el in enumerate(ordered[1:]):
        other = _SE.__table__.alias(f"se_{i}")
        sub = sub.where(select(other.c.structure_id).where(other.c.structure_id == driver.c.structure_id, other.c.element == el).exists())
    return Structure.id.in_(sub)


def _has_any(elements: list[str]) -> ColumnElement[bool]:
    return Structure.id.in_(select(_SE.structure_id).where(_SE.element.in_(elements)))


#: Up to this many listed elements, HAS ONLY is answered from the indexed chemical system (2**n - 1 spellings).
HAS_ONLY_SUBSETS_UP_TO = 12


def _has_only(elements: list[str]) -> ColumnElement[bool]:
    distinct = sorted(set(elements))
    if len(distinct) <= HAS_ONLY_SUBSETS_UP_TO:
        # the chemical system is the sorted element set joined by '-' (ingest's prepare): every non-empty subset of
        # the list, looked up in its index, beats counting each structure's listed elements (61 -> 2 ms at 100k)
        systems = ["-".join(combo) for k in range(1, len(distinct) + 1) for combo in itertools.combinations(distinct, k)]
        return Structure.chemical_system.in_(systems)
    # Every element of the structure is in the list: the listed elements it has number nelements.
    sub = (select(_SE.structure_id).join(Structure, Structure.id == _SE.structure_id)
           .where(_SE.element.in_(elements))
           .group_by(_SE.structure_id, Structure.nelements).having(func.count() == Structure.nelements))
    return Structure.id.in_(sub)


# --------------------------------------------------------------------------- structure_features, unsupported fields

#: The only structure feature xtalbase stores: a site with several species or a partial occupancy.
DISORDER = "disorder"
#: OPTIMADE's other structure features, which no stored structure has.
OTHER_FEATURES = ("implicit_atoms", "site_attachments", "assemblies")


def _is_disordered() -> ColumnElement[bool]:
    return Structure.site_occupancies.is_not(None)


def _features_has(mode: str, values: list[Any], prop: _Prop) -> ColumnElement[bool]:
    wanted = set(_element_values(values, prop, what="structure_features holds feature names"))
    if mode == "ONLY":
        return not_(_is_disordered()) if DISORDER not in wanted else true()
    has = {v: (_is_disordered() if v == DISORDER else false()) for v in wanted}
    return and_(*has.values()) if mode == "ALL" else or_(*has.values())


def _features_length(op: str, value: Any) -> ColumnElement[bool]:
    # a structure's list is [] or ["disorder"]
    return or_(and_(_is_disordered(), true() if _OPS[op](1, value) else false()),
               and_(not_(_is_disordered()), true() if _OPS[op](0, value) else false()))


#: Fields of an OPTIMADE structure that xtalbase returns but cannot filter on (answered 501 Not Implemented).
UNFILTERABLE = {
    "elements_ratios": "a list of floats", "dimension_types": "always [1, 1, 1]", "lattice_vectors": "a list of vectors",
    "cartesian_site_positions": "a list of vectors", "species": "a list of dictionaries",
    "species_at_sites": "a per-site list", "chemical_formula_hill": "not stored", "assemblies": "not stored",
    "space_group_symmetry_operations_xyz": "not stored", "space_group_symbol_hall": "not stored",
    "space_group_symbol_hermann_mauguin": "not stored", "space_group_symbol_hermann_mauguin_extended": "not stored",
    "type": "always \"structures\"", "_xtalbase_xrd_peaks": "a pair of lists; filter peaks with _xtalbase_xrd_peak_2theta etc.",
    "_xtalbase_predictions": "a list of dictionaries",
}

_PROVIDER = re.compile(r"_([a-z][a-z0-9]*)_")


class _ForeignField(Field):
    """A field of another provider (``_exmpl_x``): OPTIMADE treats its value as unknown, never as an error."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "string", "another provider's field")

    def compare(self, op: str, value: Any, pos: int, distinct: Distinct | None = None) -> ColumnElement[bool]:
        return false()

    def known(self, is_known: bool, pos: int) -> ColumnElement[bool]:
        return false() if is_known else true()

    def fuzzy(self, how: str, value: Any, pos: int, distinct: Distinct | None = None) -> ColumnElement[bool]:
        return false()


# --------------------------------------------------------------------------- transformer


def _unescape(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1], flags=re.S)


class _ToSql:
    """Walks the lark tree bottom-up (lark ``Transformer`` protocol) and returns SQL expressions."""

    def __init__(self, text: str, distinct: Distinct | None = None, foreign: list[str] | None = None) -> None:
        from lark import Transformer

        outer = self
        self.text = text
        self.distinct = distinct
        self.foreign = foreign

        class T(Transformer):
            def __default__(self, data, children, meta):  # noqa: ANN001
                return outer.dispatch(str(data), children, meta)

        self._t = T()

    def transform(self, tree: Any) -> ColumnElement[bool]:
        result = self._t.transform(tree)
        if isinstance(result, _PeakTerms):
            result = result.sql()
        return true() if result is None else result

    # -- lark calls __default__ for every rule; dispatch by rule name
    def dispatch(self, rule: str, children: list[Any], meta: Any) -> Any:
        if rule == "bool":
            # The grammar drops the anonymous TRUE/FALSE token; read it from the text.
            return self.text[meta.start_pos:meta.end_pos] == "TRUE"
        method = getattr(self, "r_" + rule, None)
        if method is None:
            raise FilterError(f"invalid filter: the {rule.replace('_', ' ')} form is not supported")
        return method(children)

    def r_filter(self, c: list[Any]) -> Any:
        return c[0] if c else None

    def r_string(self, c: list[Any]) -> str:
        return _unescape(str(c[0]))

    def r_number(self, c: list[Any]) -> int | float:
        tok = c[0]
        return _number(str(tok), tok.start_pos, integer=tok.type == "SIGNED_INT")

    def r_signed_int(self, c: list[Any]) -> int:
        return _number(str(c[0]), c[0].start_pos, integer=True)

    def r_property(self, c: list[Any]) -> _Prop:
        if len(c) > 1:
            raise FilterError(_where(f"nested property {'.'.join(map(str, c))!r} is not supported", c[0].start_pos))
        return _Prop(str(c[0]), c[0].start_pos)

    def r_value(self, c: list[Any]) -> Any:
        return c[0]

    r_constant = r_non_string_value = r_value

    def r_not_implemented_string(self, c: list[Any]) -> Any:
        raise FilterError("invalid filter: comparing two constants is not supported; put a property on one side")

    def r_comparison(self, c: list[Any]) -> Any:
        return c[0]

    def r_value_list(self, c: list[Any]) -> list[Any]:
        if any(getattr(x, "type", None) == "OPERATOR" for x in c):
            raise FilterError("invalid filter: operators inside HAS ALL/ANY/ONLY lists are not supported")
        return list(c)

    def r_expression(self, c: list[Any]) -> Any:
        parts = [x.sql() if isinstance(x, _PeakTerms) else x for x in c]
        return parts[0] if len(parts) == 1 else or_(*parts)

    def r_expression_clause(self, c: list[Any]) -> Any:
        peaks = [x for x in c if isinstance(x, _PeakTerms)]
        others = [x for x in c if not isinstance(x, _PeakTerms)]
        if peaks:
            merged = _PeakTerms([cond for p in peaks for cond in p.conds], any(p.recipe_given for p in peaks))
            if not others:
                return merged
            others.append(merged.sql())
        return others[0] if len(others) == 1 else and_(*others)

    def r_expression_phrase(self, c: list[Any]) -> Any:
        # A parenthesised expression arrives already compiled (its peak terms stay inside it);
        # a bare peak comparison stays open so that its AND clause can merge it.
        inner = c[-1]
        if len(c) == 2:  # NOT
            return not_(inner.sql() if isinstance(inner, _PeakTerms) else inner)
        return inner

    def r_constant_first_comparison(self, c: list[Any]) -> Any:
        value, op, prop = c
        if not isinstance(prop, _Prop):
            raise FilterError("invalid filter: comparing two constants is not supported")
        return self._compare(prop, _REVERSED[str(op)], value)

    def r_property_first_comparison(self, c: list[Any]) -> Any:
        prop, (kind, args) = c
        if kind == "value":
            return self._compare(prop, *args)
        if kind == "known":
            if prop.name in ("elements", "structure_features", "nperiodic_dimensions"):
                return true() if args else false()
            return self._field(prop).known(args, prop.pos)
        if kind == "fuzzy":
            if prop.name in ("elements", "structure_features"):
                raise FilterError(_where("elements is a list: use HAS, HAS ALL, HAS ANY or HAS ONLY", prop.pos))
            return self._field(prop).fuzzy(args[0], args[1], prop.pos, self.distinct)
        if kind == "set":
            return self._set(prop, *args)
        if kind == "length":
            return self._length(prop, *args)
        raise FilterError(_where(f"{kind} comparisons are not supported", prop.pos))  # pragma: no cover

    def r_value_op_rhs(self, c: list[Any]) -> tuple[str, tuple]:
        return "value", (str(c[0]), c[1])

    def r_known_op_rhs(self, c: list[Any]) -> tuple[str, bool]:
        return "known", str(c[1]) == "KNOWN"

    def r_fuzzy_string_op_rhs(self, c: list[Any]) -> tuple[str, tuple]:
        return "fuzzy", (str(c[0]), c[-1])

    def r_set_op_rhs(self, c: list[Any]) -> tuple[str, tuple]:
        words = [str(x) for x in c if getattr(x, "type", None) in ("ALL", "ANY", "ONLY", "OPERATOR")]
        mode = next((w for w in words if w in ("ALL", "ANY", "ONLY")), None)
        op = next((w for w in words if w not in ("ALL", "ANY", "ONLY")), "=")
        values = c[-1] if isinstance(c[-1], list) else [c[-1]]
        return "set", (mode or "ALL", op, values)

    def r_property_zip_addon(self, c: list[Any]) -> Any:
        raise FilterError("invalid filter: zipped HAS (a:b HAS x:y) is not supported; xtalbase has no list fields besides elements")

    r_set_zip_op_rhs = r_property_zip_addon

    def r_length_op_rhs(self, c: list[Any]) -> tuple[str, tuple]:
        op = next((str(x) for x in c if getattr(x, "type", None) == "OPERATOR"), "=")
        return "length", (op, c[-1])

    # -- semantics
    def _field(self, prop: _Prop) -> Field:
        if prop.name.startswith(PROPERTY_PREFIX) and len(prop.name) > len(PROPERTY_PREFIX):
            return _property_field(prop.name[len(PROPERTY_PREFIX):])
        fld = _fields().get(prop.name)
        if fld is not None:
            return fld
        if prop.name in UNFILTERABLE:
            raise UnsupportedFilter(_where(f"filtering on {prop.name} ({UNFILTERABLE[prop.name]}) is not supported", prop.pos))
        provider = _PROVIDER.match(prop.name)
        if self.foreign is not None and provider and provider.group(1) != "xtalbase":
            if prop.name not in self.foreign:
                self.foreign.append(prop.name)
            return _ForeignField(prop.name)
        raise FilterError(_where(f"unknown field {prop.name!r}; known fields: {', '.join(known_fields())}", prop.pos))

    def _compare(self, prop: _Prop, op: str, value: Any) -> Any:
        if _is_peak_field(prop.name):
            return _peak_comparison(prop, op, value)
        if prop.name == "elements":
            raise FilterError(_where("elements is a list: use HAS, HAS ALL, HAS ANY, HAS ONLY or LENGTH", prop.pos))
        if prop.name == "nperiodic_dimensions":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FilterError(_where(f"nperiodic_dimensions is a number, not {_show(value)}", prop.pos))
            return true() if _OPS[op](3, value) else false()  # every stored structure is 3D-periodic
        if prop.name in ("structure_features", "elements"):
            raise FilterError(_where(f"{prop.name} is a list: use HAS, HAS ALL, HAS ANY, HAS ONLY or LENGTH", prop.pos))
        fld = self._field(prop)
        if isinstance(value, _Prop):
            self._field(value)  # an unknown name on the right is reported as such
        if prop.name == "id" and isinstance(value, str):
            # only the spelling ids are shown in ("42", not "042") is the number; compare the rest as text
            # (OPTIMADE ids are strings: "042" is no id, it matches nothing)
            if not re.fullmatch(r"0|[1-9][0-9]*", value):
                return _OPS[op](fld.text, value)
            value = _number(value, prop.pos, integer=True)
        return fld.compare(op, value, prop.pos, self.distinct)

    def _set(self, prop: _Prop, mode: str, op: str, values: list[Any]) -> ColumnElement[bool]:
        if prop.name == "structure_features" and op == "=":
            return _features_has(mode, values, prop)
        if prop.name != "elements" and isinstance(self._field(prop), _ForeignField):  # unknown, unsupported first
            return false()
        if prop.name != "elements":
            raise FilterError(_where(f"HAS applies to list fields (elements); {prop.name} is not a list", prop.pos))
        if op != "=":
            raise FilterError(_where(f"HAS {op} is not supported for elements; use HAS \"Fe\"", prop.pos))
        elements = _element_values(values, prop)
        return {"ALL": _has_all, "ANY": _has_any, "ONLY": _has_only}[mode](elements)

    def _length(self, prop: _Prop, op: str, value: int) -> ColumnElement[bool]:
        if prop.name == "structure_features":
            return _features_length(op, value)
        if prop.name != "elements":
            if isinstance(self._field(prop), _ForeignField):
                return false()
            raise FilterError(_where(f"LENGTH applies to list fields (elements); {prop.name} is not a list", prop.pos))
        return _OPS[op](Structure.nelements, _bind_number(value))


class PropertyField(Field):
    """``_xtalbase_property_<name>``: a source property, compared as a number or as text by the value's type."""

    def __init__(self, prop: str) -> None:
        super().__init__(PROPERTY_PREFIX + prop, "string", f"source property {prop}", column=SourceProperty.value_text,
                         related=lambda cond: select(Source.structure_id)
                         .join(SourceProperty, SourceProperty.source_id == Source.id)
                         .where(SourceProperty.name == prop, cond))

    def compare(self, op: str, value: Any, pos: int, distinct: Distinct | None = None) -> ColumnElement[bool]:
        if isinstance(value, _Prop):
            raise FilterError(_where(f"comparing {self.name} with another property is not supported", pos))
        if isinstance(value, bool):
            raise FilterError(_where(f"{self.name}: TRUE/FALSE values are not stored; compare with a number or a string", pos))
        col = SourceProperty.value_text if isinstance(value, str) else SourceProperty.value_float
        return Structure.id.in_(self.related(_OPS[op](col, value)))

    def known(self, is_known: bool, pos: int) -> ColumnElement[bool]:
        cond = Structure.id.in_(self.related(or_(SourceProperty.value_float.is_not(None), SourceProperty.value_text.is_not(None))))
        return cond if is_known else not_(cond)


def _property_field(name: str) -> Field:
    return PropertyField(name)


# --------------------------------------------------------------------------- entry points


GRAMMAR_VERSION = (1, 2, 0)

#: Longest filter accepted, characters.
MAX_FILTER_LENGTH = 100_000
#: Deepest nesting of parentheses accepted. Redundant parentheses, left-folded ``((a AND b) AND c)`` chains and
#: ``NOT (`` chains run far deeper on both backends; SQLite's parser stack (100 entries) overflows from 37 levels of
#: alternating AND/OR and from 16 levels of ``NOT (a OR b AND ...``. What overflows a database parser below this
#: limit fails at execution with the positioned :class:`FilterError` too (:meth:`Query._connect`).
MAX_FILTER_DEPTH = 32
#: Most comparisons in one filter: SQLite refuses expressions deeper than 1000 and a long OR chain is that deep.
MAX_FILTER_COMPARISONS = 400
_INT64 = 2**63 - 1
# characters no database text can hold: NUL (PostgreSQL) and lone surrogates (not encodable as UTF-8)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _number(token: str, pos: int, *, integer: bool) -> int | float:
    """A filter number as Python int or float, or a positioned :class:`FilterError` when out of range."""
    try:
        value = int(token) if integer else float(token)
    except (ValueError, OverflowError):
        value = None  # beyond Python's digit limit for int()
    if value is None or (integer and abs(value) > _INT64) or (not integer and not math.isfinite(value)):
        shown = token if len(token) <= 40 else token[:20] + "..." + token[-10:]
        raise FilterError(_where(f"number {shown} is out of range (integers up to 64 bits, finite floats)", pos))
    return value


def check_filter_text(text: str) -> None:
    """Refuse, with the position, what no parse should see: an over-long or over-nested
    filter, NUL characters and lone surrogates."""
    if not isinstance(text, str):
        raise FilterError(f"invalid filter: a filter is a string, not {type(text).__name__}")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(_where(f"the filter is {len(text):,} characters long; at most {MAX_FILTER_LENGTH:,} are accepted",
                                 MAX_FILTER_LENGTH))
    bad = _UNSTORABLE.search(text)
    if bad:
        what = "a NUL character" if bad.group() == "\x00" else f"a lone surrogate {bad.group()!r}"
        raise FilterError(_where(f"{what} cannot be stored or compared (remove it)", bad.start()))
    for depth, i in _parentheses(text):
        if depth > MAX_FILTER_DEPTH:
            raise FilterError(_where(f"parentheses nest deeper than {MAX_FILTER_DEPTH} levels", i))


def _parentheses(text: str) -> Iterator[tuple[int, int]]:
    """``(depth, index)`` of every opening parenthesis outside strings."""
    depth, in_string, i = 0, False, 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "(":
            depth += 1
            yield depth, i
        elif ch == ")":
            depth = max(0, depth - 1)
        i += 1


def deepest_parenthesis(text: str) -> int:
    """0-based index of the first parenthesis at the deepest nesting of ``text`` (0 when there is none)."""
    return max(_parentheses(text), key=lambda d: (d[0], -d[1]), default=(0, 0))[1]


def _check_comparisons(tree: Any) -> None:
    comparisons = [t for t in tree.iter_subtrees() if t.data == "comparison"]
    if len(comparisons) > MAX_FILTER_COMPARISONS:
        extra = sorted(getattr(t.meta, "start_pos", 0) for t in comparisons)[MAX_FILTER_COMPARISONS]
        raise FilterError(_where(f"the filter has {len(comparisons)} comparisons; at most {MAX_FILTER_COMPARISONS} "
                                 "are accepted (use HAS ANY/ALL lists or ranges)", extra))


@functools.cache
def _parser() -> Any:
    """A parser for the OPTIMADE grammar file shipped by the ``optimade`` package.

    ``optimade``'s own ``LarkParser`` loads the same file with lark's Earley
    algorithm; the grammar is LALR(1) without conflicts, and lark's LALR parser
    gives the same trees in a fraction of the time (measured in ``docs/sql.md``,
    "Speed"), which matters when a filter must answer in milliseconds. Positions are propagated
    so that ``TRUE``/``FALSE`` (anonymous tokens the tree drops) can be read back.
    """
    from lark import Lark
    from optimade.filterparser.lark_parser import AVAILABLE_PARSERS

    grammar = AVAILABLE_PARSERS[GRAMMAR_VERSION]["default"]
    return Lark(grammar.read_text(), parser="lalr", maybe_placeholders=False, propagate_positions=True)


_TERMINAL_NAMES = {
    "ESCAPED_STRING": "a quoted string", "SIGNED_INT": "a number", "SIGNED_FLOAT": "a number",
    "IDENTIFIER": "a property name", "OPERATOR": "a comparison operator", "TRUE": "TRUE", "FALSE": "FALSE",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "NOT": "NOT", "_AND": "AND", "_OR": "OR", "HAS": "HAS",
    "LENGTH": "LENGTH", "CONTAINS": "CONTAINS", "STARTS": "STARTS", "ENDS": "ENDS", "IS": "IS",
    "ALL": "ALL", "ANY": "ANY", "ONLY": "ONLY", "KNOWN": "KNOWN", "UNKNOWN": "UNKNOWN", "WITH": "WITH",
    "COLON": "':'", "DOT": "'.'", "NESTED_IDENTIFIER": "a property name",
}


def parse(text: str) -> Any:
    """Parse ``text`` with the OPTIMADE v1.2 grammar; raise :class:`FilterError` with the position."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

    try:
        return _parser().parse(text)
    except UnexpectedInput as exc:
        expected = sorted({_TERMINAL_NAMES.get(t, t) for t in (getattr(exc, "expected", None) or getattr(exc, "allowed", None) or [])})
        hint = f"; expected {', '.join(expected)}" if expected else ""
        if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
            raise FilterError(f"invalid filter at position {len(text) + 1}: the filter ends too early{hint}: {text!r}") from None
        pos = getattr(exc, "pos_in_stream", None)
        if isinstance(exc, UnexpectedToken):
            pos = exc.token.start_pos
            what = f"unexpected {str(exc.token)!r}"
        elif isinstance(exc, UnexpectedCharacters):
            what = f"unexpected character {text[pos]!r}" if pos is not None and pos < len(text) else "unexpected input"
            if pos is not None and pos < len(text) and text[pos].isupper():
                hint += " (property names are lower case; keywords such as AND, HAS are upper case)"
        else:  # pragma: no cover - other lark errors
            what = str(exc).splitlines()[0]
        raise FilterError(f"invalid filter at position {(pos or 0) + 1}: {what}{hint}: {text!r}") from None


def compile_filter(text: str | None, *, distinct: Distinct | None = None,
                   foreign: list[str] | None = None) -> ColumnElement[bool]:
    """A SQLAlchemy boolean expression over ``structures`` for an OPTIMADE filter (``None``/blank: all rows).

    ``distinct`` (:data:`Distinct`: every distinct stored value of a column with its OPTIMADE spelling) lets
    ``<``/``>``/``STARTS``/``ENDS``/``CONTAINS`` on the formula fields compare OPTIMADE's spelling; without it they
    compare the stored one. Given a ``foreign`` list, fields of other
    providers (``_exmpl_x``) are unknown values, as OPTIMADE asks, and their names are appended to it; without
    one they are errors. Fields that exist but cannot be filtered raise :class:`UnsupportedFilter`.

    Filters longer than :data:`MAX_FILTER_LENGTH` characters, nested deeper than
    :data:`MAX_FILTER_DEPTH` parentheses, with more than :data:`MAX_FILTER_COMPARISONS`
    comparisons, holding NUL or lone surrogate characters, or numbers beyond
    64-bit integers / finite floats fail with a :class:`FilterError` naming the position.
    """
    if text is None:
        return true()
    check_filter_text(text)
    if not text.strip():
        return true()
    tree = parse(text)
    _check_comparisons(tree)
    try:
        return _ToSql(text, distinct, foreign).transform(tree)
    except FilterError:
        raise
    except RecursionError:  # the limits above keep filters far from this; a last net, not a path
        raise FilterError(_where("the filter is too deeply nested to compile", 0)) from None
    except Exception as exc:  # lark wraps errors raised inside callbacks
        inner = getattr(exc, "orig_exc", None)
        if isinstance(inner, FilterError):
            raise inner from None
        if isinstance(inner, RecursionError):
            raise FilterError(_where("the filter is too deeply nested to compile", 0)) from None
        raise
