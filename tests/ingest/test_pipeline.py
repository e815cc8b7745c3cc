"""The ingest pipeline end to end: workers, the CLI and its JSON summary, quarantine commands, XRD hook."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.ingest.helpers import BAD, CIF, DATA, count
from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.schema import Run, Source, Structure

runner = CliRunner()
SUMMARY_KEYS = {"read", "inserted", "duplicates", "quarantined", "quarantined_by_reason", "run_id", "seconds", "skipped"}


def _snapshot(db) -> list[tuple]:
    with db.session() as s:
        return sorted(s.execute(select(Source.file_path, Source.record_locator, Structure.exact_hash, Structure.canonical_hash,
                                       Structure.spacegroup_number).join(Structure)).all())


def test_two_workers_store_what_one_worker_stores(db, db_url, tmp_path):
    import xtalbase

    inputs = [CIF, DATA / "perov5_head.csv", DATA / "poscar", DATA / "mlip"]
    one = db.ingest(inputs, workers=1)
    other = xtalbase.connect(f"sqlite:///{tmp_path / 'two.db'}")
    other.init()
    two = other.ingest(inputs, workers=2, batch_size=7)
    assert (one.read, one.inserted, one.duplicates, one.quarantined) == (two.read, two.inserted, two.duplicates, two.quarantined)
    assert _snapshot(db) == _snapshot(other)
    other.close()


def test_ingest_runs_inside_a_recorded_run(db):
    report = db.ingest(DATA / "mp", source="MP-2017", licence="CC BY 4.0")
    with db.session() as s:
        run = s.get(Run, report.run_id)
        sources = s.scalars(select(Source)).all()
        structures = s.scalars(select(Structure)).all()
    assert run.kind == "ingest" and run.status == "succeeded" and run.summary == report.to_dict()
    assert run.params["symprec"] == 0.01 and run.params["workers"] == 1
    assert {src.database for src in sources} == {"MP-2017"} and {src.licence for src in sources} == {"CC BY 4.0"}
    assert all(st.run_id == report.run_id for st in structures) and all(src.run_id == report.run_id for src in sources)


def test_cli_json_summary_has_exactly_the_documented_keys(db):
    result = runner.invoke(app, ["ingest", str(CIF), str(BAD / "missing_cell.cif"), "--db", db.url, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == SUMMARY_KEYS
    assert summary["read"] == summary["inserted"] + summary["duplicates"] + summary["quarantined"] == 12
    assert summary["quarantined_by_reason"] == {"missing_cell": 1, "partial_occupancy": 1}  # 1011100.cif is disordered
    assert count(db, Structure) == summary["inserted"]


def test_cli_plain_summary_and_quarantine_commands(db):
    result = runner.invoke(app, ["ingest", str(BAD / "low_precision.cif"), str(BAD / "zero_volume.poscar"), "--db", db.url])
    assert result.exit_code == 0, result.output
    assert "read 2" in result.output and "quarantined 2" in result.output and "low_precision" in result.output
    listed = runner.invoke(app, ["quarantine", "list", "--db", db.url, "--reason", "low_precision", "--json"])
    rows = json.loads(listed.stdout)
    assert [r["reason"] for r in rows] == ["low_precision"] and rows[0]["file"].endswith("low_precision.cif")
    shown = runner.invoke(app, ["quarantine", "show", str(rows[0]["id"]), "--db", db.url])
    assert shown.exit_code == 0 and "0.333 0.667 0.25" in shown.output and "low_precision" in shown.output
    missing = runner.invoke(app, ["quarantine", "show", "999999", "--db", db.url])
    assert missing.exit_code != 0


def test_cli_errors_are_one_line(db, tmp_path):
    import pytest

    from xtalbase.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["ingest", str(tmp_path / "nowhere.cif"), "--db", db.url])
    assert exc.value.code == 1
    with pytest.raises(SystemExit):
        main(["ingest", str(CIF), "--format", "nonsense", "--db", db.url])


def test_help_everywhere():
    group = runner.invoke(app, ["quarantine", "--help"])
    assert group.exit_code == 0 and "list" in group.output and "show" in group.output
    for args in (["ingest", "--help"], ["quarantine", "list", "--help"], ["quarantine", "show", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "--db" in result.output


def test_xrd_flag_computes_patterns_of_the_new_structures(db):
    from xtalbase.schema import XrdPattern

    report = db.ingest(DATA / "mp", xrd=True)
    assert report.inserted == 4
    with db.session() as s:
        patterned = set(s.scalars(select(XrdPattern.structure_id)))
    assert patterned == set(report.structure_ids)


def test_a_file_given_twice_is_read_once(db):
    report = db.ingest([DATA / "vasp" / "io" / "vasprun.xml.gz", DATA / "vasp" / "io", DATA / "vasp" / "io" / "vasprun.xml.gz"])
    assert report.read == 2 and report.inserted == 2
    from xtalbase.schema import Calculation

    assert count(db, Calculation) == 2


def test_progress_reaches_every_file(db):
    seen: list[tuple[int, int]] = []
    db.ingest([DATA / "perov5_head.csv", DATA / "poscar"], on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5, 5)


def test_unnamed_poscar_is_quarantined_then_stored_with_placeholders_on_request(db):
    first = db.ingest(DATA / "poscar" / "POSCAR-11")
    assert first.quarantined_by_reason == {"unknown_element": 1}
    second = db.ingest(DATA / "poscar" / "POSCAR-11", poscar_species="placeholder")  # quarantined records are read again
    assert second.inserted == 1
    with db.session() as s:
        source = s.scalars(select(Source)).one()
        run = s.get(Run, second.run_id)
        structure = s.get(Structure, source.structure_id)
    assert source.warnings[0].startswith("species_placeholder")
    assert structure.chemical_system == "H-He-Li" and run.params["poscar_species"] == "placeholder"
    assert db.ingest(DATA / "poscar" / "POSCAR-11", poscar_species="placeholder").inserted == 0


def test_a_file_named_twice_or_through_a_link_is_read_once(tmp_path):
    from xtalbase.ingest.pipeline import find_files

    link = tmp_path / "fe.cif"
    link.symlink_to(CIF / "1100108.cif")
    found = find_files([CIF / "1100108.cif", link, CIF / "1100108.cif", CIF])
    assert [p.name for p, _ in found].count("1100108.cif") == 1
    assert all(fmt == "cif" for _, fmt in found) and len(found) == len(list(CIF.glob("*.cif")))
    with pytest.raises(XtalbaseError, match="no such file or directory"):
        find_files([tmp_path / "missing.cif"])


def test_a_folder_keeps_broken_structure_links_for_their_reader_and_skips_hidden_files(tmp_path):
    from xtalbase.ingest.pipeline import find_files

    (tmp_path / "ca.cif").write_text((CIF / "CaO.cif").read_text())
    (tmp_path / ".hidden.cif").write_text((CIF / "CaO.cif").read_text())
    (tmp_path / "gone.cif").symlink_to(tmp_path / "nowhere.cif")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "fe.cif").symlink_to(CIF / "1100108.cif")
    (tmp_path / "notes.txt").symlink_to(tmp_path / "nowhere.txt")
    assert [(p.name, fmt) for p, fmt in find_files(tmp_path)] == [("ca.cif", "cif"), ("gone.cif", "cif"), ("fe.cif", "cif")]
