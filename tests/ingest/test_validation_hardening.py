"""Validation before expensive work (issue 25): each hand-made hostile file ends with its own reason, fast.

Every case here reproduces a defect of the fuzz campaign: before these checks the file hung the
neighbour search, took gigabytes, or was stored with wrong values.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from xtalbase.ingest.formats import read_structures
from xtalbase.ingest.prepare import PrepareOptions, WorkUnit, prepare_unit
from xtalbase.ingest.records import Record
from xtalbase.ingest.validate import ValidationOptions, check

CIF_P1 = """data_test
_symmetry_space_group_name_H-M 'P 1'
_cell_length_a {a}
_cell_length_b {b}
_cell_length_c {c}
_cell_angle_alpha 90.00
_cell_angle_beta 90.00
_cell_angle_gamma {gamma}
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0.0000 0.0000 0.0000 1
Cl1 Cl 0.5000 0.5000 0.5000 1
"""

CIF_OPS = """data_ops
_cell_length_a 5.6400
_cell_length_b 5.6400
_cell_length_c 5.6400
_cell_angle_alpha 90.00
_cell_angle_beta 90.00
_cell_angle_gamma 90.00
loop_
_symmetry_equiv_pos_as_xyz
{ops}
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
{sites}
"""


def _prepared(path: Path, fmt: str | None = None, options: PrepareOptions | None = None) -> list[dict]:
    """What a worker makes of ``path``: record, quarantine and known items."""
    from xtalbase.ingest.formats import detect_format

    return prepare_unit(WorkUnit(str(path), fmt or detect_format(path)), options or PrepareOptions())


def _reasons(items: list[dict]) -> list[str]:
    return [item.get("reason", item["kind"]) for item in items]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("case", "cell", "reason"), [
    ("sliver γ = 179.9999°", dict(a="5.6400", b="5.6400", c="5.6400", gamma="179.9999"), "bad_cell"),
    ("a = 1e-7 Å", dict(a="0.0000001", b="5.6400", c="5.6400", gamma="90.00"), "bad_cell"),
    ("10⁶ Å cell", dict(a="1000000.00", b="1000000.00", c="1000000.00", gamma="90.00"), "bad_cell"),
])
def test_cif_with_an_impossible_cell_is_refused_before_the_neighbour_search(tmp_path, case, cell, reason):
    path = _write(tmp_path, "cell.cif", CIF_P1.format(**cell))
    start = time.perf_counter()
    items = _prepared(path)
    assert _reasons(items) == [reason], items
    assert time.perf_counter() - start < 5  # the sliver took 155 s at 179.999° and hung at 179.9999°
    assert "cell" in items[0]["message"] and str(path) in items[0]["message"]


def test_cif_symmetry_that_expands_past_the_site_cap_is_refused_unexpanded(tmp_path):
    from xtalbase.ingest.cif_settings import setting_operations

    ops = "\n".join(f"'{op}'" for op in setting_operations(523))  # F m -3 m: 192 operations
    sites = "\n".join(f"Na{i} Na {0.1 + i * 0.00031:.5f} 0.1234 0.2345" for i in range(3000))
    path = _write(tmp_path, "huge.cif", CIF_OPS.format(ops=ops, sites=sites))
    start = time.perf_counter()
    items = _prepared(path)
    assert time.perf_counter() - start < 10  # 576,000 sites were expanded before the cap applied
    assert _reasons(items) == ["too_many_sites"]
    assert "3000 distinct atom positions x 192 symmetry operations" in items[0]["message"]


def test_cif_symmetry_operation_with_a_non_finite_translation_is_a_parse_error(tmp_path):
    ops = "'x, y, z'\n'-x+1/inf, -y, -z'"
    path = _write(tmp_path, "inf_op.cif", CIF_OPS.format(ops=ops, sites="Na1 Na 0.1000 0.2000 0.3000"))
    items = _prepared(path)
    assert _reasons(items) == ["parse_error"]  # was stored with an extra atom
    assert "'-x+1/inf, -y, -z'" in items[0]["message"]


@pytest.mark.parametrize("op", ["x,y,z", "-x+1/2,y,-z+1/2", "1/2+x, 1/2-y, z", "x-y,x,z+1/6", "X,Y,Z", "x+0.5,-y,z",
                                "-x,-y,-z,+1", "2x-y, x, z"])
def test_ordinary_symmetry_operations_pass(op):
    from xtalbase.ingest.readers.cif_limits import operation_problem

    assert operation_problem(op) is None


@pytest.mark.parametrize("op", ["-x+1/inf,y,z", "x+1/0,y,z", "x,y", "x,y,1/2", "x,y,z+nan", "x*y,y,z", "a,b,c"])
def test_broken_symmetry_operations_are_named(op):
    from xtalbase.ingest.readers.cif_limits import operation_problem

    assert op in operation_problem(op)


def _record(cell, frac, species=("Si", "Si"), **kwargs) -> Record:
    return Record("index=0", np.asarray(cell, dtype=float), [{s: 1.0} for s in species], np.asarray(frac, dtype=float),
                  **kwargs)


def test_a_lattice_of_1e308_is_non_finite_not_stored_with_an_infinite_volume():
    record = _record(np.eye(3) * 1e308, [[0, 0, 0], [0.5, 0.5, 0.5]])
    reason, message = check(record, ValidationOptions())
    assert reason == "non_finite" and "volume" in message


def test_pmg_json_lattice_of_1e308_is_quarantined(tmp_path):
    from pymatgen.core import Lattice, Structure

    doc = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]).as_dict()
    doc["lattice"]["matrix"] = [[1e308, 0, 0], [0, 1e308, 0], [0, 0, 1e308]]
    path = _write(tmp_path, "big.json", json.dumps(doc))
    assert _reasons(_prepared(path, "pmg_json")) == ["non_finite"]


def test_mp_document_property_infinity_is_kept_as_text(tmp_path):
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict()
    path = tmp_path / "mp.json"
    path.write_text('{"material_id": "mp-22862", "band_gap": Infinity, "e_form": -2.1, "structure": '
                    + json.dumps(structure) + "}")
    [item] = _prepared(path, "pmg_json")
    assert item["kind"] == "record"
    assert item["properties"] == {"band_gap": "Infinity", "e_form": -2.1}  # was the float inf


def test_site_far_outside_the_cell_is_bad_cell_and_near_ones_are_wrapped():
    cell = np.eye(3) * 5.43
    far = _record(cell, [[0, 0, 0], [0.25, 0.25, 1e8]])  # an extxyz position 5e8 Å away hung the search
    start = time.perf_counter()
    reason, message = check(far, ValidationOptions())
    assert reason == "bad_cell" and "site 1" in message and time.perf_counter() - start < 1
    assert check(_record(cell, [[0, 0, 0], [3.25, -2.75, 5.25]]), ValidationOptions()) is None  # unwrapped MD


def test_overlap_in_a_large_cell_is_found_without_the_grid_memory():
    # pymatgen's grid for a 900 Å cell asked for 27 GB; the k-d tree finds the same pair
    cell = np.eye(3) * 900.0
    close = _record(cell, [[0, 0, 0], [0.9995 + 1e-4, 0, 0]])
    reason, message = check(close, ValidationOptions())
    assert reason == "overlapping_atoms" and "sites 0 (Si) and 1 (Si)" in message
    assert check(_record(cell, [[0, 0, 0], [0.5, 0.5, 0.5]]), ValidationOptions()) is None


def test_cell_bounds_are_options():
    from xtalbase.ingest.options import IngestOptions

    record = _record(np.eye(3) * 5.43, [[0, 0, 0], [0.25, 0.25, 0.25]])
    assert check(record, IngestOptions().validation()) is None
    reason, message = check(record, IngestOptions(max_cell_length=5.0).validation())
    assert reason == "bad_cell" and "--max-cell-length" in message
    with pytest.raises(Exception, match="cell bounds"):
        IngestOptions(min_cell_length=10.0, max_cell_length=5.0)
    assert math.isclose(IngestOptions().validation().min_cell_shape, 1e-3)


def test_gzip_bomb_stops_at_the_decompression_cap(tmp_path):
    from xtalbase.ingest.formats import decompression_cap

    path = tmp_path / "bomb.cif.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"data_bomb\n")
        for _ in range(48):
            fh.write(b"#" * (1 << 20) + b"\n")
    with decompression_cap(16 << 20):
        [error] = list(read_structures(path))
    assert error.reason == "too_large" and "16 MiB" in error.message
    items = _prepared(path, "cif", PrepareOptions(max_decompressed_bytes=16 << 20))
    assert _reasons(items) == ["too_large"]


SIC = Path(__file__).parent.parent / "data" / "ingest" / "extxyz" / "sic_dft.xyz"


def _sic_frame(k: int = 0) -> list[str]:
    """The lines of real SiC frame ``k`` (24 atoms, energy and forces)."""
    lines = SIC.read_text().splitlines(keepends=True)
    start = 0
    for _ in range(k):
        start += int(lines[start]) + 2
    return lines[start:start + int(lines[start]) + 2]


def test_extxyz_frame_whose_count_line_disagrees_with_its_atoms_is_quarantined_not_re_cut(tmp_path):
    first, second = _sic_frame(0), _sic_frame(1)
    assert first[0].strip() == "24"
    path = _write(tmp_path, "md.xyz", "23\n" + "".join(first[1:]) + "".join(second))
    items = _prepared(path, "extxyz")
    # was: frame 0 stored with 23 atoms and the 24-atom energy, and every later frame lost
    assert _reasons(items) == ["parse_error", "record"]
    assert "says 23 atoms but 24 atom lines follow" in items[0]["message"]
    assert items[1]["locator"] == "frame=1" and items[1]["structure"]["nsites"] == 24


def test_extxyz_frame_counting_more_atoms_than_it_holds_is_quarantined(tmp_path):
    first, second = _sic_frame(0), _sic_frame(1)
    path = _write(tmp_path, "md.xyz", "25\n" + "".join(first[1:]) + "".join(second))
    items = _prepared(path, "extxyz")
    assert items[0]["reason"] == "parse_error" and "says 25 atoms" in items[0]["message"]
    assert not any(item["kind"] == "record" and item["structure"]["nsites"] != 24 for item in items)


def test_extxyz_lower_case_species_is_not_read_as_another_element(tmp_path):
    frame = _sic_frame(0)
    k = next(n for n, line in enumerate(frame) if line.startswith("Si "))
    frame[k] = "i " + frame[k][3:]  # 'Si' with its 'S' deleted: ASE read iodine
    items = _prepared(_write(tmp_path, "md.xyz", "".join(frame)), "extxyz")
    assert _reasons(items) == ["unknown_element"] and "'i'" in items[0]["message"]


def test_extxyz_atom_half_a_billion_angstrom_away_is_bad_cell(tmp_path):
    frame = _sic_frame(0)
    k = next(n for n, line in enumerate(frame) if line.startswith("Si "))
    parts = frame[k].split()
    parts[1] = "500000000.0"  # a lost decimal point: this hung pymatgen's neighbour search
    frame[k] = " ".join(parts) + "\n"
    start = time.perf_counter()
    items = _prepared(_write(tmp_path, "md.xyz", "".join(frame)), "extxyz")
    assert _reasons(items) == ["bad_cell"] and time.perf_counter() - start < 5


OUTCAR = Path(__file__).parent.parent / "data" / "ingest" / "vasp" / "io" / "OUTCAR.gz"


@pytest.mark.parametrize(("old", "new", "words"), [
    ("ions per type =               2", "ions per type =               1000000000",
     "'ions per type' sums to 1000000000 atoms but NIONS = 2"),
    ("NIONS =      2", "NIONS = 1000000000", "'ions per type' sums to 2 atoms but NIONS = 1000000000"),
])
def test_outcar_atom_counts_are_checked_against_the_file_before_allocating(tmp_path, old, new, words):
    text = gzip.decompress(OUTCAR.read_bytes()).decode()
    assert old in text
    path = _write(tmp_path, "OUTCAR", text.replace(old, new, 1))
    start = time.perf_counter()
    items = _prepared(path, "outcar")
    assert _reasons(items) == ["parse_error"] and words in items[0]["message"]  # took 4 GB in 3 s
    assert time.perf_counter() - start < 5


def test_poscar_lattice_vector_with_a_lost_decimal_point_is_bad_cell(tmp_path):
    lines = (Path(__file__).parent.parent / "data" / "ingest" / "poscar" / "POSCAR-195").read_text().splitlines()
    lines[2] = " 1034999512.98926707 0.0 0.0"  # 10.3499951298926707 with its point lost: the neighbour search took GBs
    items = _prepared(_write(tmp_path, "POSCAR", "\n".join(lines) + "\n"), "poscar",
                      PrepareOptions(poscar_species="Na,Co,O,H"))
    assert _reasons(items) == ["bad_cell"] and "a=1.035e+09 Å above 1000 Å" in items[0]["message"]


def test_mlip_json_lattice_of_1e308_is_quarantined_not_stored_with_infinite_volume(tmp_path):
    entries = json.loads((Path(__file__).parent.parent / "data" / "ingest" / "mlip" / "snap_Mo_AIMD_first2.json").read_text())
    entries[0]["structure"]["lattice"]["matrix"] = [[1e308, 0, 0], [0, 1e308, 0], [0, 0, 1e308]]
    items = _prepared(_write(tmp_path, "mlip.json", json.dumps(entries)), "mlip_json")
    assert _reasons(items) == ["non_finite", "record"] and "volume" in items[0]["message"]
