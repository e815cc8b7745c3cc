"""The reader registry: each format's module declares its Reader, and adding a format is one module + one line."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from tests.ingest.helpers import CIF
from xtalbase.ingest import formats
from xtalbase.ingest.formats import FORMATS, YIELDS, Reader, detect_format, read_structures
from xtalbase.ingest.records import Record


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_registered_module_declares_its_reader(name):
    reader = FORMATS[name]
    assert isinstance(reader, Reader) and reader.name == name
    assert "structures" in reader.yields and set(reader.yields) <= set(YIELDS)
    assert (reader.split is None) == (reader.locator_of is None)
    assert reader.globs and reader.description


def test_capabilities_are_declared_not_special_cased():
    assert [n for n in FORMATS if FORMATS[n].always_split] == ["cdvae_csv"]
    assert {n for n in FORMATS if FORMATS[n].split is not None} == {"cif", "extxyz", "cdvae_csv", "mlip_json"}
    assert {n for n in FORMATS if "calculations" in FORMATS[n].yields} == {"vasprun", "outcar", "extxyz", "mlip_json"}


def test_a_reader_declares_consistent_capabilities():
    with pytest.raises(ValueError, match="yields must be some of"):
        Reader("x", lambda path: iter(()), ("*.x",), lambda head: False, "x", yields=frozenset({"energies"}))
    with pytest.raises(ValueError, match="split and locator_of come together"):
        Reader("x", lambda path: iter(()), ("*.x",), lambda head: False, "x", split=lambda path: [])


def test_a_new_format_is_one_module_and_one_registry_line(db, monkeypatch, tmp_path):
    module = types.ModuleType("xtalbase.ingest.readers.toy")

    def read(path, **_):
        a = float(path.read_text().split()[1])
        yield Record(locator="index=0", cell=np.eye(3) * a, species=[{"Na": 1.0}], frac_coords=np.zeros((1, 3)))

    module.READER = Reader("toy", read, ("*.toy",), lambda head: head.startswith("TOY "), "a one-atom cubic cell")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(formats.READERS, "toy", "toy")  # the one registry line
    formats._load.cache_clear()
    formats._name_pattern.cache_clear()
    try:
        (tmp_path / "cell.toy").write_text("TOY 4.2\n")
        (tmp_path / "cell.dat").write_text("TOY 4.2\n")
        assert "toy" in FORMATS and detect_format(tmp_path / "cell.toy") == "toy"
        assert detect_format(tmp_path / "cell.dat") == "toy"  # by content
        (record,) = read_structures(tmp_path / "cell.toy")
        assert record.cell[0, 0] == 4.2
        assert detect_format(CIF / "CaO.cif") == "cif"
        report = db.ingest(tmp_path / "cell.toy")
        assert (report.inserted, report.quarantined) == (1, 0)
    finally:
        formats._load.cache_clear()
        formats._name_pattern.cache_clear()
