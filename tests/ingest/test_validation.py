"""Every quarantine reason, from hand-made bad records, stored once with a message naming the record."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.ingest.helpers import BAD, CIF, DATA, count
from xtalbase.ingest.records import REASONS
from xtalbase.ingest.validate import ValidationOptions, imprecise_coordinate
from xtalbase.schema import Calculation, Quarantine, Source, Structure

EXPECTED = {
    "parse_error.cif": "parse_error", "missing_cell.cif": "missing_cell", "missing_coordinates.cif": "missing_coordinates",
    "unknown_element.cif": "unknown_element", "non_finite.poscar": "non_finite", "zero_volume.poscar": "zero_volume",
    "overlapping_atoms.cif": "overlapping_atoms", "low_precision.cif": "low_precision",
    "partial_occupancy.cif": "partial_occupancy", "too_many_sites.cif": "too_many_sites",
    "vasprun_truncated.xml": "truncated_file", "vasprun_unconverged.xml.gz": "unconverged",
    "unsafe_path.cif": "unsafe_path",  # a link to ../cif/CaO.cif: a file outside the folder ingested
    "bad_cell.poscar": "bad_cell",
}
#: Reasons no small file shows under the default options, each with the tests that produce it.
NOT_FROM_A_SMALL_FILE = {
    "too_large": "tests/ingest/test_validation_hardening.py (a gzip bomb under a small --max-decompressed-mb)",
    "timeout": "tests/ingest/test_budgets.py (a record stuck in C code under a 2 s budget)",
    "memory_limit": "tests/ingest/test_budgets.py (a 2 GiB allocation under a 512 MiB cap)",
}


def test_every_reason_has_a_bad_record():
    assert set(EXPECTED.values()) | set(NOT_FROM_A_SMALL_FILE) == set(REASONS)
    assert not set(EXPECTED.values()) & set(NOT_FROM_A_SMALL_FILE)


def test_each_bad_record_is_quarantined_with_its_reason(db):
    report = db.ingest(BAD, require_converged=True)
    assert report.read == len(EXPECTED) and report.inserted == 0 and report.quarantined == len(EXPECTED)
    assert report.quarantined_by_reason == {reason: 1 for reason in EXPECTED.values()}
    with db.session() as s:
        rows = {q.file_path.rsplit("/", 1)[-1]: q for q in s.scalars(select(Quarantine))}
    assert {name: q.reason for name, q in rows.items()} == EXPECTED
    for name, q in rows.items():
        assert name in q.message and q.run_id == report.run_id
        assert q.record_locator in q.message or q.record_locator == "file"  # file-level failures name the file
        assert q.raw_text or q.reason in ("truncated_file", "unconverged", "unsafe_path")  # unsafe: never its text
    assert count(db, Structure) == 0 and count(db, Source) == 0
    again = db.ingest(BAD, require_converged=True)  # re-ingest: same verdicts, no second quarantine row
    assert again.quarantined == len(EXPECTED) and count(db, Quarantine) == len(EXPECTED)


def test_unconverged_is_stored_as_not_converged_without_the_flag(db):
    report = db.ingest(BAD / "vasprun_unconverged.xml.gz")
    assert report.inserted == 1 and report.quarantined == 0
    with db.session() as s:
        calc = s.scalars(select(Calculation)).one()
    assert calc.converged is False and calc.electronic_converged is False


def test_allow_disorder_stores_occupancies(db):
    report = db.ingest(BAD / "partial_occupancy.cif", allow_disorder=True)
    assert report.inserted == 1
    with db.session() as s:
        row = s.scalars(select(Structure)).one()
    assert row.site_occupancies[0] == {"Fe": 0.5, "Ni": 0.5} and row.formula_reduced == "Fe3.5Ni0.5"


def test_a_record_stored_by_a_later_run_leaves_the_quarantine(db):
    first = db.ingest([BAD / "partial_occupancy.cif", BAD / "overlapping_atoms.cif"])
    assert first.quarantined_by_reason == {"overlapping_atoms": 1, "partial_occupancy": 1}
    second = db.ingest([BAD / "partial_occupancy.cif", BAD / "overlapping_atoms.cif"], allow_disorder=True)
    assert second.inserted == 1 and second.quarantined_by_reason == {"overlapping_atoms": 1}
    with db.session() as s:  # only what is still not stored is listed
        assert s.scalars(select(Quarantine.reason)).all() == ["overlapping_atoms"]


def test_thresholds_are_configurable(db):
    assert db.ingest(BAD / "too_many_sites.cif", max_sites=2000).inserted == 1
    assert db.ingest(BAD / "low_precision.cif", min_coord_decimals=2).quarantined == 1  # 0.333 still not 1/3
    assert db.ingest(CIF / "1100108.cif", max_sites=0).quarantined_by_reason == {"too_many_sites": 1}


@pytest.mark.parametrize("text, bad", [
    ("0.5", False), ("0.25", False), ("0", False), ("0.125", False), ("-0.25", False), ("0.3333", False),
    ("0.66667", False), ("0.12345(3)", False), ("0.165(10)", False), ("0.1234", False),
    ("0.333", True), ("0.67", True), ("0.083", True), ("0.12", True), ("0.1", True),
])
def test_low_precision_judges_special_positions_apart(text, bad):
    assert imprecise_coordinate(text, ValidationOptions()) is bad


def test_clean_symmetrised_cifs_are_not_low_precision(db):
    report = db.ingest([CIF, DATA / "mp"])
    assert "low_precision" not in report.quarantined_by_reason


def test_shared_cod_and_references_are_not_low_precision(db_url):
    """All 227 COD space-group CIFs and the XRD reference CIFs: special positions must not trip the check."""
    from tests.conftest import shared
    from xtalbase.ingest.formats import read_structures
    from xtalbase.ingest.validate import check

    if not db_url.startswith("sqlite"):
        pytest.skip("pure reading check: one backend is enough")
    folders = [shared("cod_one_per_spacegroup", "all_spacegroups", "cifs"), shared("xrd_experimental")]
    flagged = []
    opts = ValidationOptions(allow_disorder=True, max_sites=10**6, overlap_fraction=0.0)
    for folder in folders:
        for path in sorted(folder.rglob("*.cif")):
            for record in read_structures(path):
                problem = None if not hasattr(record, "raw_values") else check(record, opts)
                if problem and problem[0] == "low_precision":
                    flagged.append((path.name, problem[1]))
    assert flagged == []


def test_warnings_are_stored_with_the_source(db, tmp_path):
    cif = (CIF / "CaO.cif").read_text().replace("Ca1 Ca", "Ca1 Na").replace(" Ca ", " Na ")
    path = tmp_path / "NaO.cif"
    path.write_text(cif)
    db.ingest(path)
    with db.session() as s:
        source = s.scalars(select(Source)).one()
    assert source.warnings and any(w.startswith("charge_unbalanced") for w in source.warnings)


def test_poscar_lattice_zeros_are_exact_but_short_components_are_low_precision(db, tmp_path):
    text = (DATA / "poscar" / "POSCAR-11").read_text()  # lattice rows hold plain 0.0 components
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "POSCAR").write_text(text)
    assert db.ingest(tmp_path / "ok", poscar_species="Ca,Ti,O").inserted == 1
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "POSCAR").write_text(text.replace("11.32741769", "11.3"))
    report = db.ingest(tmp_path / "short", poscar_species="Ca,Ti,O")
    assert report.quarantined_by_reason == {"low_precision": 1}
    with db.session() as s:
        message = s.scalars(select(Quarantine.message)).one()
    assert "lattice-vector components 11.3" in message


def test_three_way_mixed_site_at_one_third_each_is_not_over_occupied():
    import numpy as np

    from xtalbase.ingest.records import Record
    from xtalbase.ingest.validate import check

    site = {"Fe": 0.334, "Ni": 0.333, "Co": 0.334}  # sums to 1.0010000000000001 in floating point
    record = Record("block=x", np.eye(3) * 2.87, [site, dict(site)], np.array([[0, 0, 0], [0.5, 0.5, 0.5]]))
    assert check(record, ValidationOptions(allow_disorder=True)) is None
    assert check(record, ValidationOptions())[0] == "partial_occupancy"
    record.species[0] = {"Fe": 1.0, "Ni": 1.0}
    reason, message = check(record, ValidationOptions(allow_disorder=True))
    assert reason == "parse_error" and "total occupancy 2.000 > 1 (atoms listed twice?" in message


def test_quarantine_from_python_is_the_cli_list(db):
    import pytest

    from xtalbase.errors import XtalbaseError

    db.ingest(BAD)
    frame = db.quarantine()
    assert set(frame["reason"]) == set(EXPECTED.values()) - {"unconverged"}
    assert frame["id"].is_monotonic_decreasing
    low = db.quarantine("low_precision")
    assert list(low["file_path"].str.rsplit("/", n=1).str[-1]) == ["low_precision.cif"]
    with pytest.raises(XtalbaseError, match="not a reason code"):
        db.quarantine("bogus")
