"""Every supported OPTIMADE filter form, answered from SQL, against pymatgen's reading of the same real files."""

from __future__ import annotations

import pytest

# (filter, python predicate over Truth, hand-counted size of the answer on tests/data/query)
CASES = [
    ('elements HAS "O"', lambda t: "O" in t.elements, 39),
    ('elements HAS ALL "N","O"', lambda t: {"N", "O"} <= t.elements, 14),
    ('elements HAS ALL "O"', lambda t: "O" in t.elements, 39),
    ('elements HAS ANY "Cs","Rb","K"', lambda t: bool({"Cs", "Rb", "K"} & t.elements), 8),
    ('elements HAS ONLY "Si","O"', lambda t: t.elements <= {"Si", "O"}, 1),
    ('elements HAS ONLY "Sc","Zr","Yb"', lambda t: t.elements <= {"Sc", "Zr", "Yb"}, 3),
    ('elements HAS ONLY "O","Si","Bi","N"', lambda t: t.elements <= {"O", "Si", "Bi", "N"}, 3),
    # past HAS_ONLY_SUBSETS_UP_TO (12) listed elements the filter counts each structure's elements instead
    ('elements HAS ONLY "O","Si","Bi","N","Sc","Zr","Yb","Ti","Sr","Ba","Ca","Mg","Al"',
     lambda t: t.elements <= {"O", "Si", "Bi", "N", "Sc", "Zr", "Yb", "Ti", "Sr", "Ba", "Ca", "Mg", "Al"}, 8),
    ('NOT elements HAS "O"', lambda t: "O" not in t.elements, 23),
    ('elements LENGTH 3', lambda t: len(t.elements) == 3, 23),
    ('elements LENGTH >= 4', lambda t: len(t.elements) >= 4, 26),
    ("nelements = 5", lambda t: len(t.elements) == 5, 8),
    ("nelements >= 4 AND nsites < 10", lambda t: len(t.elements) >= 4 and len(t.structure) < 10, 18),
    ("nsites > 20", lambda t: len(t.structure) > 20, 12),
    ("4 < nsites", lambda t: len(t.structure) > 4, 53),
    ("nsites <= 5 OR nsites >= 100", lambda t: len(t.structure) <= 5 or len(t.structure) >= 100, 40),
    ('chemical_formula_reduced = "KO3Sb"', lambda t: t.structure.composition.reduced_formula == "KSbO3", 1),
    ('chemical_formula_reduced = "KSbO3"', lambda t: t.structure.composition.reduced_formula == "KSbO3", 1),
    ('chemical_formula_reduced = "K2Sb2O6"', lambda t: t.structure.composition.reduced_formula == "KSbO3", 1),
    ('chemical_formula_reduced = "N"', lambda t: t.structure.composition.reduced_formula == "N2", 1),
    ('chemical_formula_reduced = "O2Li"', lambda t: t.structure.composition.reduced_formula == "LiO2", 0),
    ('chemical_formula_reduced != "KSbO3"', lambda t: t.structure.composition.reduced_formula != "KSbO3", 61),
    ('chemical_formula_anonymous = "A3BC"', lambda t: t.structure.composition.anonymized_formula == "ABC3", 13),
    ('chemical_formula_anonymous = "ABC3"', lambda t: t.structure.composition.anonymized_formula == "ABC3", 13),
    ('chemical_formula_reduced STARTS "Li"', lambda t: t.structure.composition.reduced_formula.startswith("Li"), 8),
    ('chemical_formula_reduced STARTS WITH "Li"', lambda t: t.structure.composition.reduced_formula.startswith("Li"), 8),
    ('chemical_formula_reduced ENDS "O3"', lambda t: t.structure.composition.reduced_formula.endswith("O3"), 8),
    ('chemical_formula_reduced CONTAINS "Sn"', lambda t: "Sn" in t.structure.composition.reduced_formula, 5),
    ('chemical_formula_reduced CONTAINS "sn"', lambda t: "sn" in t.structure.composition.reduced_formula, 0),
    ('_xtalbase_source = "perov5"', lambda t: t.database == "perov5", 30),
    ('_xtalbase_source STARTS "M"', lambda t: t.database.startswith("M"), 24),
    ('_xtalbase_source_id = "mp-7176"', lambda t: t.database == "MP" and t.properties and t.structure.composition.reduced_formula == "RbLaSe2", 1),
    ("_xtalbase_volume < 70", lambda t: t.structure.volume < 70, 23),
    ("_xtalbase_density > 6.5", lambda t: t.structure.density > 6.5, 17),
    ("_xtalbase_a > 10", lambda t: t.structure.lattice.a > 10, 2),
    ("_xtalbase_b >= 7 AND _xtalbase_c < 9", lambda t: t.structure.lattice.b >= 7 and t.structure.lattice.c < 9, 6),
    ("_xtalbase_alpha > 90.5 OR _xtalbase_beta > 90.5", lambda t: t.structure.lattice.alpha > 90.5 or t.structure.lattice.beta > 90.5, 3),
    ("_xtalbase_gamma > 100", lambda t: t.structure.lattice.gamma > 100, 7),
    ("_xtalbase_property_heat_ref < 0.5", lambda t: t.properties.get("heat_ref", 99) < 0.5, 2),
    ("_xtalbase_property_formation_energy_per_atom < -2", lambda t: t.properties.get("formation_energy_per_atom", 0) < -2, 9),
    ("_xtalbase_property_heat_ref IS KNOWN", lambda t: "heat_ref" in t.properties, 30),
    ("_xtalbase_property_heat_ref IS UNKNOWN", lambda t: "heat_ref" not in t.properties, 32),
    ('(elements HAS "O" OR elements HAS "N") AND NOT nsites = 5',
     lambda t: ("O" in t.elements or "N" in t.elements) and len(t.structure) != 5, 15),
    ('NOT (elements HAS "O" AND nsites = 5) AND _xtalbase_source = "perov5"',
     lambda t: not ("O" in t.elements and len(t.structure) == 5) and t.database == "perov5", 5),
    ('elements HAS "N" AND elements HAS "F" OR elements HAS "Se"',
     lambda t: ("N" in t.elements and "F" in t.elements) or "Se" in t.elements, 9),
    ("nperiodic_dimensions = 3", lambda t: True, 62),
    ('id > 0 AND id = "1"', lambda t: t.id == 1, 1),
]


@pytest.mark.parametrize("filter_, predicate, expected", CASES, ids=[c[0] for c in CASES])
def test_filter_matches_pymatgen_oracle(qdb, truth, filter_, predicate, expected):
    want = {sid for sid, t in truth.items() if predicate(t)}
    got = qdb.query(filter_).ids()
    assert len(got) == len(set(got))
    assert set(got) == want
    assert len(want) == expected  # hand count on the fixture, so the oracle is not vacuous
    assert qdb.query(filter_).count() == expected


def test_space_group_and_crystal_system_agree_with_spglib(qdb, truth):
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    sg = {sid: SpacegroupAnalyzer(t.structure, symprec=0.01).get_space_group_number() for sid, t in truth.items()}
    assert set(qdb.query("_xtalbase_space_group_number = 99").ids()) == {i for i, n in sg.items() if n == 99}
    assert qdb.query("_xtalbase_space_group_number = 99").count() == 15
    assert set(qdb.query("_xtalbase_space_group_number >= 195").ids()) == {i for i, n in sg.items() if n >= 195}
    cubic = set(qdb.query('_xtalbase_crystal_system = "cubic"').ids())
    assert cubic == {i for i, n in sg.items() if n >= 195} and len(cubic) == 8
    assert set(qdb.query('_xtalbase_crystal_system = "Cubic"').ids()) == cubic
    assert set(qdb.query('NOT _xtalbase_crystal_system = "cubic"').ids()) == set(truth) - cubic
    assert set(qdb.query('_xtalbase_crystal_system != "cubic"').ids()) == set(truth) - cubic
    assert set(qdb.query('_xtalbase_space_group_symbol = "P4mm"').ids()) == {i for i, n in sg.items() if n == 99}
    assert qdb.query("_xtalbase_space_group_number IS KNOWN").count() == len(truth)


def test_sort_and_limit(qdb, truth):
    ids = qdb.query("nsites > 20", sort="-nsites", limit=3).ids()
    sizes = sorted(((len(t.structure), -sid) for sid, t in truth.items() if len(t.structure) > 20), reverse=True)
    assert [len(truth[i].structure) for i in ids] == [s for s, _ in sizes[:3]]
    assert qdb.query(None, sort="_xtalbase_volume").ids()[0] == min(truth, key=lambda i: truth[i].structure.volume)
    assert qdb.query("nsites > 20", limit=4).count() == 4
    assert qdb.query("nsites > 20", limit=0).ids() == []
