"""The one XRD recipe lookup: id, name or hash prefix, and one default shared by train, show, match and exports."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.conftest import TEST_DATA
from xtalbase.cli import app
from xtalbase.errors import NotFound
from xtalbase.xrd.builder import compute_missing
from xtalbase.xrd.recipe import recipe_hash, recipe_spec, resolve_recipe

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
MP = sorted((TEST_DATA / "xrd" / "mp").glob("*.cif"))


def test_default_is_cu_ka_even_when_another_recipe_has_as_many_patterns(db):
    from xtalbase.ml.features import peaks11_for_structures
    from xtalbase.ml.training import train_xrd
    from xtalbase.schema import Model
    from xtalbase.xrd.match import match_scan
    from xtalbase.xrd.plot import load_pattern
    from xtalbase.xrd.scans import find_peaks, read_scan, with_wavelength

    db.ingest(MP)
    # Mo Kα first: on a tie of pattern counts the old "most patterns" rule picked the lower id, i.e. Mo Kα
    mo = compute_missing(db, {"radiation": "MoKa"})["recipe_id"]
    with pytest.raises(NotFound, match=rf"default XRD recipe .* not stored; choose one with --recipe: {mo} "):
        resolve_recipe(db, None)
    assert peaks11_for_structures(db, [1, 2]) == {}  # exports leave the column out
    cu = compute_missing(db)["recipe_id"]
    default = resolve_recipe(db, None)
    assert default.id == cu != mo and default.hash == recipe_hash(recipe_spec()) and default.wavelength == pytest.approx(1.54184)
    db.splits.create("r", strategy="random", fractions=(0.5, 0.25, 0.25), seed=0)
    report = train_xrd(db, split="r", algorithm="extratrees", params={"n_estimators": 5})
    with db.session() as s:
        assert s.get(Model, report.model_id).xrd_recipe_id == cu
    assert load_pattern(db, 1)["recipe_id"] == cu
    shown = runner.invoke(app, ["xrd", "show", "1", "--db", db.url, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["recipe_id"] == cu
    scan = with_wavelength(read_scan(TEST_DATA / "xrd" / "scans" / "MnO.xy"))
    assert len(match_scan(db, find_peaks(scan), scan.wavelength, (10.0, 80.0), top=3)) == 3
    assert set(peaks11_for_structures(db, [1, 2])) == {1, 2}


def test_lookup_by_id_name_and_hash_prefix(db):
    db.ingest(MP[:1])
    mo = compute_missing(db, {"radiation": "MoKa"})["recipe_id"]
    with db.session() as s:
        row = resolve_recipe(s, str(mo))
        assert resolve_recipe(s, mo) is row and resolve_recipe(s, row.name) is row and resolve_recipe(s, row.hash[:10]) is row
    detached = resolve_recipe(db, row.hash[:10].upper())
    assert detached.id == mo and detached.wavelength == row.wavelength  # columns loaded; usable after its session closed
    for bad in ("no-such-recipe", "9999", ""):
        with pytest.raises(NotFound, match="no XRD recipe"):
            resolve_recipe(db, bad)
