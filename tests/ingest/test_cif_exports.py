"""CIFs as ICSD, COD, SHELXL, IUCr journals and older tools write them: settings named only by symbol, text fields
left open, dummy sites, ``.`` values, impossible cells, publication-only blocks, oxide warnings.

Built from the real COD fixtures in ``tests/data/ingest/cif`` (hematite 1000017, TiO 1100042, CaO, CaTiO3);
settings are checked against spglib's table of the 530 settings.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.ingest.helpers import CIF
from xtalbase.ingest import read_structures
from xtalbase.ingest.readers.cif import element_of, parse_block, split_blocks
from xtalbase.ingest.validate import ValidationOptions, check, warnings_for

HEMATITE = CIF / "1000017.cif"  # R -3 2/c, hexagonal axes, operations listed


def _without_operations(text: str) -> str:
    """The block with its symmetry-operation loop removed."""
    return re.sub(r"loop_\s*\n\s*_symmetry_equiv_pos_as_xyz\s*\n(?:\s*'[^']*'\s*\n)+", "", text)


def _same(a, b) -> bool:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    def pmg(r):
        return Structure(Lattice(r.cell), [next(iter(o)) for o in r.species], r.frac_coords)

    return len(a.species) == len(b.species) and StructureMatcher(primitive_cell=False, scale=False).fit(pmg(a), pmg(b))


def _block(text: str) -> str:
    return text[text.index("data_"):]


def test_a_monoclinic_setting_named_only_by_symbol_gets_that_settings_operations():
    text = (CIF / "multiblock_Ti_TiO.cif").read_text()
    tio = text[text.index("data_1100042"):]  # A 1 1 2/m (unique axis c), operations listed
    with_ops = parse_block(tio, "block=1100042", "TiO")
    without = parse_block(_without_operations(tio), "block=1100042", "TiO")
    assert "_symmetry_equiv_pos_as_xyz" not in _without_operations(tio)
    assert len(with_ops.species) == 20 and _same(with_ops, without)  # Z = 10 TiO
    assert any("A 1 1 2/m" in w and "spglib" in w for w in without.warnings)


def test_rhombohedral_axes_symbol_expands_with_rhombohedral_operations():
    from pymatgen.io.cif import CifParser
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    hexagonal = CifParser(HEMATITE).parse_structures(primitive=False)[0]
    analyzer = SpacegroupAnalyzer(hexagonal, symprec=0.01)
    rhombohedral = analyzer.get_primitive_standard_structure()  # a = b = c, equal angles: 10 atoms
    dataset = SpacegroupAnalyzer(rhombohedral, symprec=0.01).get_symmetry_dataset()
    unique = sorted(set(dataset.equivalent_atoms))
    a, b, c = rhombohedral.lattice.abc
    alpha, beta, gamma = rhombohedral.lattice.angles
    for symbol in ("R -3 c :R", "R -3 c R", "R -3 2/c (rhombohedral axes)", "R -3 c"):  # COD, ICSD, COD, metric
        rows = "\n".join(f"{rhombohedral[i].specie.symbol}{k} {rhombohedral[i].specie.symbol} "
                         + " ".join(f"{x:.6f}" for x in rhombohedral[i].frac_coords) for k, i in enumerate(unique))
        block = (f"data_rh\n_cell_length_a {a:.5f}\n_cell_length_b {b:.5f}\n_cell_length_c {c:.5f}\n"
                 f"_cell_angle_alpha {alpha:.4f}\n_cell_angle_beta {beta:.4f}\n_cell_angle_gamma {gamma:.4f}\n"
                 f"_symmetry_space_group_name_H-M '{symbol}'\n_symmetry_Int_Tables_number 167\nloop_\n"
                 f"_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
                 f"_atom_site_fract_z\n{rows}\n")
        record = parse_block(block, "block=rh", symbol)
        assert len(record.species) == 10, symbol  # hexagonal operations on this cell gave 30 (3x)


@pytest.mark.parametrize("symbol, hall", [("P 21/n", 82), ("P 21/a", 83), ("I 2/a", 92), ("C n", 43), ("P n", 22),
                                          ("F d 3 m", 525), ("C m c a", 304), ("R -3 m :H", 458)])
def test_short_and_older_symbols_name_the_setting_spglib_lists(symbol, hall):
    from xtalbase.ingest.cif_settings import hall_settings, setting_operations

    full = hall_settings()[hall - 1].international_full
    cell = {"a": 5.1, "b": 6.2, "c": 7.3, "alpha": 90.0, "beta": 101.0, "gamma": 90.0}
    if full.startswith(("F", "C m c", "R")):
        cell = {"a": 5.1, "b": 5.1 if full[0] in "FR" else 6.2, "c": 5.1 if full[0] == "F" else 7.3,
                "alpha": 90.0, "beta": 90.0, "gamma": 120.0 if full[0] == "R" else 90.0}
    head = "".join(f"_cell_{'length' if k in 'abc' else 'angle'}_{k} {v:.4f}\n" for k, v in cell.items())
    atoms = "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 0.1130 0.2270 0.3710\n"
    named = parse_block(f"data_x\n{head}_symmetry_space_group_name_H-M '{symbol}'\n{atoms}", "block=x", symbol)
    ops = "loop_\n_symmetry_equiv_pos_as_xyz\n" + "".join(f"'{op}'\n" for op in setting_operations(hall))
    listed = parse_block(f"data_x\n{head}{ops}{atoms}", "block=x", symbol)
    assert _same(named, listed), symbol


def test_an_unclosed_text_field_is_quarantined_and_hides_no_later_block(tmp_path):
    bad = "data_B_unclosed\n_publ_section_comment\n;\nThis comment is never closed.\n_cell_length_a 5.0\n"
    path = tmp_path / "three.cif"
    path.write_text(_block((CIF / "CaO.cif").read_text()) + bad + _block((CIF / "CaTiO3.cif").read_text()))
    names = [name for name, _ in split_blocks(path.read_text())]
    assert len(names) == 3
    records = list(read_structures(path))
    assert [getattr(r, "reason", "ok") for r in records] == ["ok", "parse_error", "ok"]
    assert "never closed" in records[1].message


def test_occupancy_dot_is_the_default_one():
    text = _block((CIF / "CaTiO3.cif").read_text())
    row = "Ti1 Ti4+ 1 b 0.5 0.5 0.5 1. 0 d"
    assert row in text
    record = parse_block(text.replace(row, row.replace(" 1. ", " . ")), "block=x", "x")
    assert check(record, ValidationOptions()) is None  # not a 1e-8 occupancy, not partial
    assert record.species == parse_block(text, "block=x", "x").species
    assert any("occupancy '.'" in w for w in record.warnings)


def test_dummy_sites_are_not_atoms_and_du_is_not_deuterium():
    text = _block((CIF / "CaTiO3.cif").read_text())
    row = "O1 O2- 3 c 0.5 0.5 0. 1. 0 d"
    assert row in text
    record = parse_block(text.replace(row, row + "\nDu1 Du 1 a 0.25 0.25 0.25 1. 0 dum"), "block=x", "x")
    plain = parse_block(text, "block=x", "x")
    assert _same(record, plain) and any("dummy sites left out (Du1" in w for w in record.warnings)
    assert element_of("Du1") is None and element_of("D1") == "H" and element_of("Dy3+") == "Dy"


@pytest.mark.parametrize("cell, reason, words", [
    ({"_cell_length_c": "-4.8"}, "parse_error", "c=-4.8"),
    ({"_cell_angle_gamma": "200"}, "parse_error", "gamma=200"),
    ({"_cell_angle_gamma": "0"}, "parse_error", "gamma=0"),
    ({"_cell_length_c": "0"}, "zero_volume", "no volume"),
    ({"_cell_angle_alpha": "30", "_cell_angle_beta": "30", "_cell_angle_gamma": "120"}, "zero_volume", "no volume"),
])
def test_impossible_cells_are_refused_with_the_bad_parameter(cell, reason, words):
    text = _block((CIF / "CaO.cif").read_text())
    for tag, value in cell.items():
        text = re.sub(rf"^{tag}\s+\S+", f"{tag} {value}", text, flags=re.MULTILINE)
    error = parse_block(text, "block=x", "x")
    assert (error.reason, words in error.message) == (reason, True)


def test_cartesian_only_sites_and_causes_of_pymatgen_failures_are_named():
    text = _block((CIF / "CaO.cif").read_text())
    error = parse_block(text.replace("_atom_site_fract_", "_atom_site_Cartn_"), "block=x", "x")
    assert error.reason == "missing_coordinates" and "Cartesian" in error.message
    row = "O1 O2- 4 b 0.5 0.5 0.5 1. 0 d"
    assert row in text
    error = parse_block(text.replace(row, row.replace(" 0.5 0.5 ", " 1/2 0.5 ")), "block=x", "x")
    assert error.reason == "parse_error" and "'1/2'" in error.message  # pymatgen's second line, once lost


def test_publication_blocks_are_no_records(tmp_path):
    path = tmp_path / "paper.cif"
    path.write_text("data_global\n_journal_name_full 'Acta Cryst.'\n_publ_contact_author_name 'A. Author'\n"
                    + _block((CIF / "CaO.cif").read_text()))
    assert [getattr(r, "reason", "ok") for r in read_structures(path)] == ["ok"]


def test_oxide_warnings_use_observed_oxidation_states_and_formula_units():
    from xtalbase.ingest.records import Record

    ordered = Record(locator="x", cell=np.eye(3), species=[{"O": 1.0}], frac_coords=np.zeros((1, 3)))
    for oxide in ({"Cu": 4, "O": 2}, {"Ti": 4, "O": 6}, {"V": 2, "O": 4}, {"U": 2, "O": 4}, {"Ca": 6, "C": 6, "O": 18}):
        assert warnings_for(ordered, oxide) == [], oxide  # Cu2O, Ti2O3, VO2, UO2, calcite (conventional cell)
    assert warnings_for(ordered, {"Na": 1, "O": 3}) == [
        "charge_unbalanced: no average of common oxidation states makes this oxide neutral"]
    assert warnings_for(ordered, {"C": 6, "N": 2, "O": 2})[0].startswith("organic_without_hydrogen")


def test_near_special_coordinates_threshold_is_an_option(db, tmp_path):
    text = (CIF / "multiblock_Ti_TiO.cif").read_text()
    tio = text[text.index("data_1100042"):]
    row = "Ti3   Ti0    4 i 0.6666(5) 0.340(2) 0. 1.  0 d"
    assert row in tio
    path = tmp_path / "coarse.cif"
    path.write_text(tio.replace(row, row.replace("0.6666(5)", "0.667")))  # 2/3 to three digits
    first = db.ingest([path])
    assert first.quarantined_by_reason == {"low_precision": 1}
    from sqlalchemy import select

    from xtalbase.schema import Quarantine

    with db.session() as s:
        assert "--min-special-decimals" in s.scalars(select(Quarantine.message)).one()
    second = db.ingest([path], min_special_decimals=3)
    assert second.inserted == 1 and second.quarantined == 0
