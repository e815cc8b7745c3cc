"""Identity: exact and canonical hashes, collapsing real COD duplicates, DFT configurations kept exact, idempotent re-ingest."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from tests.conftest import shared
from tests.ingest.helpers import CIF, DATA, count, structure_ids_of
from xtalbase.platform.convert import to_pymatgen
from xtalbase.schema import Calculation, Source, SourceProperty, Structure, StructureElement


def test_same_compound_collapses_and_different_ones_stay_apart(db):
    fe = [CIF / f"{n}.cif" for n in (1100108, 9000657, 9013488)]  # bcc Fe at three temperatures
    corundum = [CIF / "1000017.cif", CIF / "9009684.cif"]  # Al2O3 at ambient and high pressure
    report = db.ingest([*fe, *corundum, CIF / "1011099.cif", CIF / "CaO.cif"])
    assert report.read == 7 and report.inserted == 4 and report.duplicates == 3
    ids = structure_ids_of(db, *fe, *corundum, CIF / "1011099.cif", CIF / "CaO.cif")
    assert len({ids[p.name] for p in fe}) == 1 and len({ids[p.name] for p in corundum}) == 1
    assert len(set(ids.values())) == 4  # Fe, Al2O3, TiN, CaO
    assert count(db, Source) == 7  # every record keeps its own source row


def test_ordered_and_vacancy_disordered_tin_stay_apart(db):
    report = db.ingest([CIF / "1011099.cif", CIF / "1011100.cif"], allow_disorder=True)
    assert report.inserted == 2 and report.duplicates == 0
    with db.session() as s:
        formulas = sorted(s.scalars(select(Structure.formula_reduced)))
    assert formulas == ["Ti3.52N3.52", "TiN"]  # pymatgen reduces only integer compositions


def test_shared_duplicate_sets_collapse_per_compound(db):
    folder = shared("cod_one_per_spacegroup", "duplicates")
    report = db.ingest(folder, allow_disorder=True, workers=2)
    assert report.quarantined == 0 and report.read == report.inserted + report.duplicates
    with db.session() as s:
        rows = s.execute(select(Source.file_path, Structure.formula_reduced, Structure.id).join(Structure)).all()
    by_set: dict[str, set[int]] = {}
    for path, _formula, sid in rows:
        by_set.setdefault(path.split("/")[-2], set()).add(sid)
    assert len(by_set["Fe"]) == 1 and len(by_set["AlO"]) == 1  # temperature/pressure series of one structure
    # TiN: stoichiometric entries collapse; each distinct vacancy composition is its own structure
    with db.session() as s:
        tin = sorted(s.scalars(select(Structure.formula_reduced).where(Structure.id.in_(by_set["TiN"]))))
    assert len(tin) == len(set(tin)) == 5 and "TiN" in tin  # 11 stoichiometric entries + 4 vacancy compositions
    # DyMn6-xCrxGe6: 11 entries at 5 Cr contents x: entries of equal x collapse, different x stay apart
    with db.session() as s:
        dy = s.execute(select(Structure.formula_reduced).where(Structure.id.in_(by_set["DyMn6-xCrxGe6"]))).scalars().all()
    assert len(dy) == len(set(dy)) == 5


def test_canonical_hash_ignores_setting_and_site_order(db, tmp_path):
    from pymatgen.io.cif import CifParser

    structure = CifParser(CIF / "CaTiO3.cif").parse_structures(primitive=False)[0]
    shuffled = structure.copy()
    shuffled.make_supercell([2, 1, 1])
    shuffled = shuffled.get_sorted_structure(key=lambda site: -site.specie.Z)
    shuffled.translate_sites(list(range(len(shuffled))), [0.1, 0.2, 0.3])
    (tmp_path / "a.json").write_text(structure.to_json())
    (tmp_path / "b.json").write_text(shuffled.to_json())
    report = db.ingest(tmp_path)
    assert report.inserted == 1 and report.duplicates == 1
    with db.session() as s:
        row = s.scalars(select(Structure)).one()
    assert row.spacegroup_number == 221 and row.spacegroup_symbol == "Pm-3m" and row.crystal_system == "cubic"
    assert row.symprec == 0.01 and row.hash_version == 2


def test_dft_configurations_are_never_collapsed(db, tmp_path):
    """AIMD frames of one structure type stay distinct rows; two calculations on one configuration share it."""
    frames = DATA / "mlip" / "snap_Mo_AIMD_first2.json"
    report = db.ingest(frames)
    assert report.inserted == 2
    import shutil

    copy = tmp_path / "again.json"
    shutil.copy(frames, copy)
    copy.write_text(copy.read_text() + "\n")  # another file (another hash) with the very same configurations
    second = db.ingest(copy)
    assert second.inserted == 0 and second.duplicates == 2
    assert count(db, Structure) == 2 and count(db, Calculation) == 4
    with db.session() as s:
        per_structure = [len(s.scalars(select(Calculation).where(Calculation.structure_id == sid)).all())
                         for sid in s.scalars(select(Structure.id))]
    assert per_structure == [2, 2]


def test_reingest_of_the_same_files_inserts_nothing(db):
    inputs = [CIF, DATA / "perov5_head.csv", DATA / "vasp" / "io"]
    first = db.ingest(inputs)
    before = db.counts()
    second = db.ingest(inputs)
    assert second.inserted == 0 and second.duplicates == first.inserted + first.duplicates
    after = db.counts()
    for table in ("structures", "sources", "source_properties", "calculations", "structure_elements", "quarantine"):
        assert after[table] == before[table], table


def test_stored_row_decodes_to_the_structure_that_was_read(db):
    from xtalbase.ingest import read_structures

    (record,) = read_structures(CIF / "CaTiO3.cif")
    db.ingest(CIF / "CaTiO3.cif")
    with db.session() as s:
        row = s.scalars(select(Structure)).one()
        elements = {e.element: e.amount for e in s.scalars(select(StructureElement))}
    back = to_pymatgen(row)
    assert np.array_equal(back.lattice.matrix, record.cell) and np.array_equal(back.frac_coords, record.frac_coords)
    assert [s.specie.symbol for s in back] == [next(iter(o)) for o in record.species]
    assert elements == {"Ca": 1.0, "Ti": 1.0, "O": 3.0}
    assert row.formula_reduced == "CaTiO3" and row.formula_anonymous == "ABC3" and row.chemical_system == "Ca-O-Ti"
    assert row.nsites == 5 and row.volume == pytest.approx(back.volume) and row.density == pytest.approx(back.density, rel=1e-6)
    assert (row.a, row.alpha) == pytest.approx((back.lattice.a, back.lattice.alpha))


def test_disordered_row_round_trips_with_occupancies(db):
    db.ingest(CIF / "1011100.cif", allow_disorder=True)
    with db.session() as s:
        row = s.scalars(select(Structure)).one()
    back = to_pymatgen(row)
    assert not back.is_ordered and len(back) == row.nsites == 8
    assert back.composition.almost_equals(__import__("pymatgen.core").core.Composition({"Ti": 3.52, "N": 3.52}))
    assert {k: v for o in row.site_occupancies for k, v in o.items()} == {"Ti": 0.88, "N": 0.88}


def test_source_ids_and_properties(db):
    db.ingest([DATA / "perov5_head.csv", DATA / "mp"])
    with db.session() as s:
        perov = s.scalars(select(Source).where(Source.external_id == "3961")).one()
        props = {p.name: (p.value_float, p.value_text) for p in s.scalars(select(SourceProperty).where(SourceProperty.source_id == perov.id))}
        mp = s.scalars(select(Source).where(Source.external_id == "mp-1000")).one()
        mp_props = {p.name: p.value_float for p in mp.properties}
    assert perov.database == "perov5" and perov.format == "cdvae_csv" and perov.record_locator == "row=0"
    assert props["heat_ref"] == (pytest.approx(1.4383314936574307), None) and props["formula"] == (None, "TiOsOFN")
    assert set(props) == {"formula", "heat_all", "heat_ref", "dir_gap", "ind_gap"}
    assert mp.database == "MP" and mp_props == {"formation_energy_per_atom": pytest.approx(-1.7923372100000003)}


def _parsed(name: str):
    from pymatgen.io.cif import CifParser

    return CifParser(CIF / name).parse_structures(primitive=False)[0]


def test_matcher_gives_structure_matchers_answer_and_reduces_each_structure_once():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from xtalbase.ingest.matching import Matcher

    names = ["1100108.cif", "9000657.cif", "1000017.cif", "9009684.cif", "CaO.cif", "CaTiO3.cif"]
    structures = {n: _parsed(n) for n in names}
    swapped = structures["CaTiO3.cif"].copy()  # same composition, Ca and Ti exchanged on two sites: another structure
    ca = next(i for i, s in enumerate(swapped) if s.specie.symbol == "Ca")
    ti = next(i for i, s in enumerate(swapped) if s.specie.symbol == "Ti")
    swapped.replace(ca, "Ti")
    swapped.replace(ti, "Ca")
    structures["swapped"] = swapped
    reference = StructureMatcher()
    matcher = Matcher()
    answers = []
    for a in structures:
        for b in structures:
            ours = matcher.fit(a, structures[a], b, structures[b])
            assert ours == reference.fit(structures[a], structures[b]), (a, b)
            answers.append(ours)
    assert any(answers) and not all(answers)
    assert matcher.fit("1100108.cif", structures["1100108.cif"], "9000657.cif", structures["9000657.cif"])
    assert not matcher.fit("CaTiO3.cif", structures["CaTiO3.cif"], "swapped", swapped)
    assert len(matcher._reduced) == len(structures)  # one reduced cell per structure, however often compared


def test_matcher_cache_is_bounded():
    from xtalbase.ingest.matching import Matcher

    matcher = Matcher(cache_size=2)
    fe = _parsed("1100108.cif")
    for key in range(5):
        matcher.reduced(key, fe)
    assert list(matcher._reduced) == [3, 4]


def test_one_off_first_match_returns_the_callers_key_even_when_keys_repeat():
    from xtalbase.ingest.matching import first_match

    fe, cao = _parsed("1100108.cif"), _parsed("CaO.cif")
    assert first_match(_parsed("9000657.cif"), [("k", cao), ("k", fe)]) == "k"
    assert first_match(fe, [({"unhashable": 1}, cao), ({"unhashable": 2}, fe)]) == {"unhashable": 2}
    assert first_match(fe, [("x", cao)]) is None


def test_stored_lattice_parameters_equal_pymatgens_on_oblique_cells(db):
    # triclinic cells with three different angles (mp-976, mp-607464), rhombohedral and hexagonal ones
    xrd_mp = DATA.parent / "xrd" / "mp"
    paths = sorted((DATA / "mp" / "cifs").glob("*.cif")) + [CIF / "1000017.cif", xrd_mp / "mp-976.cif",
                                                            xrd_mp / "mp-607464.cif"]
    db.ingest(paths)
    with db.session() as s:
        rows = s.scalars(select(Structure)).all()
    assert len(rows) == len(paths)
    assert {round(r.alpha, 3) for r in rows} >= {109.471, 60.0, 90.0, 149.244, 67.634}
    for row in rows:
        back = to_pymatgen(row)
        assert (row.a, row.b, row.c, row.alpha, row.beta, row.gamma) == pytest.approx(
            (*back.lattice.abc, *back.lattice.angles), rel=1e-12)
        assert row.volume == pytest.approx(back.volume, rel=1e-12)
        assert row.density == pytest.approx(float(back.density), rel=1e-6)
