"""Stored patterns: recipes by hash, the incremental builder, the peak table from SQL, and the CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

import xtalbase
from tests.conftest import TEST_DATA
from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.platform.convert import to_pymatgen
from xtalbase.schema import Run, Structure, XrdPattern, XrdPeak, XrdRecipe
from xtalbase.schema.arrays import unpack
from xtalbase.xrd.builder import compute_missing
from xtalbase.xrd.recipe import PHYSICS_VERSION, get_or_create_recipe, recipe_hash, recipe_spec

XRD_DATA = TEST_DATA / "xrd"
runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def loaded(db):
    """A database holding 15 real structures: 7 MP structures (one per crystal system) + 8 phase references."""
    report = db.ingest(sorted((XRD_DATA / "mp").glob("*.cif")) + sorted((XRD_DATA / "references").glob("*.cif")))
    assert report.inserted == 15, report.to_dict()
    return db


def test_recipe_hash_is_content_only_and_stable():
    spec = recipe_spec("CuKa")
    expected = hashlib.sha256(json.dumps({k: v for k, v in spec.items() if k != "radiation"}, sort_keys=True,
                                         separators=(",", ":")).encode()).hexdigest()
    assert recipe_hash(spec) == expected
    assert spec["wavelength"] == 1.54184 and spec["physics"] == PHYSICS_VERSION
    assert recipe_hash(recipe_spec(None, wavelength=1.54184)) == recipe_hash(spec)  # name or number: one set-up
    others = {recipe_hash(recipe_spec("MoKa")), recipe_hash(recipe_spec("CuKa", two_theta=(5, 90))),
              recipe_hash(recipe_spec("CuKa", merge_tol=1e-3)), recipe_hash(recipe_spec("CuKa", debye_waller={"O": 0.5}))}
    assert len(others) == 4 and recipe_hash(spec) not in others
    with pytest.raises(XtalbaseError, match="unknown radiation"):
        recipe_spec("XxKa")
    with pytest.raises(XtalbaseError, match="2θ range"):
        recipe_spec("CuKa", two_theta=(90, 10))


def test_recipe_is_stored_once(db):
    with db.session() as s:
        a = get_or_create_recipe(s, "CuKa")
        b = get_or_create_recipe(s, None, wavelength=1.54184)
        c = get_or_create_recipe(s, "MoKa", two_theta=(5, 60))
        s.commit()
        assert a.id == b.id != c.id
        assert s.scalar(select(func.count()).select_from(XrdRecipe)) == 2
        assert c.name == "MoKa 5-60" and c.wavelength == pytest.approx(0.71073)


def test_compute_missing_stores_exact_patterns_incrementally(loaded):
    db = loaded
    first = compute_missing(db)
    assert first["computed"] == first["missing"] == 15 and first["failed"] == []
    again = compute_missing(db)
    assert again["missing"] == again["computed"] == 0 and again["recipe_id"] == first["recipe_id"]
    with db.session() as s:
        rows = s.execute(select(Structure, XrdPattern).join(XrdPattern, XrdPattern.structure_id == Structure.id)).all()
        assert len(rows) == 15
        expected = xtalbase.compute_xrd([to_pymatgen(st) for st, _ in rows])
        for (_st, pat), exp in zip(rows, expected):
            assert pat.recipe_id == first["recipe_id"] and pat.kind == "computed" and pat.npeaks == len(exp.two_theta)
            np.testing.assert_array_equal(unpack(pat.two_theta), exp.two_theta)
            np.testing.assert_allclose(unpack(pat.intensity), exp.intensity, atol=1e-9)
            np.testing.assert_allclose(unpack(pat.d_spacing), exp.d_spacing)
        assert s.scalar(select(func.count()).select_from(XrdPeak)) == sum(p.npeaks for _, p in rows)
        run = s.get(Run, first["run_id"])
        assert run.kind == "xrd" and run.status == "succeeded" and run.summary["computed"] == 15
    # a new wavelength is a new recipe: every structure is computed again, only for it
    mo = compute_missing(db, {"radiation": "MoKa"}, structure_ids=[rows[0][0].id, rows[1][0].id])
    assert mo["recipe_id"] != first["recipe_id"] and mo["computed"] == 2
    assert compute_missing(db)["computed"] == 0


def test_peak_table_answers_peak_searches_in_sql(loaded):
    db = loaded
    recipe_id = compute_missing(db)["recipe_id"]
    target, window, min_intensity = 25.3, 0.1, 20.0  # anatase's strongest reflection (101) is at 25.3°
    sql = text("SELECT DISTINCT structure_id FROM xrd_peaks WHERE recipe_id = :r AND two_theta BETWEEN :lo AND :hi AND intensity > :i")
    with db.engine.connect() as conn:
        hits = {r[0] for r in conn.execute(sql, {"r": recipe_id, "lo": target - window, "hi": target + window, "i": min_intensity})}
    with db.session() as s:
        expected = set()
        for pat in s.scalars(select(XrdPattern).where(XrdPattern.recipe_id == recipe_id)):
            tt, inten = unpack(pat.two_theta), unpack(pat.intensity)
            if ((np.abs(tt - target) <= window) & (inten > min_intensity)).any():
                expected.add(pat.structure_id)
        names = {st.id: st.formula_reduced for st in s.scalars(select(Structure).where(Structure.id.in_(hits)))}
    assert hits == expected and "TiO2" in names.values()
    if db.backend == "sqlite":
        with db.engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql.text),
                                                              {"r": recipe_id, "lo": 25.2, "hi": 25.4, "i": 20}))
        assert "ix_xrd_peaks_recipe_id_two_theta" in plan


def test_failed_structures_are_reported_not_fatal(loaded):
    from xtalbase.xrd.builder import compute_chunk

    good = (np.eye(3) * 4.0, np.array([8]), np.zeros((1, 3)), None)
    bad = (np.eye(3) * 4.0, np.array([0]), np.zeros((1, 3)), None)
    flat = (np.array([[4.0, 0, 0], [0, 4.0, 0], [8.0, 0, 0]]), np.array([8]), np.zeros((1, 3)), None)
    ids, (patterns, failures) = compute_chunk([(1, good), (2, bad), (3, flat)], {"wavelength": 1.54184, "two_theta": (0, 90)})
    assert ids == [1] and len(patterns) == 1
    assert failures == [{"structure_id": 2, "code": "no_scattering_factors",
                         "reason": "no X-ray scattering factors for atomic number(s) [0]"},
                        {"structure_id": 3, "code": "bad_cell", "reason": "degenerate or non-finite cell"}]


def test_failures_are_stored_per_structure_and_recipe_and_skipped_until_retried(loaded):
    from sqlalchemy import update

    from xtalbase.schema import XrdFailure
    from xtalbase.schema.arrays import U1, pack

    db = loaded
    with db.session() as s:
        victim = s.scalars(select(Structure).where(Structure.formula_reduced == "TiO2")).first()
        sid, numbers = victim.id, victim.numbers
        # a stored row the engine cannot compute: atomic number 0 has no scattering factors
        s.execute(update(Structure).where(Structure.id == sid).values(numbers=pack(np.zeros(victim.nsites), U1)))
        s.commit()
    first = compute_missing(db, batch_size=4)
    assert first["computed"] == 14 and [(f["structure_id"], f["code"]) for f in first["failed"]] == [(sid, "no_scattering_factors")]
    with db.session() as s:
        (row,) = s.scalars(select(XrdFailure)).all()
        assert (row.structure_id, row.recipe_id, row.reason, row.run_id) == (sid, first["recipe_id"], "no_scattering_factors",
                                                                             first["run_id"])
        assert "atomic number(s) [0]" in row.message
    again = compute_missing(db)
    assert (again["missing"], again["computed"], again["failed"], again["skipped_failed"]) == (0, 0, [], 1)
    still = compute_missing(db, retry_failed=True)  # the same input fails the same way: one row, from the new run
    assert still["missing"] == 1 and len(still["failed"]) == 1
    with db.session() as s:
        assert [r.run_id for r in s.scalars(select(XrdFailure))] == [still["run_id"]]
        s.execute(update(Structure).where(Structure.id == sid).values(numbers=numbers))  # the row is mended
        s.commit()
    result = runner.invoke(app, ["xrd", "compute", "--db", db.url, "--json"])
    assert json.loads(result.output)["computed"] == 0  # still skipped without the flag
    result = runner.invoke(app, ["xrd", "compute", "--db", db.url, "--retry-failed", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["computed"] == 1
    with db.session() as s:
        assert s.scalars(select(XrdFailure)).all() == []
        assert s.scalar(select(func.count()).select_from(XrdPattern)) == 15


def test_compute_has_no_all_option(loaded):
    # stored patterns are never recomputed (the recipe hash holds the physics version): the old, ignored --all is gone
    result = runner.invoke(app, ["xrd", "compute", "--db", loaded.url, "--all"])
    assert result.exit_code == 2 and "No such option" in result.output


def test_cli_compute_recipes_show_and_plot(loaded, tmp_path):
    db = loaded
    result = runner.invoke(app, ["xrd", "compute", "--db", db.url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["computed"] == 15
    result = runner.invoke(app, ["xrd", "compute", "--db", db.url, "--wavelength", "0.71073", "--two-theta", "5", "60", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["computed"] == 15
    listed = json.loads(runner.invoke(app, ["xrd", "recipes", "--db", db.url, "--json"]).output)
    assert [r["patterns"] for r in listed] == [15, 15] and listed[1]["two_theta"] == "5-60"
    with db.session() as s:
        sid = s.scalars(select(Structure.id).where(Structure.formula_reduced == "TiO2")).first()
    png = tmp_path / "tio2.png"
    result = runner.invoke(app, ["xrd", "show", str(sid), "--db", db.url, "--plot", str(png), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["formula"] == "TiO2" and max(p["intensity"] for p in shown["peaks"]) == 100.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    missing = runner.invoke(app, ["xrd", "show", "999999", "--db", db.url])
    assert missing.exit_code != 0 and "no structure with id 999999" in str(missing.exception)


def test_disordered_structure_and_worker_processes(db):
    from pymatgen.core import Structure as PmgStructure

    cif = XRD_DATA / "disordered" / "1011100.cif"  # COD Ti0.88N0.88: partially occupied sites
    report = db.ingest([cif], allow_disorder=True)
    assert report.inserted == 1, report.to_dict()
    db.ingest(sorted((XRD_DATA / "mp").glob("*.cif")))
    summary = compute_missing(db, workers=2, batch_size=3)
    assert summary["computed"] == 8 and summary["failed"] == []
    with db.session() as s:
        row = s.scalars(select(Structure).where(Structure.site_occupancies.is_not(None))).one()
        stored = s.scalars(select(XrdPattern).where(XrdPattern.structure_id == row.id)).one()
        (expected,) = xtalbase.compute_xrd([PmgStructure.from_file(cif)])
        np.testing.assert_allclose(unpack(stored.two_theta), expected.two_theta, atol=1e-6)
        np.testing.assert_allclose(unpack(stored.intensity), expected.intensity, atol=1e-6)
