"""POSCARs, CDVAE CSVs, Structure JSON and file names as VASP, ASE, pymatgen, pandas and people write them.

Built from the real fixtures in ``tests/data/ingest`` (COD CaO and CaTiO3, the Li4Mn2O6
POSCAR, the Perov-5 CSV head) and the VASP wiki's own POSCAR examples.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from sqlalchemy import select

from tests.ingest.helpers import CIF, DATA
from xtalbase.ingest import detect_format, read_structures
from xtalbase.ingest.pipeline import find_files

POSCAR = DATA / "poscar" / "POSCAR-012"  # Li4Mn2O6, VASP 4, formula comment
PEROV5 = DATA / "perov5_head.csv"

#: The VASP wiki's POSCAR example (cubic BN): the lattice constant in the scaling factor, the shape in 0.5s.
VASP_WIKI_BN = """Cubic BN
   3.57
 0.0 0.5 0.5
 0.5 0.0 0.5
 0.5 0.5 0.0
   B N
   1 1
Direct
 0.00 0.00 0.00
 0.25 0.25 0.25
"""


def _pmg(path_or_text):
    from pymatgen.io.cif import CifParser

    return CifParser(path_or_text).parse_structures(primitive=False)[0]


def _elements(record) -> list[str]:
    return [next(iter(occ)) for occ in record.species]


# --- POSCAR element names --------------------------------------------------------------------------------------


def test_vasp4_site_labels_beat_pymatgens_formula_comment(tmp_path):
    from pymatgen.core import Structure
    from pymatgen.io.vasp import Poscar

    cubic = _pmg(CIF / "CaTiO3.cif")  # real CaTiO3; reorder so Ti comes before Ca, as a user's structure may
    ordered = Structure.from_sites(sorted(cubic, key=lambda s: {"Ti": 0, "Ca": 1, "O": 2}[s.specie.symbol]))
    text = Poscar(ordered).get_str(vasp4_compatible=True)
    assert [w[:2] for w in text.splitlines()[0].split()[:2]] == ["Ca", "Ti"]  # pymatgen's comment: electronegativity order
    path = tmp_path / "POSCAR"
    path.write_text(text)
    (record,) = read_structures(path)
    assert _elements(record) == [s.specie.symbol for s in ordered]
    assert record.warnings[0].startswith("poscar: element names read from the site labels (Ti Ca O)")


def test_vasp4_potcar_beside_the_file_beats_the_comment(tmp_path):
    lines = POSCAR.read_text().splitlines()  # comment Li4Mn2O6, counts 4 2 6
    (tmp_path / "POSCAR").write_text("\n".join(lines) + "\n")
    (tmp_path / "POTCAR").write_text("".join(f"  PAW_PBE {e} 01Jan2000\n   TITEL  = PAW_PBE {e} 01Jan2000\n   POMASS = 1\n"
                                             for e in ("Na", "Co", "O")))
    (record,) = read_structures(tmp_path / "POSCAR")
    assert _elements(record) == ["Na"] * 4 + ["Co"] * 2 + ["O"] * 6
    assert "comment line names Li Mn O" in record.warnings[1]


def test_ase_vasp4_comment_names_one_type_each_whatever_the_counts(tmp_path):
    import ase.io

    atoms = ase.io.read(POSCAR)
    path = tmp_path / "POSCAR"
    ase.io.write(path, atoms, format="vasp", vasp5=False)
    assert path.read_text().splitlines()[0].split() == ["Li", "Mn", "O"]  # bare symbols, counts 4 2 6
    (record,) = read_structures(path)
    assert _elements(record) == atoms.get_chemical_symbols()


def test_a_spaced_formula_comment_cannot_order_types_with_equal_counts(tmp_path):
    lines = VASP_WIKI_BN.splitlines()
    path = tmp_path / "POSCAR"
    path.write_text("\n".join(["B1 N1"] + lines[1:5] + lines[6:]) + "\n")  # pymatgen's formula, counts 1 1
    (error,) = read_structures(path)
    assert error.reason == "unknown_element" and "equal counts" in error.message


# --- POSCAR layout ---------------------------------------------------------------------------------------------


def test_vasp_wiki_example_is_stored_and_scale_carries_the_precision(db, tmp_path):
    from xtalbase.schema import Quarantine, Structure

    good, coarse = tmp_path / "good", tmp_path / "coarse"
    good.mkdir(), coarse.mkdir()
    (good / "POSCAR").write_text(VASP_WIKI_BN)
    (coarse / "POSCAR").write_text(VASP_WIKI_BN.replace("3.57", "3.6"))  # a lattice constant of one decimal
    report = db.ingest([good, coarse])
    assert report.inserted == 1 and report.quarantined_by_reason == {"low_precision": 1}
    with db.session() as s:
        (stored,) = s.scalars(select(Structure)).all()
        (row,) = s.scalars(select(Quarantine)).all()
        assert (stored.spacegroup_number, round(stored.a, 4)) == (216, 2.5244)
        assert "scaling factors 3.6" in row.message


def test_cartesian_positions_are_judged_as_lengths_not_fractions(tmp_path):
    from xtalbase.ingest.validate import ValidationOptions, check

    text = ("N2 in a box\n1.0\n12.0000 0 0\n0 12.0000 0\n0 0 12.0000\nN\n2\nCartesian\n"
            "6.0000 6.0000 5.45\n6.0000 6.0000 6.55\n")
    path = tmp_path / "POSCAR"
    path.write_text(text)
    (record,) = read_structures(path)
    assert check(record, ValidationOptions()) is None  # 0.01 Å, not "2 of 6 fractional coordinates"
    path.write_text(text.replace("5.45", "5.5"))
    (coarse,) = read_structures(path)
    reason, message = check(coarse, ValidationOptions())
    assert reason == "low_precision" and "Cartesian coordinates (Å) 5.5" in message


def test_three_scaling_factors_are_applied_per_axis_as_ase_does(tmp_path):
    import ase.io

    path = tmp_path / "POSCAR"
    path.write_text("Li4Mn2O6\n 2.0 3.0 0.5\n" + "\n".join(POSCAR.read_text().splitlines()[2:]) + "\n")
    (record,) = read_structures(path)
    np.testing.assert_allclose(record.cell, ase.io.read(path, format="vasp").cell[:], atol=1e-9)
    assert not np.allclose(record.cell, ase.io.read(POSCAR).cell[:])


def test_positions_must_match_the_counts(tmp_path):
    lines = POSCAR.read_text().splitlines()  # 12 positions from line 8
    cases = {
        "CONTCAR": ("", "truncated_file", "the file is empty"),
        "POSCAR_cut": ("\n".join(lines[:14]), "truncated_file", "7 of 12 positions"),
        "POSCAR_header": ("\n".join(lines[:7]), "missing_coordinates", "no positions follow"),
        "POSCAR_more": ("\n".join(lines[:5] + ["   4   2   5"] + lines[6:]), "parse_error", "more position lines"),
        "POSCAR_words": ("\n".join(lines[:1] + ["scale"] + lines[2:]), "parse_error", "not a POSCAR"),
    }
    for name, (text, reason, words) in cases.items():
        (tmp_path / name).write_text(text + "\n" if text else "")
        (error,) = read_structures(tmp_path / name, format="poscar")
        assert (error.reason, words in error.message) == (reason, True), name
    velocities = "\n".join(lines + ["", *["  0.1 0.2 0.3"] * 12]) + "\n"  # a CONTCAR's velocity block after a blank
    (tmp_path / "CONTCAR").write_text(velocities)
    (record,) = read_structures(tmp_path / "CONTCAR")
    assert len(record.species) == 12


# --- CDVAE CSV ---------------------------------------------------------------------------------------------------


def _perov5_rows(n: int) -> tuple[list[str], list[list[str]]]:
    with open(PEROV5, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:n + 1]


def _write_csv(path, header, rows) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    path.write_text(buffer.getvalue())


def test_a_csv_cut_inside_its_last_cif_quarantines_that_row_as_truncated(tmp_path):
    header, rows = _perov5_rows(3)
    path = tmp_path / "cut.csv"
    _write_csv(path, header, rows)
    text = path.read_text()
    path.write_text(text[:text.rindex("_atom_site_occupancy") + 200])  # a download stopped mid-loop
    records = list(read_structures(path))
    assert [getattr(r, "reason", "ok") for r in records] == ["ok", "ok", "truncated_file"]
    assert "[row=2]" in records[2].message


def test_a_ragged_csv_row_is_quarantined_alone_and_later_rows_are_read(tmp_path):
    header, rows = _perov5_rows(4)
    rows[1] = rows[1][:2]  # a short row
    rows[2] = rows[2] + ["extra", "cells"]  # a shifted row
    path = tmp_path / "ragged.csv"
    _write_csv(path, header, rows)
    records = list(read_structures(path))
    assert [getattr(r, "reason", "ok") for r in records] == ["ok", "parse_error", "parse_error", "ok"]
    assert "2 cells but the header names 8 columns" in records[1].message


def test_a_cif_cell_with_two_blocks_and_non_finite_properties(tmp_path):
    header, rows = _perov5_rows(2)
    rows[0][2] = rows[0][2] + "\n" + rows[1][2]  # two data blocks in one cell
    rows[1][header.index("heat_ref")] = "nan"
    rows[1][header.index("dir_gap")] = "inf"
    path = tmp_path / "x.csv"
    _write_csv(path, header, rows)
    two, good = read_structures(path)
    assert two.reason == "parse_error" and "2 data blocks" in two.message
    assert good.properties["heat_ref"] == "nan" and good.properties["dir_gap"] == "inf"  # text: never a NaN number


# --- detection by name and content -----------------------------------------------------------------------------


def test_names_in_any_case_and_csv_before_cif(tmp_path):
    (tmp_path / "DATA.CSV").write_bytes(PEROV5.read_bytes())
    (tmp_path / "mp20_export.txt").write_bytes(PEROV5.read_bytes())
    (tmp_path / "CAO.CIF").write_text("#" + "x" * 5000 + "\n" + (CIF / "CaO.cif").read_text())  # long header first
    assert detect_format(tmp_path / "DATA.CSV") == "cdvae_csv"
    assert detect_format(tmp_path / "mp20_export.txt") == "cdvae_csv"
    assert detect_format(tmp_path / "CAO.CIF") == "cif"


def test_content_decides_what_a_poscar_name_holds(tmp_path):
    from pymatgen.core import Structure

    run = tmp_path / "run"
    run.mkdir()
    (run / "CONTCAR").write_text(POSCAR.read_text())
    (run / "POSCAR").write_text((CIF / "CaO.cif").read_text())  # a CIF saved under the name VASP wants
    (run / "mgo.vasp").write_text(json.dumps(_pmg(CIF / "CaO.cif").as_dict()))
    (run / "CONTCAR.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (run / "POSCAR.vesta").write_text("#VESTA_FORMAT_VERSION 3.5.0\nCRYSTAL\nTITLE\nLi4Mn2O6\n" * 3)
    (run / "POSCAR_maker.py").write_text("import ase.io\nprint('make a POSCAR')\n" * 5)
    assert {p.name: f for p, f in find_files(run)} == {"CONTCAR": "poscar", "POSCAR": "cif", "mgo.vasp": "pmg_json"}
    assert Structure.from_dict(json.loads((run / "mgo.vasp").read_text())).composition.reduced_formula == "CaO"


def test_forced_format_on_a_folder_never_reads_incar_or_potcar(db, tmp_path):
    from xtalbase.schema import Quarantine

    run = tmp_path / "run"
    run.mkdir()
    (run / "POSCAR").write_text(POSCAR.read_text())
    (run / "INCAR").write_text("ENCUT = 520\nISMEAR = 0\n")
    (run / "POTCAR").write_text("  PAW_PBE Li 01Jan2000\n   TITEL  = PAW_PBE Li 01Jan2000\n   POMASS = 7\n" * 3)
    assert find_files(run, "poscar") == [(run / "POSCAR", "poscar")]
    db.ingest([run / "POTCAR"], format="poscar")  # named on purpose: quarantined, its text never kept
    with db.session() as s:
        (row,) = s.scalars(select(Quarantine)).all()
        assert row.raw_text is None and row.raw_hash is not None


def test_source_database_hints_come_only_from_the_named_folder_down(db, tmp_path):
    from xtalbase.schema import Source

    inner = tmp_path / "mlip_project" / "relax"
    inner.mkdir(parents=True)
    (inner / "POSCAR").write_text(POSCAR.read_text())
    cod = tmp_path / "cod_subset"
    cod.mkdir()
    (cod / "CaO.cif").write_text((CIF / "CaO.cif").read_text().replace("_cod_database_code", "_cod_x"))
    db.ingest([inner, cod])
    with db.session() as s:
        found = dict(s.execute(select(Source.file_path, Source.database)).all())
    assert found == {str(inner / "POSCAR"): "local", str(cod / "CaO.cif"): "COD"}


# --- pymatgen Structure JSON --------------------------------------------------------------------------------------


def test_structure_json_keeps_charge_and_names_what_it_drops(tmp_path):
    structure = _pmg(CIF / "CaO.cif")
    structure.add_oxidation_state_by_element({"Ca": 2, "O": -2})
    structure.add_site_property("magmom", [0.0] * len(structure))
    data = structure.as_dict()
    data["charge"] = -1
    data["sites"][1].pop("abc")  # Cartesian only: converted, as the site's xyz says
    path = tmp_path / "cao.json"
    path.write_text(json.dumps(data))
    (record,) = read_structures(path)
    assert record.properties == {"charge": -1.0}
    assert any("site properties not stored (magmom)" in w for w in record.warnings)
    assert any("oxidation states not stored (Ca2+, O2-)" in w for w in record.warnings)
    np.testing.assert_allclose(record.frac_coords[1], structure.frac_coords[1], atol=1e-9)
    for site in data["sites"][2:]:
        site.pop("abc"), site.pop("xyz")
    path.write_text(json.dumps(data))
    (error,) = read_structures(path)
    assert error.reason == "missing_coordinates" and "site 2 has no coordinates" in error.message


@pytest.mark.parametrize("name", ["POSCAR", "CONTCAR.relax1", "Li4Mn2O6.vasp"])
def test_real_poscar_names_still_detected(tmp_path, name):
    (tmp_path / name).write_text(POSCAR.read_text())
    assert detect_format(tmp_path / name) == "poscar"
