"""Large multi-record files (an ICSD export as one CIF, an MLIP JSON list) are split into shares for the workers,
and store exactly what reading them whole stores."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sqlalchemy import select

import xtalbase
from tests.ingest.helpers import BAD, CIF, DATA, count
from xtalbase.ingest import pipeline
from xtalbase.schema import Calculation, Quarantine, Source, Structure


def _export(tmp_path: Path) -> Path:
    """One CIF of the real fixture blocks, as an export holds them: a block entered twice (same name), a bad
    block, a two-block file, and an IUCr data_global block with no structure."""
    parts = [(CIF / name).read_text() for name in sorted(p.name for p in CIF.glob("*.cif"))]
    parts.insert(3, "data_global\n_journal_name_full 'Acta Cryst.'\n_publ_section_title 'A title'\n")
    parts.append((CIF / "1000017.cif").read_text())  # the same block name again: block=...#2, a duplicate
    parts.append((BAD / "missing_coordinates.cif").read_text())
    path = tmp_path / "export.cif"
    path.write_text("\n".join(parts))
    return path


def _stored(db) -> tuple[set, set, int]:
    """``(sources, quarantine rows, structures)`` with locators, hashes and reasons (no ids or run numbers)."""
    with db.session() as s:
        sources = {(row.record_locator, row.exact_hash, row.canonical_hash, row.database, row.external_id)
                   for row in s.execute(select(Source.record_locator, Structure.exact_hash, Structure.canonical_hash,
                                               Source.database, Source.external_id).join(Structure))}
        quarantined = {(q.record_locator, q.reason) for q in s.scalars(select(Quarantine))}
    return sources, quarantined, count(db, Structure)


def _whole(tmp_path: Path, path: Path, fmt: str) -> tuple[set, set, int]:
    """What ingesting ``path`` as one work unit stores (the default for files under SPLIT_BYTES)."""
    other = xtalbase.connect(f"sqlite:///{tmp_path / 'whole.db'}")
    other.init()
    assert pipeline._record_shares(path, fmt) is None  # under SPLIT_BYTES
    other.ingest(path)
    out = _stored(other)
    other.close()
    return out


def test_a_large_multi_block_cif_is_split_into_shares_and_stores_what_reading_it_whole_stores(db, tmp_path, monkeypatch):
    path = _export(tmp_path)
    whole = _whole(tmp_path, path, "cif")
    monkeypatch.setattr(pipeline, "SPLIT_BYTES", 1)
    monkeypatch.setattr(pipeline, "RECORDS_PER_TASK", 3)
    shares, n_shares = pipeline._record_shares(path, "cif")
    shares = list(shares)
    locators = [loc for share in shares for loc, _ in share]
    assert [len(s) for s in shares] == [3, 3, 3, 3, 1] and n_shares == 5  # 13 structure blocks; data_global left out
    assert locators[-2:] == ["block=1000017#2", "block=missing_coordinates"] and "block=global" not in locators

    report = db.ingest(path, workers=2)
    assert (report.read, report.quarantined_by_reason) == (13, {"missing_coordinates": 1, "partial_occupancy": 1})
    assert report.duplicates >= 1 and report.inserted == whole[2]
    assert _stored(db) == whole
    again = db.ingest(path, workers=2)  # every share skips what the first run stored
    assert again.inserted == 0 and count(db, Source) == 11 and count(db, Quarantine) == 2


def test_a_large_mlip_json_list_is_split_into_shares(db, tmp_path, monkeypatch):
    path = DATA / "mlip" / "mlearn_Mo_test_first3.json"
    whole = _whole(tmp_path, path, "mlip_json")
    monkeypatch.setattr(pipeline, "SPLIT_BYTES", 1)
    monkeypatch.setattr(pipeline, "RECORDS_PER_TASK", 1)
    assert [[i for i, _ in share] for share in pipeline._record_shares(path, "mlip_json")[0]] == [[0], [1], [2]]
    report = db.ingest(path, workers=2)
    assert (report.read, report.inserted) == (3, 3)
    assert _stored(db) == whole and count(db, Calculation) == 3


@pytest.mark.parametrize("content, reason, words", [
    (b"not gzip at all" * 100, "parse_error", "not readable as gzip"),
    (gzip.compress((CIF / "CaO.cif").read_bytes())[:-40], "truncated_file", "file ends early"),
])
def test_a_large_file_that_cannot_be_split_is_read_whole_and_quarantined_with_its_reason(db, tmp_path, monkeypatch,
                                                                                         content, reason, words):
    path = tmp_path / "export.cif.gz"
    path.write_bytes(content)
    monkeypatch.setattr(pipeline, "SPLIT_BYTES", 1)
    assert pipeline._record_shares(path, "cif") is None
    report = db.ingest(path, workers=2)
    assert report.quarantined_by_reason == {reason: 1}
    with db.session() as s:
        (row,) = s.scalars(select(Quarantine)).all()
    assert words in row.message


SIC = DATA / "extxyz" / "sic_dft.xyz"


def _sic_frames() -> list[str]:
    lines = SIC.read_text().splitlines(keepends=True)
    out, i = [], 0
    while i < len(lines):
        n = int(lines[i])
        out.append("".join(lines[i:i + n + 2]))
        i += n + 2
    return out


def _trajectory(tmp_path: Path, ending: str) -> Path:
    """The 8 real SiC frames, a blank line between two of them, a frame with an unknown species, then ``ending``:
    a frame cut short, a line where a frame's atom count should be (the rest is unreadable), or a gzip copy of the
    file with its last third cut off."""
    frames = _sic_frames()
    text = "".join(frames[:3]) + "\n" + frames[3] + frames[4].replace("\nSi ", "\nXx ", 1) + "".join(frames[5:])
    if ending == "cut short":
        text += frames[0][:-200]
    elif ending == "no atom count":
        text += "Lattice follows\n" + frames[1]
    else:
        text += "".join(frames)
    path = tmp_path / ("md.xyz.gz" if ending == "gzip cut off" else "md.xyz")
    if ending == "gzip cut off":
        packed = gzip.compress(text.encode())
        path.write_bytes(packed[:len(packed) * 2 // 3])
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("ending, reasons", [
    ("cut short", {"truncated_file": 1, "unknown_element": 1}),
    ("no atom count", {"parse_error": 1, "unknown_element": 1}),
    ("gzip cut off", {"truncated_file": 1, "unknown_element": 1}),
])
def test_a_large_extended_xyz_file_is_streamed_in_shares_and_stores_what_reading_it_whole_stores(
        db, tmp_path, monkeypatch, ending, reasons):
    path = _trajectory(tmp_path, ending)
    whole = _whole(tmp_path, path, "extxyz")
    monkeypatch.setattr(pipeline, "SPLIT_BYTES", 1)
    monkeypatch.setattr(pipeline, "RECORDS_PER_TASK", 3)
    shares, n_shares = pipeline._record_shares(path, "extxyz")
    assert n_shares is None and len(list(shares)) >= 3  # streamed: the main process never counts the frames first

    report = db.ingest(path, workers=2)
    assert report.quarantined_by_reason == reasons
    assert _stored(db) == whole and report.inserted == whole[2]
    assert count(db, Calculation) == report.read - report.quarantined
    again = db.ingest(path, workers=2)
    assert again.inserted == 0 and again.quarantined_by_reason == reasons


def test_each_share_is_told_only_which_of_its_own_records_are_stored(db, tmp_path, monkeypatch):
    path = _export(tmp_path)
    monkeypatch.setattr(pipeline, "SPLIT_BYTES", 1)
    monkeypatch.setattr(pipeline, "RECORDS_PER_TASK", 3)
    db.ingest(path)
    with db.session() as s:
        stored = set(s.scalars(select(Source.record_locator)))
    units = [unit for _, task_units, _ in pipeline._tasks(db, [(path, "cif")], None, None, {}) for unit in task_units]
    assert len(units) == 5
    for unit in units:
        assert unit.skip == {loc for loc, _ in unit.rows} & stored
    assert set().union(*(unit.skip for unit in units)) == stored and len(stored) == 11


def test_progress_advances_share_by_share_through_one_large_file(db, tmp_path, monkeypatch):
    path = _export(tmp_path)
    monkeypatch.setattr(pipeline, "SPLIT_BYTES", 1)
    monkeypatch.setattr(pipeline, "RECORDS_PER_TASK", 3)
    calls: list[tuple[float, int]] = []
    db.ingest(path, workers=2, on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(pytest.approx(k / 5), 1) for k in range(1, 6)] and calls[-1] == (1, 1)


def test_a_wrong_atom_count_never_pulls_the_rest_of_the_file_into_memory(tmp_path, monkeypatch):
    from xtalbase.ingest.readers import extxyz

    monkeypatch.setattr(extxyz, "FRAME_CHARS", 8000)  # the SiC frames hold 1,400-4,700 characters
    frames = _sic_frames()
    path = tmp_path / "md.xyz"
    path.write_text("".join(frames[:2]) + "1000000000000000\n" + "".join(frames * 20))
    got = list(extxyz.frames(path))
    assert [(i, reason) for i, _, reason, _ in got] == [(0, ""), (1, ""), (2, "truncated_file")]
    assert len(got[2][1]) < 8000 + 200  # held up to FRAME_CHARS, then counted

    lines = frames[0].splitlines(keepends=True)
    path.write_text("".join(frames[:2]) + "96\n" + lines[1] + "".join(lines[2:]) * 4)  # whole, but too large to hold
    *_, (i, text, reason, message) = extxyz.frames(path)
    assert (i, reason) == (2, "too_many_sites") and "96 atoms" in message and len(text) <= 65536

    path.write_text("".join(frames[:2]) + "-24\n" + "".join(frames[2:]))
    *_, (i, text, reason, message) = extxyz.frames(path)
    assert (i, text, reason) == (2, None, "parse_error") and "found '-24'" in message


class OddError(Exception):
    """An exception pickle cannot rebuild (its ``__init__`` takes other arguments than its ``args``)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")


def test_a_read_failure_met_by_the_main_process_reaches_the_workers_as_its_quarantine_reason(db, tmp_path, monkeypatch):
    from xtalbase.ingest.readers import extxyz

    real = extxyz.frames

    def failing(path):
        for item in real(path):
            yield item
            if item[0] == 5:
                raise OddError(7, "disk went away")

    monkeypatch.setattr(extxyz, "frames", failing)
    path = tmp_path / "md.xyz"
    path.write_text("".join(_sic_frames()))
    whole = _whole(tmp_path, path, "extxyz")
    monkeypatch.setattr(pipeline, "SPLIT_BYTES", 1)
    monkeypatch.setattr(pipeline, "RECORDS_PER_TASK", 2)
    report = db.ingest(path, workers=2)
    assert (report.read, report.quarantined_by_reason) == (7, {"parse_error": 1})
    assert _stored(db) == whole and ("file", "parse_error") in whole[1]
    with db.session() as s:
        assert "extxyz reader failed: OddError: 7: disk went away" in s.scalars(select(Quarantine.message)).one()


@pytest.mark.parametrize("count", [1, 3, 7, 137, 1000])
def test_the_shares_of_a_file_add_up_to_exactly_one_file(count):
    whole = pipeline.WorkUnit("x.csv", "cdvae_csv")
    steps = [step for *_, step in pipeline._share_tasks(None, whole, iter([[]] * count), count)]
    assert len(steps) == count and sum(steps) == 1 and sum(steps * 181) == 181


def test_a_compressed_csv_cut_short_keeps_its_first_rows_and_quarantines_the_rest(db, tmp_path):
    text = (DATA / "perov5_head.csv").read_bytes()
    packed = gzip.compress(text)
    path = tmp_path / "perov5.csv.gz"
    path.write_bytes(packed[:len(packed) * 2 // 3])
    report = db.ingest(path, workers=2)
    assert report.quarantined_by_reason == {"truncated_file": 1} and report.inserted >= 1
    with db.session() as s:
        row = s.scalars(select(Quarantine)).one()
    assert row.record_locator == f"row={report.read - 1}" and "file ends early" in row.message
