"""Every registered reader on real fixture files, and format detection (one test per format, ASE style)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import shared
from tests.ingest.helpers import BAD, CIF, DATA
from xtalbase.ingest import FORMATS, detect_format, read_structures
from xtalbase.ingest.records import ReadError, Record

REAL_FILES = {
    "cif": CIF / "1100108.cif",
    "poscar": DATA / "poscar" / "POSCAR-78",
    "extxyz": DATA / "extxyz" / "sic_dft.xyz",
    "cdvae_csv": DATA / "perov5_head.csv",
    "vasprun": DATA / "vasp" / "io" / "vasprun.xml.gz",
    "outcar": DATA / "vasp" / "io" / "OUTCAR.gz",
    "mlip_json": DATA / "mlip" / "mlearn_Mo_test_first3.json",
}


def test_every_format_has_a_real_fixture_or_a_generated_one():
    assert set(FORMATS) - {"pmg_json"} == set(REAL_FILES)


@pytest.mark.parametrize("fmt", sorted(REAL_FILES))
def test_reader_reads_real_file_and_detects_its_format(fmt):
    path = REAL_FILES[fmt]
    assert detect_format(path) == fmt
    records = list(read_structures(path))
    assert records and all(isinstance(r, Record) for r in records), [getattr(r, "message", r) for r in records]
    for r in records:
        assert r.cell.shape == (3, 3) and r.frac_coords.shape == (len(r.species), 3)
        assert abs(np.linalg.det(r.cell)) > 1.0
    assert len({r.locator for r in records}) == len(records)


def test_pmg_json_round_trip(tmp_path):
    from pymatgen.io.cif import CifParser

    structure = CifParser(CIF / "CaTiO3.cif").parse_structures(primitive=False)[0]
    path = tmp_path / "catio3.json"
    path.write_text(structure.to_json())
    assert detect_format(path) == "pmg_json"
    (record,) = read_structures(path)
    assert np.allclose(record.cell, structure.lattice.matrix)
    assert [next(iter(s)) for s in record.species] == [site.specie.symbol for site in structure]


def test_a_utf8_byte_order_mark_is_ignored_in_cif_json_and_csv(tmp_path):
    from xtalbase.ingest.pipeline import find_files

    bom = b"\xef\xbb\xbf"
    cif = tmp_path / "CaO.cif"
    text = (CIF / "CaO.cif").read_text()
    cif.write_bytes(bom + text[text.index("data_"):].encode())  # the mark right before data_
    (record,) = read_structures(cif)
    assert isinstance(record, Record) and {el for occ in record.species for el in occ} == {"Ca", "O"}
    csv = tmp_path / "rows.csv"
    csv.write_bytes(bom + (DATA / "perov5_head.csv").read_bytes())  # as Excel saves it
    first = next(read_structures(csv))
    assert first.external_id == "3961" and not any(name.startswith("\ufeff") for name in first.properties)
    folder = tmp_path / "json"
    folder.mkdir()
    from pymatgen.core import Structure

    text = Structure.from_file(CIF / "CaO.cif").to_json()
    (folder / "CaO.json").write_bytes(bom + text.encode())
    assert find_files(folder) == [(folder / "CaO.json", "pmg_json")]  # not skipped as an unknown file
    (record,) = read_structures(folder / "CaO.json")
    assert isinstance(record, Record)


def _cif_text(name: str, group: str, sites: str, a: float = 5.4310, c: float | None = None, preamble: str = "") -> str:
    """A small CIF block: cubic or tetragonal cell, ``group`` line(s), one site loop."""
    return f"""data_{name}
{preamble}_cell_length_a {a:.4f}
_cell_length_b {a:.4f}
_cell_length_c {c or a:.4f}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
{group}
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
{sites}
"""


def _cif(tmp_path, name: str, group: str, sites: str, a: float = 5.4310, c: float | None = None) -> object:
    path = tmp_path / f"{name}.cif"
    path.write_text(_cif_text(name, group, sites, a, c))
    (item,) = read_structures(path)
    return item


def test_neutron_cif_with_deuterium_and_a_data_line_in_a_text_field(tmp_path):
    text = _cif_text("ND4Cl", "_symmetry_space_group_name_H-M 'P -4 3 m'",
                     "N1 N 0 0 0\nCl1 Cl 0.5 0.5 0.5\nD1 D 0.1528(2) 0.1528(2) 0.1528(2)", a=3.82,
                     preamble="_publ_section_comment\n;\ndata_ collected at 100 K (neutrons): a text field, not a new block\n;\n")
    path = tmp_path / "nd4cl.cif"
    path.write_text(text)
    (record,) = read_structures(path)  # one block, not two; D is hydrogen (as pymatgen reads it), and noted
    assert isinstance(record, Record) and record.locator == "block=ND4Cl"
    assert sorted(next(iter(o)) for o in record.species) == ["Cl", "H", "H", "H", "H", "N"]
    assert "cif: hydrogen isotopes (D) stored as H" in record.warnings
    assert record.raw_text == text  # stored as written


@pytest.mark.parametrize("group", ["_symmetry_space_group_name_H-M 'F d -3 m:2'", "_space_group_name_H-M_alt 'F d -3 m Z'",
                                   "_space_group_name_Hall '-F 4vw 2vw 3'"])
def test_cif_origin_choice_2_or_hall_symbol_without_operations_is_expanded_right(tmp_path, group):
    # diamond in origin choice 2: Si on 8a at 1/8; origin-1 operations would give 16 atoms
    record = _cif(tmp_path, "Si", group, "Si1 Si 0.1250 0.1250 0.1250")
    assert isinstance(record, Record) and len(record.species) == 8
    assert any("from spglib's table" in w for w in record.warnings)


@pytest.mark.parametrize("hall, sites", [("P 32", 3), ("P 3 2", 6), ("-P 3", 6)])
def test_cif_hall_symbols_are_told_apart_by_their_spacing(tmp_path, hall, sites):
    # P3_2 (145) has 3 general positions, P312 (149) and P-3 (147) have 6
    record = _cif(tmp_path, "trig", f"_space_group_name_Hall '{hall}'", "Si1 Si 0.1234 0.2345 0.3456", a=5.0, c=6.0)
    assert isinstance(record, Record) and len(record.species) == sites


def test_cif_hall_only_rutile_is_expanded_and_an_unusable_group_is_refused(tmp_path):
    sites = "Ti1 Ti 0.0000 0.0000 0.0000\nO1 O 0.30476(6) 0.30476(6) 0.0000"
    rutile = _cif(tmp_path, "rutile", "_space_group_name_Hall '-P 4n 2n'", sites, a=4.5937, c=2.9587)
    assert isinstance(rutile, Record) and sorted(next(iter(o)) for o in rutile.species) == ["O"] * 4 + ["Ti"] * 2
    unknown = _cif(tmp_path, "odd", "_space_group_name_Hall '-P 9q'", sites, a=4.5937, c=2.9587)
    assert unknown.reason == "parse_error" and "'-P 9q' is not one of the 530 settings" in unknown.message
    p1 = _cif(tmp_path, "p1", "_symmetry_space_group_name_H-M 'Q 4/z'", sites, a=4.5937, c=2.9587)
    assert p1.reason == "parse_error" and "would store only the asymmetric unit" in p1.message


def test_materials_project_api_document_gives_structure_id_and_properties(tmp_path):
    import json

    from pymatgen.io.cif import CifParser

    structure = CifParser(CIF / "CaO.cif").parse_structures(primitive=False)[0]
    path = tmp_path / "mp-2605.json"
    path.write_text(json.dumps({"material_id": "mp-2605", "formation_energy_per_atom": -3.2, "is_stable": True,
                                "structure": structure.as_dict()}))
    assert detect_format(path) == "pmg_json"
    (record,) = read_structures(path)
    assert record.external_id == "mp-2605" and record.properties == {"formation_energy_per_atom": -3.2, "is_stable": "true"}
    assert np.allclose(record.cell, structure.lattice.matrix) and len(record.species) == len(structure)


def test_multiblock_cif_gives_one_record_per_block():
    records = list(read_structures(CIF / "multiblock_Ti_TiO.cif"))
    assert len(records) == 2 and all(isinstance(r, Record) for r in records)
    assert records[0].locator != records[1].locator and all(r.locator.startswith("block=") for r in records)
    assert {el for r in records for occ in r.species for el in occ} == {"Ti", "O"}


def test_cif_with_symmetry_operations_is_expanded():
    (record,) = read_structures(CIF / "CaTiO3.cif")
    assert len(record.species) == 5  # Ca, Ti and 3 O generated from the symmetry operations
    assert record.database == "COD" and record.external_id == "1011211"


def test_cod_cif_names_its_database_and_id():
    (record,) = read_structures(CIF / "1100108.cif")
    assert record.database == "COD" and record.external_id == "1100108"


def test_csv_columns_become_id_and_properties():
    records = list(read_structures(DATA / "perov5_head.csv"))
    assert len(records) == 20
    first = records[0]
    assert first.external_id == "3961" and first.locator == "row=0"
    assert first.properties["heat_ref"] == pytest.approx(1.4383314936574307)
    assert first.properties["formula"] == "TiOsOFN" and "cif" not in first.properties


def test_poscar_element_names_from_comment_line_and_site_labels():
    (from_comment,) = read_structures(DATA / "poscar" / "POSCAR-012")
    assert {el for occ in from_comment.species for el in occ} == {"Li", "Mn", "O"}
    (from_labels,) = read_structures(DATA / "poscar" / "POSCAR-195")
    assert {el for occ in from_labels.species for el in occ} == {"Na", "Co", "N", "O"}


def test_poscar_without_any_element_names_is_refused_and_says_how_to_name_them():
    (error,) = read_structures(DATA / "poscar" / "POSCAR-11")
    assert isinstance(error, ReadError) and error.reason == "unknown_element"
    assert "POSCAR-11" in error.message and "--poscar-species" in error.message


def test_poscar_species_given_by_the_caller_in_type_order():
    (record,) = read_structures(DATA / "poscar" / "POSCAR-11", species="Ca,Ti,O")  # counts 4 2 8
    assert [next(iter(o)) for o in record.species] == ["Ca"] * 4 + ["Ti"] * 2 + ["O"] * 8
    assert any("given by the caller" in w for w in record.warnings)
    (short,) = read_structures(DATA / "poscar" / "POSCAR-11", species="Ca,O")
    assert short.reason == "unknown_element" and "2 element names but the file has 3 atom types" in short.message
    (bad,) = read_structures(DATA / "poscar" / "POSCAR-11", species="Ca,Xx,O")
    assert bad.reason == "unknown_element" and "'Xx'" in bad.message


def test_poscar_placeholder_species_keep_the_geometry_and_are_flagged():
    (record,) = read_structures(DATA / "poscar" / "POSCAR-11", species="placeholder")
    assert [next(iter(o)) for o in record.species] == ["H"] * 4 + ["He"] * 2 + ["Li"] * 8
    assert record.warnings[0].startswith("species_placeholder")
    assert np.isclose(record.cell[0, 0], 11.32741769) and record.frac_coords.shape == (14, 3)
    (named,) = read_structures(DATA / "poscar" / "POSCAR-012", species="placeholder")  # the file's own names win
    assert {el for occ in named.species for el in occ} == {"Li", "Mn", "O"}
    assert named.warnings == ["poscar: element names read from the comment line (Li Mn O)"]


VASP4_SLAB = """{comment}
1.0
  2.7750000000 0.0000000000 0.0000000000
  0.0000000000 2.7750000000 0.0000000000
  0.0000000000 0.0000000000 20.0000000000
2 2
Selective dynamics
Direct
  0.0000000000 0.0000000000 0.1000000000 F F F{label1}
  0.5000000000 0.5000000000 0.2000000000 T T T
  0.0000000000 0.0000000000 0.3000000000 F F F{label2}
  0.5000000000 0.5000000000 0.4000000000 T T T
"""


@pytest.mark.parametrize("comment", ["slab relaxation", "Primitive cell", "Cubic cell", "Generated by hand", "New"])
def test_poscar_never_reads_flags_or_ordinary_words_as_element_names(tmp_path, comment):
    path = tmp_path / "POSCAR"
    path.write_text(VASP4_SLAB.format(comment=comment, label1="", label2=""))
    (error,) = read_structures(path)  # "F" flags are not fluorine, "Pr"imitive is not praseodymium
    assert isinstance(error, ReadError) and error.reason == "unknown_element"


def test_poscar_names_from_labels_after_the_flags_and_from_a_formula_comment_are_noted(tmp_path):
    path = tmp_path / "POSCAR"
    path.write_text(VASP4_SLAB.format(comment="slab", label1=" Cu1", label2=" Au1"))
    (record,) = read_structures(path)
    assert [next(iter(o)) for o in record.species] == ["Cu", "Cu", "Au", "Au"]
    assert record.warnings == ["poscar: element names read from the site labels (Cu Au)"]
    path.write_text(VASP4_SLAB.format(comment="Cu Au", label1="", label2=""))  # one bare symbol per type (ASE)
    (record,) = read_structures(path)
    assert [next(iter(o)) for o in record.species] == ["Cu", "Cu", "Au", "Au"]
    path.write_text(VASP4_SLAB.format(comment="Cu2Au2 slab", label1="", label2=""))  # compact: type order
    (record,) = read_structures(path)
    assert [next(iter(o)) for o in record.species] == ["Cu", "Cu", "Au", "Au"]
    path.write_text(VASP4_SLAB.format(comment="Au2 Cu2", label1="", label2=""))  # pymatgen's spaced formula
    (ambiguous,) = read_structures(path)
    assert ambiguous.reason == "unknown_element" and "equal counts" in ambiguous.message
    path.write_text(VASP4_SLAB.format(comment="Cu3Au slab", label1="", label2=""))  # amounts 3:1, counts 2:2
    (error,) = read_structures(path)
    assert error.reason == "unknown_element"


def test_poscar_species_line_and_counts_line_must_agree(tmp_path):
    text = (DATA / "poscar" / "POSCAR-11").read_text().splitlines()
    path = tmp_path / "POSCAR"
    path.write_text("\n".join(text[:5] + ["Ca Ti O Sr"] + text[5:]) + "\n")  # four names, three counts
    (error,) = read_structures(path)
    assert error.reason == "parse_error" and "names 4 elements but the counts line gives 3" in error.message


def test_poscar_takes_element_names_from_a_potcar_beside_it(tmp_path):
    (tmp_path / "POSCAR").write_text((DATA / "poscar" / "POSCAR-11").read_text())
    titels = ["PAW_PBE Sr_sv 07Sep2000", "PAW_PBE Ti_pv 07Sep2000", "PAW_PBE O 08Apr2002"]
    (tmp_path / "POTCAR").write_text("".join(f"  {t.split()[1]}\n   TITEL  = {t}\n   POMASS = 1.0\n End of Dataset\n"
                                             for t in titels))
    (record,) = read_structures(tmp_path / "POSCAR")
    assert {el for occ in record.species for el in occ} == {"Sr", "Ti", "O"}
    assert any("POTCAR" in w for w in record.warnings)
    (tmp_path / "CONTCAR").write_text((DATA / "poscar" / "POSCAR-012").read_text())  # a formula comment
    (named,) = read_structures(tmp_path / "CONTCAR")  # VASP runs with the POTCAR: it beats free comment text
    assert [next(iter(o)) for o in named.species] == ["Sr"] * 4 + ["Ti"] * 2 + ["O"] * 6
    assert named.warnings[1] == "poscar: the comment line names Li Mn O; the names from the POTCAR beside the file are used"


def test_vasprun_final_step_by_default_and_every_step_on_request():
    path = REAL_FILES["vasprun"]
    (last,) = read_structures(path)
    steps = list(read_structures(path, all_steps=True))
    assert len(steps) == 3 and steps[-1].locator == last.locator == "ionic_step=2"
    calc = last.calculation
    assert calc.code == "VASP" and calc.code_version == "6.4.2" and calc.stress_unit == "kBar"
    assert calc.parameters["potcar_titles"] == ["PAW_PBE Si 05Jan2001"]
    assert calc.forces.shape == (2, 3) and calc.stress.shape == (3, 3) and calc.converged is True
    assert calc.parameters["incar"]["NELM"] == 100 and calc.parameters["kpoints"]["kpts"]


def test_outcar_and_vasprun_of_one_run_agree():
    (from_xml,) = read_structures(REAL_FILES["vasprun"])
    (from_outcar,) = read_structures(REAL_FILES["outcar"])
    a, b = from_xml.calculation, from_outcar.calculation
    assert a.energy == pytest.approx(b.energy, abs=1e-5)
    assert np.allclose(a.forces, b.forces, atol=1e-4)
    assert np.allclose(a.stress, b.stress, atol=1e-3)  # both kBar in VASP's sign


def test_extxyz_frames_carry_energy_forces_stress():
    frames = list(read_structures(REAL_FILES["extxyz"]))
    assert len(frames) == 8
    calc = frames[0].calculation
    assert calc.energy == pytest.approx(-131.2208143780268)
    assert calc.forces.shape == (len(frames[0].species), 3) and calc.stress.shape == (3, 3) and calc.stress_unit == "eV/Å^3"


SI_FRAMES = """2
Lattice="0.0 2.715 2.715 2.715 0.0 2.715 2.715 2.715 0.0" Properties=species:S:1:pos:R:3:REF_forces:R:3 REF_energy=-10.7 REF_stress="0.002 0.0 0.0 0.0 0.002 0.0 0.0 0.0 0.002" config_type=rattle pbc="T T T"
Si 0.01000 0.00000 0.00000 0.02 0.00 0.00
Si 1.35750 1.35750 1.35750 -0.02 0.00 0.00
2
Lattice="0.0 2.715 2.715 2.715 0.0 2.715 2.715 2.715 0.0" Properties=species:S:1:pos:R:3:force:R:3 Energy=-10.6 virial="0.4 0.0 0.0 0.0 0.4 0.0 0.0 0.0 0.4" pbc="T T T"
Si 0.02000 0.00000 0.00000 0.03 0.00 0.00
Si 1.35750 1.35750 1.35750 -0.03 0.00 0.00
2
Lattice="5.43 0.0 0.0 0.0 5.43 0.0 0.0 0.0 20.0" Properties=species:S:1:pos:R:3 pbc="T T F"
Si 0.00000 0.00000 0.00000
Si 1.35750 1.35750 1.35750
"""


def test_extxyz_reads_the_energy_forces_and_virial_spellings_of_mlip_data_sets(tmp_path):
    path = tmp_path / "si.extxyz"
    path.write_text(SI_FRAMES)
    ref, other, slab = read_structures(path)
    assert ref.calculation.energy == -10.7 and ref.calculation.forces[0, 0] == 0.02
    assert np.allclose(np.diag(ref.calculation.stress), 0.002) and ref.calculation.parameters == {"config_type": "rattle"}
    volume = abs(np.linalg.det(other.cell))  # 2 x 2.715^3
    assert other.calculation.energy == -10.6 and other.calculation.forces[1, 0] == -0.03
    assert np.allclose(np.diag(other.calculation.stress), -0.4 / volume)  # stress = -virial / volume, eV/A^3
    assert slab.reason == "missing_cell" and 'pbc="T T F"' in slab.message


def test_mlip_entries_are_calculations_with_kbar_stress():
    records = list(read_structures(DATA / "mlip" / "snap_Mo_AIMD_first2.json"))
    assert len(records) == 2
    calc = records[0].calculation
    assert calc.energy == pytest.approx(-583.01041526) and calc.stress_unit == "kBar"
    assert calc.stress[0, 0] == pytest.approx(22.30216879) and calc.parameters["group"] == "Mo"


def test_truncated_vasprun_is_a_truncated_file():
    (error,) = read_structures(BAD / "vasprun_truncated.xml")
    assert isinstance(error, ReadError) and error.reason == "truncated_file"
    (real,) = read_structures(DATA / "vasp" / "truncated" / "vasprun.xml")
    assert real.reason == "truncated_file"
    (outcar,) = read_structures(DATA / "vasp" / "truncated" / "OUTCAR")
    assert outcar.reason == "truncated_file"


def test_a_damaged_gzip_is_a_parse_error_and_a_cut_one_is_truncated(tmp_path):
    import gzip

    plain = tmp_path / "CaO.cif.gz"
    plain.write_bytes((CIF / "CaO.cif").read_bytes())  # named .gz, never compressed
    (error,) = read_structures(plain)
    assert error.reason == "parse_error" and "not readable as gzip" in error.message
    packed = gzip.compress((CIF / "CaO.cif").read_bytes())
    cut = tmp_path / "cut.cif.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    (error,) = read_structures(cut)
    assert error.reason == "truncated_file"


def test_vasp_volumetric_and_trajectory_files_in_a_run_folder_are_not_taken_for_poscars(tmp_path):
    from xtalbase.ingest.pipeline import find_files

    poscar = (DATA / "poscar" / "POSCAR-11").read_text()
    for name in ("POSCAR", "CHGCAR", "LOCPOT", "XDATCAR", "PARCHG.0001"):
        (tmp_path / name).write_text(poscar + ("\n 2 2 2\n 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8\n" if name != "POSCAR" else ""))
    assert find_files(tmp_path) == [(tmp_path / "POSCAR", "poscar")]
    (record,) = read_structures(tmp_path / "CHGCAR", format="poscar", species="placeholder")  # on request it reads
    assert isinstance(record, Record)


def test_unknown_format_is_a_read_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("nothing crystalline here\n")
    assert detect_format(path) is None
    (error,) = read_structures(path)
    assert error.reason == "parse_error" and "format" in error.message


def test_p1_fast_path_gives_what_cifparser_gives():
    """MP and CDVAE blocks skip CifParser's symmetry expansion; the sites and cell must be the same."""
    from pymatgen.io.cif import CifParser

    from xtalbase.ingest.readers.cdvae_csv import rows
    from xtalbase.ingest.readers.cif import parse_block

    texts = [p.read_text() for p in sorted((DATA / "mp" / "cifs").glob("*.cif"))]
    texts += [row["cif"] for _, row in rows(DATA / "perov5_head.csv")]
    for text in texts:
        record = parse_block(text, "block=x", "test")
        reference = CifParser.from_str(text).parse_structures(primitive=False)[0]
        assert np.array_equal(record.cell, reference.lattice.matrix)
        ours = sorted(zip([next(iter(o)) for o in record.species], map(tuple, record.frac_coords.tolist())))
        assert ours == sorted(zip([sp.symbol for sp in reference.species], map(tuple, reference.frac_coords.tolist())))


def test_shared_vasp_files_unconverged_and_all_steps(db):
    from sqlalchemy import select

    from tests.conftest import shared
    from xtalbase.schema import Calculation, Quarantine

    vasp = shared("vasp")
    report = db.ingest(vasp)
    assert report.quarantined_by_reason == {"truncated_file": 2}  # large_cell_real_optlay vasprun.xml and OUTCAR
    with db.session() as s:
        calcs = {c.source_id: c for c in s.scalars(select(Calculation))}
        unconverged = [c for c in calcs.values() if c.converged is False]
        reasons = set(s.scalars(select(Quarantine.file_path)))
    assert len(calcs) == report.inserted + report.duplicates == 8
    assert len(unconverged) == 1 and unconverged[0].ionic_converged is False  # unconverged/vasprun.xml.ionic
    assert {p.rsplit("/", 2)[-2] for p in reasons} == {"large_cell_real_optlay"}
    steps = db.ingest(vasp / "postprocess" / "vasprun.xml", all_steps=True)
    assert steps.read == 28 and steps.duplicates == 1 and steps.inserted == 27  # the final step was already stored
    strict = db.ingest(vasp / "unconverged", require_converged=True)
    assert strict.duplicates == 1  # already stored as converged=false; a new file would be quarantined 'unconverged'


def test_measured_xrd_scans_are_not_mistaken_for_poscars(tmp_path):
    scan = tmp_path / "scan.xy"
    scan.write_text("".join(f"{10 + i / 100:.2f}\t{2000 + i}\t{2085 + i}\n" for i in range(20)))
    assert detect_format(scan) is None
    assert detect_format(DATA / "poscar" / "POSCAR-195") == "poscar"


def _cif_texts() -> list[str]:
    """Every CIF block of the fixtures (COD: comments, symmetry operations, text fields; MP), and the
    Perov-5 CSV cells whole (a comment line before ``data_``), as the CSV reader passes them."""
    from xtalbase.ingest.readers.cdvae_csv import rows
    from xtalbase.ingest.readers.cif import split_blocks

    texts = [p.read_text() for p in sorted(DATA.rglob("*.cif"))]
    return [block for text in texts for _, block in split_blocks(text)] + [
        row["cif"] for _, row in rows(DATA / "perov5_head.csv")]


def test_plain_cif_tokenizer_gives_exactly_what_cifblock_gives():
    """The fast tokenizer either declines a block or returns pymatgen CifBlock's very dict."""
    from pymatgen.io.cif import CifFile

    from xtalbase.ingest.readers.cif import plain_block_data

    blocks = _cif_texts()
    accepted = 0
    for block in blocks:
        fast = plain_block_data(block)
        if fast is not None:
            accepted += 1
            assert fast == next(iter(CifFile.from_str(block).data.values())).data
    assert accepted >= len(blocks) // 2  # MP and Perov-5 blocks take the fast path


@pytest.mark.parametrize("block, why", [
    ("data_x\n# a comment\n_cell_length_a 4.0\n", "comment"),
    ("data_x\n_publ_section_title\n;\nA title\n;\n_cell_length_a 4.0\n", "text field"),
    ("data_x\n_cell_length_a 4.0\n4.1\n", "stray value"),
    ("data_x\nloop_\n_atom_site_label\n_atom_site_fract_x\nFe1 0.0\nFe2\n", "ragged loop"),
    ("data_x\n_chemical_name_common 'Fe\u00e9'\n", "non-ASCII"),
    ("data_a\n_x 1\n_y\ndata_b\n_x 2\n", "two blocks in one text (CifFile keeps one)"),
    ("data_x _a powder_pattern\n_b 1\n", "powder-pattern header (CifFile skips the block)"),
])
def test_plain_cif_tokenizer_declines_what_it_does_not_handle(block, why):
    from xtalbase.ingest.readers.cif import plain_block_data

    assert plain_block_data(block) is None, why


def test_plain_cif_tokenizer_keeps_quoted_values_and_loops():
    from xtalbase.ingest.readers.cif import plain_block_data

    data = plain_block_data("data_x\n_symmetry_space_group_name_H-M   'P 1'\nloop_\n _symmetry_equiv_pos_site_id\n"
                            " _symmetry_equiv_pos_as_xyz\n  1  'x, y, z'\n_cell_length_a 4.0(1)\n")
    assert data == {"_symmetry_space_group_name_H-M": "P 1", "_symmetry_equiv_pos_site_id": ["1"],
                    "_symmetry_equiv_pos_as_xyz": ["x, y, z"], "_cell_length_a": "4.0(1)"}


def test_plain_cif_tokenizer_on_shared_mp_and_cod_files():
    """On real files we do not ship: 1,000 MP CIFs and every COD one-per-space-group CIF."""
    import random

    from pymatgen.io.cif import CifFile

    from xtalbase.ingest.readers.cif import plain_block_data, split_blocks

    mp = sorted(shared("mp_cgcnn", "cifs").glob("*.cif"))
    files = random.Random(1).sample(mp, 1000) + sorted(shared("cod_one_per_spacegroup").rglob("*.cif"))
    accepted = 0
    for path in files:
        for _, block in split_blocks(path.read_text(errors="replace")):
            fast = plain_block_data(block)
            if fast is not None:
                accepted += 1
                assert fast == next(iter(CifFile.from_str(block).data.values())).data, path
    assert accepted >= 1000
