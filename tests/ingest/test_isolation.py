"""Per-file isolation (issue 25): one bad file never stops a batch, no file is dropped without a word, and the text
of a file outside the given paths is never stored. Every input is a small file made in the test."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.ingest.helpers import CIF
from xtalbase.schema import Quarantine, Source, SourceProperty

VALID = ("CaO.cif", "CaTiO3.cif")
DEPTH = 1000  # about 2 kB of brackets: past Python's default recursion limit


def _valid_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in VALID:
        shutil.copy(CIF / name, folder / name)
    return folder


def _quarantine(db) -> dict[str, Quarantine]:
    with db.session() as s:
        return {os.path.basename(q.file_path): q for q in s.scalars(select(Quarantine))}


def _balanced(report) -> bool:
    return report.read == report.inserted + report.duplicates + report.quarantined


def _deep_shapes() -> dict[str, bytes]:
    """Six shapes of JSON nested ``DEPTH`` levels deep: bare, and inside documents whose first bytes say structure."""
    lists = "[" * DEPTH + "]" * DEPTH
    objects = '{"a":' * DEPTH + "1" + "}" * DEPTH
    mixed = '[{"a":' * (DEPTH // 2) + "1" + "}]" * (DEPTH // 2)
    pmg = ('{"@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0, "lattice": {"matrix": '
           '[[4, 0, 0], [0, 4, 0], [0, 0, 4]]}, "properties": ' + lists + ', "sites": []}')
    mlip = '[{"structure": ' + objects + ', "outputs": {"energy": 1.0}}]'
    return {"deep_list.json": lists.encode(), "deep_object.json": objects.encode(), "deep_mixed.json": mixed.encode(),
            "deep_pmg.json": pmg.encode(), "deep_mlip.json": mlip.encode(), "deep_list.json.gz": gzip.compress(lists.encode())}


def test_deep_json_is_quarantined_and_the_valid_files_of_its_folder_are_stored(db, tmp_path):
    folder = _valid_folder(tmp_path)
    shapes = _deep_shapes()
    assert all(len(gzip.decompress(b) if n.endswith(".gz") else b) < 8192 for n, b in shapes.items())  # small files
    for name, data in shapes.items():
        (folder / name).write_bytes(data)
    report = db.ingest(folder)  # was: RecursionError out of format detection, nothing stored
    assert report.inserted == len(VALID) and _balanced(report)
    rows = _quarantine(db)
    assert set(rows) == set(shapes) and report.quarantined == len(shapes)
    for name, row in rows.items():
        assert row.reason == "parse_error" and "RecursionError" in row.message and name in row.message, (name, row.message)
    again = db.ingest(folder)
    assert again.inserted == 0 and _balanced(again) and len(_quarantine(db)) == len(shapes)


def test_deep_json_named_alone_is_quarantined(db, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * DEPTH + "]" * DEPTH)
    report = db.ingest(path)
    assert (report.read, report.quarantined_by_reason) == (1, {"parse_error": 1})


def test_a_file_that_yields_no_record_is_quarantined(db, tmp_path):
    folder = _valid_folder(tmp_path)
    (folder / "cut.cif").write_text("data_cut\n_chemical_name_mineral 'periclase'\n_chemical_formula_sum 'Mg O'\n")
    (folder / "empty.xyz").write_text("")
    (folder / "blank.extxyz").write_text("  \n\n")
    (folder / "empty.json").write_text("")
    (folder / "blank.csv").write_text("\n")
    report = db.ingest(folder)  # was: exit 0, 0 records read from any of them, no row anywhere
    rows = _quarantine(db)
    assert {name: row.reason for name, row in rows.items()} == {
        "cut.cif": "missing_cell", "empty.xyz": "truncated_file", "blank.extxyz": "truncated_file",
        "empty.json": "parse_error", "blank.csv": "truncated_file"}
    assert "no structure" in rows["cut.cif"].message and rows["cut.cif"].raw_text.startswith("data_cut")
    assert "empty" in rows["empty.xyz"].message
    assert report.inserted == len(VALID) and report.quarantined == 5 and _balanced(report)


def test_skipped_paths_are_counted_and_named(db, tmp_path, monkeypatch):
    from xtalbase.cli import app
    from xtalbase.ingest import discovery

    folder = _valid_folder(tmp_path)
    (folder / "a.cif").symlink_to(folder / "b.cif")  # a loop of links
    (folder / "b.cif").symlink_to(folder / "a.cif")
    os.mkfifo(folder / "pipe.cif")  # opened, it would block the walk for ever
    (folder / "zero.cif").symlink_to("/dev/zero")  # opened, it would never end
    locked = folder / "locked"
    locked.mkdir()
    shutil.copy(CIF / "1000017.cif", locked / "1000017.cif")
    scandir = os.scandir

    def no_permission(path):  # the tests run as root, whom chmod does not stop
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(discovery.os, "scandir", no_permission)
    report = db.ingest(folder)
    assert report.inserted == len(VALID) and report.quarantined == 0 and _balanced(report)
    assert report.skipped == 5
    why = {os.path.basename(e["path"]): e["why"] for e in report.skipped_examples}
    assert why == {"a.cif": "a loop of symbolic links", "b.cif": "a loop of symbolic links",
                   "pipe.cif": "a FIFO, not a regular file: not opened",
                   "zero.cif": "a character device, not a regular file: not opened",
                   "locked": "folder not readable (no permission)"}
    summary = report.to_dict()
    assert summary["skipped"]["count"] == 5 and len(summary["skipped"]["examples"]) == 5

    result = CliRunner().invoke(app, ["ingest", str(folder), "--db", db.url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"]["count"] == 5
    result = CliRunner().invoke(app, ["ingest", str(folder), "--db", db.url], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and "skipped 5 path(s) not read" in result.output
    assert "pipe.cif (a FIFO" in result.output and "a loop of symbolic links" in result.output


def test_a_named_special_file_is_skipped_not_opened(db, tmp_path):
    os.mkfifo(tmp_path / "pipe.cif")
    report = db.ingest([tmp_path / "pipe.cif", CIF / "CaO.cif"])
    assert (report.read, report.inserted, report.skipped) == (1, 1, 1)
    assert report.skipped_examples == [{"path": str(tmp_path / "pipe.cif"), "why": "a FIFO, not a regular file: not opened"}]


def test_a_link_to_a_file_outside_the_given_tree_is_refused_unread(db, tmp_path):
    folder = _valid_folder(tmp_path)
    (folder / "os.cif").symlink_to("/etc/os-release")
    report = db.ingest(folder)  # was: a parse_error whose raw_text held the file's text
    assert report.inserted == len(VALID) and report.quarantined_by_reason == {"unsafe_path": 1} and _balanced(report)
    row = _quarantine(db)["os.cif"]
    assert row.raw_text is None and row.raw_hash is None
    assert str(folder / "os.cif") in row.message and os.path.realpath("/etc/os-release") in row.message
    assert db.ingest(folder).inserted == 0 and len(_quarantine(db)) == 1  # refused again, not stored twice


def test_links_inside_the_tree_and_named_links_are_read(db, tmp_path):
    folder = _valid_folder(tmp_path)
    (folder / "copy.cif").symlink_to(folder / "CaO.cif")  # same file by two names: read once
    (folder / "sub").mkdir()
    (folder / "sub" / "up.cif").symlink_to(folder / "CaTiO3.cif")
    named = tmp_path / "named.cif"
    named.symlink_to(CIF / "1000017.cif")  # a link the user names is what the user asked for
    report = db.ingest([folder, named])
    assert (report.inserted, report.quarantined, report.skipped) == (3, 0, 0)


@pytest.mark.parametrize("error, reason", [(RecursionError("maximum recursion depth exceeded"), "parse_error"),
                                           (OverflowError("int too large to convert to float"), "parse_error"),
                                           (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "parse_error"),
                                           (MemoryError("cannot allocate"), "memory_limit")])
def test_any_exception_in_one_file_is_quarantined_with_its_class(db, tmp_path, monkeypatch, error, reason):
    from xtalbase.ingest import pipeline

    folder = _valid_folder(tmp_path)
    shutil.copy(CIF / "1000017.cif", folder / "bad.cif")
    prepare = pipeline.prepare_unit

    def failing(unit, options):
        if unit.path.endswith("bad.cif"):
            raise error
        return prepare(unit, options)

    monkeypatch.setattr(pipeline, "prepare_unit", failing)
    report = db.ingest(folder)
    assert report.inserted == len(VALID) and report.quarantined_by_reason == {reason: 1} and _balanced(report)
    assert type(error).__name__ in _quarantine(db)["bad.cif"].message


def test_an_interrupt_in_a_file_still_stops_the_run(db, tmp_path, monkeypatch):
    from xtalbase.ingest import pipeline
    from xtalbase.schema import Run

    folder = _valid_folder(tmp_path)

    def interrupted(unit, options):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "prepare_unit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        db.ingest(folder)
    with db.session() as s:
        assert [r.status for r in s.scalars(select(Run))] == ["failed"]


def test_unreadable_properties_beside_a_cif_do_not_stop_the_batch(db, tmp_path):
    folder = tmp_path / "mp"
    folder.mkdir()
    shutil.copy(CIF / "CaO.cif", folder / "mp-2605.cif")
    (folder / "properties.csv").write_bytes(b"material_id,band_gap\nmp-2605,3.6 \xe9V\n")  # Latin-1, not UTF-8
    report = db.ingest(folder)  # was: UnicodeDecodeError out of the writer's transaction, the run failed
    assert report.inserted == 1
    with db.session() as s:
        assert s.scalar(select(Source.file_path)).endswith("mp-2605.cif")
        assert s.scalars(select(SourceProperty.name)).all() == []  # the unreadable file gives none, and no error


def test_read_is_inserted_plus_duplicates_plus_quarantined_on_a_mixed_folder(db, tmp_path):
    folder = _valid_folder(tmp_path)
    shutil.copy(CIF / "CaO.cif", folder / "CaO_copy.cif")  # the same structure again: a duplicate
    shutil.copy(CIF / "multiblock_Ti_TiO.cif", folder / "multi.cif")
    (folder / "deep.json").write_text("[" * DEPTH + "]" * DEPTH)
    (folder / "cut.cif").write_text("data_cut\n")
    (folder / "empty.xyz").write_text("")
    (folder / "os.cif").symlink_to("/etc/os-release")
    (folder / "garbage.cif").write_bytes(b"data_x\n_cell_length_a \xff\xfe\x00\n")
    os.mkfifo(folder / "pipe.cif")
    first = db.ingest(folder, workers=2, batch_size=3)  # through worker processes, batches cut across files
    assert _balanced(first) and first.inserted > 0 and first.duplicates >= 1 and first.quarantined >= 5
    assert first.skipped == 1
    second = db.ingest(folder, batch_size=3)
    assert _balanced(second) and second.inserted == 0 and second.quarantined == first.quarantined
    assert second.duplicates == first.inserted + first.duplicates


def test_a_nul_byte_in_a_quarantined_record_does_not_fail_the_batch(db, tmp_path):
    folder = _valid_folder(tmp_path)
    (folder / "nul.cif").write_bytes(b"data_nul\n_cell_length_a 4.2\x00\n")
    report = db.ingest(folder)  # was, on PostgreSQL: DataError out of the batch's transaction, nothing stored
    assert report.inserted == len(VALID) and report.quarantined == 1 and _balanced(report)
    assert "\ufffd" in _quarantine(db)["nul.cif"].raw_text  # kept readable, as undecodable bytes are
