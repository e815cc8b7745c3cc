"""Repositories: one ASE conversion (info key, calculation choice, stress units), shared helpers, no SQL in the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, TEST_DATA
from xtalbase.errors import NotFound

SIC = TEST_DATA / "splits" / "sic_dft.xyz"  # 8 SiC DFT frames (flare test file), stress in eV/Å³


def _add_calculation(db, structure_id: int, *, energy: float, converged: bool | None, stress=None, stress_unit=None) -> int:
    from xtalbase.schema import Calculation
    from xtalbase.schema.arrays import F8, pack

    with db.session() as s:
        calc = Calculation(structure_id=structure_id, code="test", energy=energy, converged=converged,
                           stress=None if stress is None else pack(np.asarray(stress, dtype=float), F8), stress_unit=stress_unit)
        s.add(calc)
        s.commit()
        return calc.id


@pytest.fixture
def sic(db):
    """The 8 SiC frames ingested, one structure each, and a one-fold split of all of them."""
    assert db.ingest(SIC).inserted == 8
    db.splits.create("all", strategy="random", fractions=(1.0,))
    return db


def _by_id(atoms):
    return {a.info["structure_id"]: a for a in atoms}


def test_query_and_split_atoms_use_one_info_key_and_one_calculation_choice(sic):
    ids = sic.query().ids()
    first, second = ids[0], ids[1]
    # newer but unconverged: the stored (converged-unknown) calculation stays the chosen one
    _add_calculation(sic, first, energy=-1.0, converged=False)
    # newer and converged: this one is chosen
    newest = _add_calculation(sic, second, energy=-2.0, converged=True)

    from_query = _by_id(sic.query().atoms())
    from_split = _by_id(sic.splits.get("all").atoms())
    assert sorted(from_query) == sorted(from_split) == ids
    for sid in ids:
        q, s = from_query[sid], from_split[sid]
        assert q.info["xtalbase_id"] == s.info["xtalbase_id"] == sid  # the older key stays readable
        assert q.info["calculation_id"] == s.info["calculation_id"]
        assert q.get_potential_energy() == s.get_potential_energy()
    assert from_query[first].get_potential_energy() != -1.0
    assert from_query[second].info["calculation_id"] == newest and from_query[second].get_potential_energy() == -2.0


def test_every_calculation_unconverged_takes_the_newest():
    from types import SimpleNamespace as Row

    from xtalbase.platform.repositories.structures import choose_calculations

    rows = [Row(id=3, structure_id=1, converged=False), Row(id=1, structure_id=1, converged=False),
            Row(id=2, structure_id=2, converged=None), Row(id=5, structure_id=2, converged=False)]
    chosen = choose_calculations(rows)
    assert chosen[1].id == 3 and chosen[2].id == 2


@pytest.mark.parametrize("unit, factor_gpa", [("kBar", -0.1), ("kB", -0.1), ("GPa", 1.0), ("gpa", 1.0)])
def test_stress_table_converts_pressures_to_ase(unit, factor_gpa):
    from ase.units import GPa

    from xtalbase.platform.convert import stress_factor

    assert stress_factor(unit) == pytest.approx(factor_gpa * GPa)


@pytest.mark.parametrize("unit", ["eV/Å^3", "eV/Å³", "eV/A^3", "eV/Ang^3", "ev/a3"])
def test_stress_table_keeps_ev_per_cubic_angstrom(unit):
    from xtalbase.platform.convert import stress_factor

    assert stress_factor(unit) == 1.0


def test_gpa_and_unknown_stress_units_read_the_same_from_both_entry_points(sic):
    from ase.units import GPa

    ids = sic.query().ids()
    tensor = np.diag([1.0, 2.0, 3.0])
    _add_calculation(sic, ids[0], energy=-3.0, converged=True, stress=tensor, stress_unit="GPa")
    _add_calculation(sic, ids[1], energy=-4.0, converged=True, stress=tensor, stress_unit="atm")
    for atoms in (_by_id(sic.query().atoms()), _by_id(sic.splits.get("all").atoms())):
        assert np.allclose(atoms[ids[0]].get_stress(voigt=False), tensor * GPa)
        unknown = atoms[ids[1]]
        assert unknown.info["stress_unit"] == "atm" and unknown.info["stress_as_given"].split()[0] == "1.0"
        assert "stress" not in unknown.calc.results


def test_named_row_names_the_known_rows(sic):
    from xtalbase.ml.xrd_inputs import get_split
    from xtalbase.platform.repositories import named_row
    from xtalbase.schema import Dataset, Split

    with sic.session() as s:
        assert named_row(s, Split, "all", "split").name == get_split(s, "all").name == "all"
        with pytest.raises(NotFound, match="no split named 'none'; known splits: all"):
            get_split(s, "none")
        with pytest.raises(NotFound, match="no dataset named 'x'; none stored yet"):
            named_row(s, Dataset, "x", "dataset")


def test_chunks_bound_in_lists():
    from xtalbase.platform.repositories import IN_CHUNK, chunks

    values = list(range(2 * IN_CHUNK + 1))
    parts = list(chunks(values))
    assert [len(p) for p in parts] == [IN_CHUNK, IN_CHUNK, 1] and [v for p in parts for v in p] == values
    assert list(chunks([])) == []


def test_quarantine_reads_the_same_from_api_and_cli(db, tmp_path):
    import json

    from typer.testing import CliRunner

    from xtalbase.cli import app

    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 1\n")
    db.ingest(bad)
    frame = db.quarantine()
    assert len(frame) == 1
    shown = CliRunner().invoke(app, ["--db", db.url, "quarantine", "list", "--json"])
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.output)
    assert [r["id"] for r in listed] == list(frame["id"]) and listed[0]["reason"] == frame["reason"][0]
    one = CliRunner().invoke(app, ["--db", db.url, "quarantine", "show", str(listed[0]["id"]), "--json"])
    assert one.exit_code == 0 and json.loads(one.output)["file_path"] == frame["file_path"][0]
    missing = CliRunner().invoke(app, ["--db", db.url, "quarantine", "show", "999999"])
    assert missing.exit_code == 1 and isinstance(missing.exception, NotFound)
    assert "no quarantine row with id 999999" in str(missing.exception)


# --------------------------------------------------------------------------- no SQL in the CLI

COMMANDS = ROOT / "xtalbase" / "commands"
#: SQL builders a CLI module must not import: it calls a repository or ``Database`` instead.
SQL_BUILDERS = {"select", "text", "insert", "update", "delete", "func"}
#: Command modules whose SQL moves to a repository in a parallel change of issue 18 (runs and links):
#: remove the entry when that lands; the test fails on an entry that no longer builds SQL.
PENDING: set[str] = set()  # command modules still building SQL (none left)


def _sql_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [f"{path.name}:{node.lineno} from {node.module} import {a.name}" for a in node.names
                      if a.name in SQL_BUILDERS or a.name == "*"]
        elif isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
    return found


def test_cli_modules_build_no_sql():
    modules = sorted(COMMANDS.glob("*.py"))
    assert len(modules) > 5
    offending = [hit for m in modules if m.name not in PENDING for hit in _sql_imports(m)]
    assert not offending, "CLI modules must call repositories or Database, not build SQL:\n" + "\n".join(offending)
    stale = [name for name in PENDING if (COMMANDS / name).exists() and not _sql_imports(COMMANDS / name)]
    assert not stale, f"{stale} no longer build SQL: remove them from PENDING"


def test_sql_import_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sqlalchemy import func, select\n    import sqlalchemy as sa\n")
    assert _sql_imports(bad) == ["bad.py:2 from sqlalchemy import func", "bad.py:2 from sqlalchemy import select",
                                 "bad.py:3 import sqlalchemy"]
