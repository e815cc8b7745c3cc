"""Review fixes of the ingest walk and caps: a link to a file named elsewhere in the same run does not hide that
file whatever the order of the names, and ``max_decompressed_mb`` holds in the main process too (format
detection, CSV rows, large files split into shares) as it does in the workers."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
from sqlalchemy import select

from tests.conftest import TEST_DATA
from tests.ingest.helpers import CIF, DATA
from xtalbase.ingest.discovery import Walk, find_files
from xtalbase.schema import Quarantine, Source

PMG_SEED = TEST_DATA / "fuzz_seeds" / "mp-91.pmg.json"


def _balanced(report) -> bool:
    return report.read == report.inserted + report.duplicates + report.quarantined


def _linked_trees(tmp_path):
    """``A/link.cif -> B/x.cif`` beside a plain ``A/CaO.cif``."""
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    shutil.copy(CIF / "CaO.cif", a / "CaO.cif")
    shutil.copy(CIF / "CaTiO3.cif", b / "x.cif")
    (a / "link.cif").symlink_to(b / "x.cif")
    return a, b


@pytest.mark.parametrize("order", ["A,B", "B,A", "A,B/x.cif", "B/x.cif,A"])
def test_a_link_to_a_file_named_in_the_same_run_is_not_refused_and_does_not_hide_it(db, tmp_path, order):
    a, b = _linked_trees(tmp_path)
    named = {"A": a, "B": b, "B/x.cif": b / "x.cif"}
    paths = [named[name] for name in order.split(",")]
    walk = Walk()
    files = find_files(paths, walk=walk)
    assert walk.refused == {}  # the target is inside what was named: the link is a second name for it
    assert len(files) == 2  # CaO.cif, and x.cif once (by whichever name was met first)
    report = db.ingest(paths)  # was: [A, B] and [A, B/x.cif] quarantined the link and dropped x.cif as seen
    assert (report.inserted, report.quarantined, report.duplicates) == (2, 0, 0) and _balanced(report)
    with db.session() as s:
        assert s.scalars(select(Quarantine)).all() == []
        stored = s.scalars(select(Source.file_path)).all()
    assert sum(p in (str(b / "x.cif"), str(a / "link.cif")) for p in stored) == 1


def test_a_folder_linked_into_another_named_path_joins_the_tree_for_every_link_whatever_the_order(db, tmp_path):
    a, b = _linked_trees(tmp_path)
    elsewhere = tmp_path / "C"
    elsewhere.mkdir()
    (elsewhere / "via").symlink_to(b)  # C/via/x.cif reaches B/x.cif through a linked folder of another named path
    for paths in ([a, elsewhere], [elsewhere, a]):
        walk = Walk()
        files = find_files(paths, walk=walk)
        assert walk.refused == {} and len(files) == 2  # CaO.cif, and x.cif by one of its two names
    report = db.ingest([a, elsewhere])
    assert (report.inserted, report.quarantined) == (2, 0) and _balanced(report)


def test_a_link_outside_every_named_path_is_still_refused(db, tmp_path):
    a, _ = _linked_trees(tmp_path)
    for paths in ([a, CIF / "CaO.cif"], [CIF / "CaO.cif", a]):
        walk = Walk()
        files = find_files(paths, walk=walk)
        assert list(walk.refused) == [a / "link.cif"]
        assert sorted(p.name for p, _ in files) == ["CaO.cif", "CaO.cif", "link.cif"]  # two copies: two files
    report = db.ingest([a, CIF / "CaO.cif"])
    assert report.quarantined_by_reason == {"unsafe_path": 1} and _balanced(report)


def test_a_refused_link_met_twice_is_quarantined_once(tmp_path):
    a, b = _linked_trees(tmp_path)
    (a / "sub").mkdir()
    (a / "sub" / "out.cif").symlink_to(CIF / "1000017.cif")
    walk = Walk()
    files = find_files([a, a / "sub"], walk=walk)
    assert [p for p, _ in files].count(a / "sub" / "out.cif") == 1 and a / "sub" / "out.cif" in walk.refused


def _big_csv_gz(path, mib: float) -> int:
    """A gzipped perov5 CSV (its 20 rows repeated) that expands to about ``mib`` MiB; returns its data rows."""
    text = (DATA / "perov5_head.csv").read_text()
    head, body = text.split("\n", 1)
    lines, size, count = [head], len(head), 0
    while size < mib * 2**20:
        lines.append(body.rstrip("\n"))
        size += len(body)
        count += 20
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return count


def test_a_csv_past_the_decompression_cap_is_too_large_in_the_main_process_too(db, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rows = _big_csv_gz(folder / "perov5_big.csv.gz", 3)
    assert rows > 3000
    report = db.ingest(folder, max_decompressed_mb=1)  # was: split under the default 512 MiB cap, every row read
    assert report.quarantined_by_reason.get("too_large") == 1, report.quarantined_by_reason
    assert "missing_cell" not in report.quarantined_by_reason and _balanced(report)
    assert report.read < rows / 2  # the rows past the first MiB are not read
    with db.session() as s:
        (row,) = s.scalars(select(Quarantine).where(Quarantine.reason == "too_large")).all()
    assert "1 MiB" in row.message


def _pmg_padded(mib: float) -> bytes:
    """A pymatgen Structure JSON whose first bytes do not say so (a long key first): read whole to tell its format."""
    doc = json.loads(PMG_SEED.read_text())
    return json.dumps({"comment": "x" * int(mib * 2**20), **doc}).encode()


def test_a_json_gz_past_the_cap_while_its_format_is_told_is_quarantined_not_dropped(db, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "small.json.gz").write_bytes(gzip.compress(PMG_SEED.read_bytes()))
    (folder / "big.json.gz").write_bytes(gzip.compress(_pmg_padded(4)))
    walk = Walk()
    assert sorted(p.name for p, _ in find_files(folder, walk=walk)) == ["big.json.gz", "small.json.gz"]
    report = db.ingest(folder, max_decompressed_mb=1)  # was: big.json.gz neither read, skipped nor quarantined
    assert (report.inserted, report.quarantined_by_reason, report.skipped) == (1, {"too_large": 1}, 0)
    assert report.read == 2 and _balanced(report)
    with db.session() as s:
        (row,) = s.scalars(select(Quarantine)).all()
    assert row.file_path.endswith("big.json.gz") and "1 MiB" in row.message and "max-decompressed-mb" in row.message


def test_a_named_json_gz_past_the_cap_is_too_large(db, tmp_path):
    path = tmp_path / "big.json.gz"
    path.write_bytes(gzip.compress(_pmg_padded(2)))
    report = db.ingest(path, max_decompressed_mb=1)
    assert (report.read, report.quarantined_by_reason) == (1, {"too_large": 1})
    assert db.ingest(path).inserted == 1  # under the default cap the same file is read
