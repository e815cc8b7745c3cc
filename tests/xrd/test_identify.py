"""Phase identification through the database (issue #23): candidate filters, stored predictions, the CLI, the peak
index's storage, and the shared measured examples.

The database tests run on both backends with the eight vendored reference CIFs (``tests/data/xrd/references``)
and two real measured scans (``tests/data/xrd/scans``: anatase TiO2 and rock-salt MnO); mixtures are written as
``.xy`` files by the forward model of :mod:`tests.test_xrd_phase_search`. The shared-data tests (``../shared/data``,
skipped when absent) identify the eight ``xrd_experimental/Example`` scans and the ``PDF_Example`` Li2CO3-ZrO2 scan.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition
from sqlalchemy import func, select
from typer.testing import CliRunner

import xtalbase
from tests.conftest import BACKENDS, TEST_DATA, new_database, shared
from tests.xrd.test_phase_search import synthetic_scan
from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.schema import Model, Prediction, Run, RunLink, Structure, XrdPattern, XrdPeakIndex
from xtalbase.xrd import peak_index
from xtalbase.xrd.builder import compute_missing
from xtalbase.xrd.identify import CandidateFilter, identify_scan, identify_scans, read_sample_table
from xtalbase.xrd.peak_index import load_index
from xtalbase.xrd.phase_search import SearchSettings
from xtalbase.xrd.scans import Scan

REFERENCES = TEST_DATA / "xrd" / "references"
SCANS = TEST_DATA / "xrd" / "scans"
runner = CliRunner()
CU = 1.54184
pytestmark = pytest.mark.filterwarnings("ignore")


def loaded(db, names: list[str] | None = None):
    """``db`` with reference CIFs (default: all eight) ingested and their Cu Kα patterns computed."""
    files = sorted(REFERENCES.glob("*.cif")) if names is None else [REFERENCES / f"{n}.cif" for n in names]
    assert db.ingest(files).inserted == len(files)
    compute_missing(db)
    return db


@pytest.fixture(scope="module", params=BACKENDS)
def refdb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A database per backend with the eight references and their patterns, shared by the tests that only search."""
    with new_database(request.param, tmp_path_factory.mktemp("refs")) as db:
        yield loaded(db)


def chemistry(db) -> dict[int, tuple[str, set[str], int | None]]:
    """structure id → (reduced formula, elements, space group number)."""
    with db.session() as s:
        return {sid: (formula, set(system.split("-")), group) for sid, formula, system, group in
                s.execute(select(Structure.id, Structure.formula_reduced, Structure.chemical_system, Structure.spacegroup_number))}


def write_xy(path: Path, scan) -> Path:
    np.savetxt(path, np.column_stack([scan.two_theta, scan.intensity]), fmt="%.4f %.0f")
    return path


def mixture_file(folder: Path, name: str = "MnO+TiO2.xy", seed: int = 0) -> Path:
    """A scan of 60 wt% rock-salt MnO + 40 wt% anatase (both among the references)."""
    return write_xy(folder / name, synthetic_scan({"MnO_225": (0.6, 0.002), "TiO2_141": (0.4, -0.001)}, seed))


def formulas(result) -> list[tuple[str, int | None]]:
    return [(p.formula, p.spacegroup) for p in result.identification.phases]


# --- candidate filters -------------------------------------------------------------------------------------------------


def test_real_scans_are_identified_with_an_element_list(refdb):
    db = refdb
    tio2 = identify_scan(db, SCANS / "TiO2.xy", elements="Ti,O")
    assert formulas(tio2)[0] == ("TiO2", 141), tio2.to_dict()["phases"]
    assert tio2.identification.phases[0].intensity_share > 0.9 and tio2.candidates.elements == ["Ti", "O"]
    assert tio2.identification.n_candidates == 3  # TiO2 141 and 136, Ti2O3
    mno = identify_scan(db, SCANS / "MnO.xy", elements=["Mn", "O"])
    assert formulas(mno)[0] == ("MnO", 225), mno.to_dict()["phases"]
    assert mno.extra["wavelength"] == 1.54184 and mno.extra["index_fingerprint"] == load_index(db, mno.extra["recipe_id"]).fingerprint
    summary = mno.to_dict()
    assert summary["file"] == str(SCANS / "MnO.xy") and summary["candidate_filter"] == {"elements": ["Mn", "O"], "require": None, "filter": None}
    assert summary["phases"][0]["weight_fraction"] == pytest.approx(1.0, abs=0.05)
    json.dumps(summary)  # JSON-ready


def test_no_candidate_outside_the_elements_is_ever_returned(refdb, tmp_path):
    db = refdb
    chem = chemistry(db)
    mix = mixture_file(tmp_path)
    cases = [({"elements": "Mn,O"}, {"Mn", "O"}, None), ({"elements": "Ti O"}, {"Ti", "O"}, None),
             ({"elements": "Li;Mn;O"}, {"Li", "Mn", "O"}, None), ({"require": "Ti"}, None, {"Ti"}),
             ({"elements": "Ti,Mn,O", "require": ["Mn"]}, {"Ti", "Mn", "O"}, {"Mn"})]
    for options, allowed, required in cases:
        result = identify_scan(db, mix, **options)
        returned = [p.structure_id for p in result.identification.phases] + [r["structure_id"] for r in result.identification.ranking]
        for sid in returned:
            elements = chem[sid][1]
            assert allowed is None or elements <= allowed, (options, chem[sid])
            assert required is None or required <= elements, (options, chem[sid])
    both = identify_scan(db, mix, elements="Ti,Mn,O")
    assert {f for f, _ in formulas(both)} == {"MnO", "TiO2"} and ("MnO", 225) in formulas(both) and ("TiO2", 141) in formulas(both)
    only_mn = identify_scan(db, mix, elements="Mn,O")
    assert ("MnO", 225) in formulas(only_mn) and all(p.formula != "TiO2" for p in only_mn.identification.phases)


def test_an_optimade_filter_limits_the_candidates(refdb, tmp_path):
    db = refdb
    chem = chemistry(db)
    mix = mixture_file(tmp_path)
    anatase_only = identify_scan(db, mix, filter='chemical_formula_reduced="TiO2" AND _xtalbase_space_group_number=141')
    assert formulas(anatase_only) == [("TiO2", 141)] and anatase_only.identification.n_candidates == 1
    assert anatase_only.candidates.filter.startswith("chemical_formula_reduced")
    no_oxide_of_ti = identify_scan(db, mix, elements="Ti,Mn,O", filter='NOT elements HAS "Ti"')
    assert all("Ti" not in chem[p.structure_id][1] for p in no_oxide_of_ti.identification.phases)
    assert ("MnO", 225) in formulas(no_oxide_of_ti)


def test_a_database_without_patterns_says_to_compute_them(db, tmp_path):
    mix = mixture_file(tmp_path, "sample-7.xy")
    with pytest.raises(XtalbaseError, match="run `xtalbase xrd compute` first"):  # no recipe yet
        identify_scan(db, mix, elements="Mn,O")
    compute_missing(db)  # a recipe, no structures
    with pytest.raises(XtalbaseError, match="no computed patterns for XRD recipe .* run `xtalbase xrd compute` first"):
        identify_scan(db, mix, elements="Mn,O")


def test_bad_filters_are_clear_errors_naming_the_scan(refdb, tmp_path):
    db = refdb
    mix = mixture_file(tmp_path, "sample-7.xy")
    with pytest.raises(XtalbaseError, match="unknown element 'Xx'"):
        identify_scan(db, mix, elements="Mn,Xx,O")
    with pytest.raises(XtalbaseError, match="unknown element 'Q'"):
        identify_scan(db, mix, require="Q")
    for options in ({"elements": "Zr,O"}, {"filter": 'chemical_formula_reduced="NaCl"'}, {"elements": "Mn,O", "require": "Ti"}):
        with pytest.raises(XtalbaseError, match=r"sample-7\.xy: no stored pattern of recipe \d+ matches the candidate filter"):
            identify_scan(db, mix, **options)
    with pytest.raises(XtalbaseError):
        identify_scan(db, mix, filter="elements HAS")  # not a filter
    with pytest.raises(XtalbaseError, match="no such file"):
        identify_scan(db, tmp_path / "absent.xy", elements="Mn,O")


# --- stored predictions and the batch command ---------------------------------------------------------------------------


def _scan_folder(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(SCANS / "TiO2.xy", folder / "TiO2.xy")
    mixture_file(folder, "MnO+TiO2.xy")
    table = tmp_path / "samples.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "elements", "require", "filter"])
        writer.writerow(["TiO2.xy", "Ti O", "", ""])
        writer.writerow(["scans/MnO+TiO2.xy", "Mn,Ti,O", "", "nelements=2"])
    return folder, table


def test_identify_scans_stores_one_prediction_per_scan_under_one_model(db, tmp_path):
    loaded(db)
    folder, table = _scan_folder(tmp_path)
    samples = read_sample_table(table)
    assert samples == {"TiO2.xy": CandidateFilter(["Ti", "O"], None, None),
                       "MnO+TiO2.xy": CandidateFilter(["Mn", "Ti", "O"], None, "nelements=2")}
    paths = sorted(folder.glob("*.xy"))
    done: list[int] = []
    first = identify_scans(db, paths, samples=samples, store=True, progress=done.append)
    assert done == [1, 2] and [Path(r.path).name for r in first] == ["MnO+TiO2.xy", "TiO2.xy"]
    recipe_id = first[0].extra["recipe_id"]
    with db.session() as s:
        model = s.scalars(select(Model)).one()
        assert (model.task, model.target, model.algorithm, model.xrd_recipe_id) == ("phase_identification", "phases", "xrd-profile-search", recipe_id)
        assert model.hyperparameters == {**SearchSettings().to_dict(), "axis_strain": False}
        predictions = s.scalars(select(Prediction).order_by(Prediction.id)).all()
        assert [p.id for p in predictions] == [r.prediction_id for r in first]
        for prediction, result in zip(predictions, first):
            phases = result.identification.phases
            assert prediction.model_id == model.id and prediction.target == "phases" and prediction.structure_id is None
            assert prediction.label == " + ".join(p.formula for p in phases)
            assert prediction.value == pytest.approx(result.identification.residual)
            assert prediction.payload["candidate_filter"] == samples[Path(result.path).name].to_dict()
            assert [p["structure_id"] for p in prediction.payload["phases"]] == [p.structure_id for p in phases]
            assert prediction.payload["file"] == result.path and prediction.payload["index_fingerprint"] == result.extra["index_fingerprint"]
            pattern = s.get(XrdPattern, prediction.pattern_id)
            assert pattern.kind == "measured" and pattern.id == result.pattern_id and pattern.file_path == result.path
            run = s.get(Run, prediction.run_id)
            assert run.kind == "xrd-identify" and run.status == "succeeded" and run.summary["phases"] == [p.structure_id for p in phases]
            links = {(link.direction, link.kind): link for link in s.scalars(select(RunLink).where(RunLink.run_id == run.id))}
            assert links[("input", "xrd_pattern")].pattern_id == pattern.id and links[("input", "model")].model_id == model.id
            assert ("output", "predictions") in links
        labels = {Path(p.payload["file"]).name: p.label for p in predictions}
    assert labels["TiO2.xy"].split(" + ")[0] == "TiO2"
    assert set(labels["MnO+TiO2.xy"].split(" + ")) == {"MnO", "TiO2"}

    again = identify_scans(db, paths, samples=samples, store=True)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Model)) == 1  # the model row is reused
        assert s.scalar(select(func.count()).select_from(Prediction)) == 2  # the same search of the same scans is stored once
        assert s.scalar(select(func.count()).select_from(XrdPattern).where(XrdPattern.kind == "measured")) == 2  # scans imported once
    assert [r.pattern_id for r in again] == [r.pattern_id for r in first]
    assert [r.prediction_id for r in again] == [r.prediction_id for r in first]

    other = identify_scans(db, paths[:1], elements="Mn,Ti,O", settings=SearchSettings(max_phases=2), store=True)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Model)) == 2  # other settings: another model row
        assert s.get(Prediction, other[0].prediction_id).payload["candidate_filter"]["elements"] == ["Mn", "Ti", "O"]
    unstored = identify_scans(db, paths[:1], elements="Mn,Ti,O", store=False)
    assert unstored[0].prediction_id is None and unstored[0].pattern_id is None


def test_a_sample_table_missing_a_scan_is_an_error_naming_it_before_any_work(db, tmp_path):
    loaded(db, ["MnO_225"])
    folder, table = _scan_folder(tmp_path)
    extra = mixture_file(folder, "unlisted-42.xy", seed=1)
    with pytest.raises(XtalbaseError, match="no sample-table row for unlisted-42.xy"):
        identify_scans(db, sorted(folder.glob("*.xy")), samples=read_sample_table(table), store=True)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Model)) == 0 and s.scalar(select(func.count()).select_from(Prediction)) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("scan,elements\nTiO2.xy,Ti O\nMnO.xy,Mn Oo\n")
    with pytest.raises(XtalbaseError, match=r"bad.csv: line 3 \(MnO.xy\): unknown element 'Oo'"):
        read_sample_table(bad)
    bad.write_text("file,formula\nTiO2.xy,TiO2\n")
    with pytest.raises(XtalbaseError, match="needs the columns file \\(or scan\\) and elements"):
        read_sample_table(bad)
    with pytest.raises(XtalbaseError, match="no such sample table"):
        read_sample_table(tmp_path / "absent.csv")
    assert extra.name not in read_sample_table(table)


def test_cli_identify_folder_with_a_sample_table(db, tmp_path):
    loaded(db)
    folder, table = _scan_folder(tmp_path)
    shutil.copy(table, folder / "samples.csv")  # the table may sit among the scans: it is not a scan
    result = runner.invoke(app, ["xrd", "identify", str(folder), "--elements-from", str(folder / "samples.csv"), "--db", db.url, "--json"])
    assert result.exit_code == 0, result.output
    scans = {Path(s["file"]).name: s for s in json.loads(result.output)["scans"]}
    assert set(scans) == {"TiO2.xy", "MnO+TiO2.xy"}
    assert scans["TiO2.xy"]["phases"][0]["formula"] == "TiO2" and scans["TiO2.xy"]["candidate_filter"]["elements"] == ["Ti", "O"]
    assert {p["formula"] for p in scans["MnO+TiO2.xy"]["phases"]} == {"MnO", "TiO2"}
    with db.session() as s:
        stored = {p.id: p for p in s.scalars(select(Prediction))}
        model = s.scalars(select(Model)).one()
        assert model.task == "phase_identification" and model.xrd_recipe_id == scans["TiO2.xy"]["recipe_id"]
    assert {scans[n]["prediction_id"] for n in scans} == set(stored)

    # another table given: the folder's own samples.csv is not read as a scan (.csv files are not scans in a folder)
    other = runner.invoke(app, ["xrd", "identify", str(folder), "--elements-from", str(table), "--db", db.url, "--json"])
    assert other.exit_code == 0, other.output
    assert json.loads(other.output)["failed"] == 0
    mixture_file(folder, "unlisted-42.xy", seed=1)
    missing = runner.invoke(app, ["xrd", "identify", str(folder), "--elements-from", str(folder / "samples.csv"), "--db", db.url,
                                  "--json"])
    assert missing.exit_code != 0 and "unlisted-42.xy" in str(missing.exception), missing.output
    one = runner.invoke(app, ["xrd", "identify", str(SCANS / "MnO.xy"), "--elements", "Mn,O", "--db", db.url, "--no-store", "--json"])
    assert one.exit_code == 0, one.output
    single = json.loads(one.output)["scans"]
    assert len(single) == 1 and single[0]["phases"][0]["formula"] == "MnO" and single[0]["prediction_id"] is None
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Model)) == 1 and s.scalar(select(func.count()).select_from(Prediction)) == 2


def test_cli_identify_of_an_empty_or_absent_folder_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("not a scan")
    for target, message in ((tmp_path / "empty", "no scans"), (tmp_path / "absent", "no such file or folder")):
        result = runner.invoke(app, ["xrd", "identify", str(target), "--db", f"sqlite:///{tmp_path / 'x.db'}"], env={"COLUMNS": "400"})
        assert result.exit_code == 2 and message in result.output, result.output


# --- the stored peak index ---------------------------------------------------------------------------------------------


def test_load_index_reuses_the_stored_blob_and_rebuilds_when_patterns_change(db, monkeypatch, tmp_path):
    loaded(db, ["MnO_225", "TiO2_141"])
    recipe_id = compute_missing(db)["recipe_id"]
    first = load_index(db, recipe_id)
    assert sorted(first.formulas) == ["MnO", "TiO2"] and first.fingerprint.startswith("v1:2:")
    assert load_index(db, recipe_id) is first  # this process's cache
    with db.session() as s:
        stored = s.scalars(select(XrdPeakIndex)).all()
        assert [(r.recipe_id, r.fingerprint, r.n_patterns) for r in stored] == [(recipe_id, first.fingerprint, 2)]

    # another process (empty cache) reads the stored blob: nothing is rebuilt
    monkeypatch.setattr(peak_index, "_LOADED", {})

    def no_build(*args, **kwargs):
        raise AssertionError("the stored index should have been reused")

    monkeypatch.setattr(peak_index, "build_index", no_build)
    reread = load_index(db, recipe_id)
    assert reread is not first and reread.fingerprint == first.fingerprint
    assert np.array_equal(reread.d, first.d) and list(reread.formulas) == list(first.formulas)
    monkeypatch.undo()

    # a new pattern changes the fingerprint: rebuilt, stored, the outdated blob deleted
    db.ingest([REFERENCES / "Mn2O3_206.cif"])
    compute_missing(db)
    grown = load_index(db, recipe_id)
    assert grown.fingerprint != first.fingerprint and sorted(grown.formulas) == ["Mn2O3", "MnO", "TiO2"]
    with db.session() as s:
        rows = s.scalars(select(XrdPeakIndex)).all()
        assert [(r.fingerprint, r.n_patterns) for r in rows] == [(grown.fingerprint, 3)]
    scan = write_xy(tmp_path / "Mn2O3.xy", synthetic_scan({"Mn2O3_206": (1.0, 0.0)}, 0))
    assert formulas(identify_scan(db, scan, elements="Mn,O"))[0] == ("Mn2O3", 206)  # the new phase is searchable at once

    # a stored index of another layout version is rebuilt, not misread
    monkeypatch.setattr(peak_index, "_LOADED", {})
    monkeypatch.setattr(peak_index, "INDEX_VERSION", peak_index.INDEX_VERSION + 1)
    rebuilt = load_index(db, recipe_id)
    assert list(rebuilt.formulas) == list(grown.formulas) and np.array_equal(rebuilt.d, grown.d)


def test_a_database_recreated_at_the_same_url_does_not_reuse_the_old_index(tmp_path):
    """Two SQLite files made one after the other at the same path, each with one structure and one pattern (fingerprint
    ``1:1:1``): the second database's search gets the first database's index (its phases, under the second's ids)."""
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    first = xtalbase.connect(url)
    first.init()
    loaded(first, ["MnO_225"])
    assert list(load_index(first, 1).formulas) == ["MnO"]
    first.close()
    (tmp_path / "lab.db").unlink()
    second = xtalbase.connect(url)
    second.init()
    loaded(second, ["Mn2O3_206"])
    try:
        assert list(load_index(second, 1).formulas) == ["Mn2O3"]
    finally:
        second.close()


# --- the shared measured examples ---------------------------------------------------------------------------------------


def _expected(stem: str) -> tuple[list[str], list[str]]:
    """(elements, reduced formulas) named by a scan's file name, e.g. ``Mn2O3+LiF`` or ``Li2CO3-ZrO2``."""
    named = [part for part in re.split(r"[+-]", stem) if part]
    elements = sorted({el for part in named for el in re.findall(r"[A-Z][a-z]?", part)})
    return elements, [Composition(part).reduced_formula for part in named]


def _mp_files(groups: list[set[str]]) -> list[Path]:
    """The ``mp_cgcnn`` CIFs whose elements all lie within one of ``groups``."""
    found = []
    for path in sorted(shared("mp_cgcnn", "cifs").glob("*.cif")):
        with path.open() as fh:
            for line in fh:
                if line.startswith("_chemical_formula_sum"):
                    if any(set(re.findall(r"[A-Z][a-z]?", line.split(None, 1)[1])) <= g for g in groups):
                        found.append(path)
                    break
    return found


EXAMPLE_SCANS = ["Li2MnO3+MnO+TiO2", "LiMnO2", "Mn2O3+LiF", "Mn2O3", "MnO", "MnO2", "TiO2+MnO", "TiO2"]
#: (database, scan) cases the current search gets wrong; each is a strict xfail and the reason says what it returned.
KNOWN_MISSES = {
    ("references+mp", "Li2CO3-ZrO2"): "Li2CO3 not found: the MP (PBE) Li2CO3 cell is about 1.7 % too large on average and "
                                      "anisotropically so (5 % in volume), beyond the ±1.5 % uniform strain; other Li-Zr-O-C "
                                      "phases take its peaks and it is listed only as an alternative",
}


@pytest.fixture(scope="module")
def references_db(tmp_path_factory):
    """SQLite: the 56 Example and 21 PDF_Example reference CIFs (76 distinct structures) with Cu Kα patterns."""
    example, pdf = shared("xrd_experimental", "Example"), shared("xrd_experimental", "PDF_Example")
    path = tmp_path_factory.mktemp("examples") / "references.db"
    db = xtalbase.connect(f"sqlite:///{path}")
    db.init()
    db.ingest(sorted((example / "References").glob("*.cif")) + sorted((pdf / "References").glob("*.cif")))
    compute_missing(db)
    yield db
    db.close()


@pytest.fixture(scope="module")
def mp_db(references_db, tmp_path_factory):
    """``references_db`` plus every Materials Project structure of ``mp_cgcnn`` whose elements lie within Li-Mn-Ti-O,
    Li-Mn-F-O or Li-C-Zr-O (the scans' chemical spaces; about 350, Li2CO3 mp-3054 among them)."""
    files = _mp_files([{"Li", "Mn", "Ti", "O"}, {"Li", "Mn", "F", "O"}, {"Li", "C", "Zr", "O"}])
    assert any(f.name == "mp-3054.cif" for f in files)  # Li2CO3
    path = tmp_path_factory.mktemp("examples_mp") / "references_mp.db"
    source, copy = sqlite3.connect(references_db.engine.url.database), sqlite3.connect(path)
    with copy:  # a copy of the references database
        source.backup(copy)
    source.close()
    copy.close()
    db = xtalbase.connect(f"sqlite:///{path}")
    db.ingest(files)
    compute_missing(db)
    yield db
    db.close()


def _cases():
    scans = [("references", s) for s in EXAMPLE_SCANS] + [("references+mp", s) for s in EXAMPLE_SCANS + ["Li2CO3-ZrO2"]]
    return [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[c])) if c in KNOWN_MISSES else c for c in scans]


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c[0]}:{c[1]}")
def test_every_phase_named_by_a_shared_example_scan_is_found(case, request):
    """Each scan searched with the elements of its file name; every phase the name gives must be among the returned
    phases (same reduced formula; the polymorph is not checked). Li2CO3 is not among the PDF_Example references,
    so the Li2CO3-ZrO2 scan is only searched with the Materials Project structures added."""
    database, stem = case
    db = request.getfixturevalue("references_db" if database == "references" else "mp_db")
    folder = "PDF_Example" if stem == "Li2CO3-ZrO2" else "Example"
    elements, named = _expected(stem)
    result = identify_scan(db, shared("xrd_experimental", folder, "Spectra", f"{stem}.xy"), elements=elements)
    phases = result.identification.phases
    found = {Composition(p.formula).reduced_formula for p in phases}
    report = [(p.formula, p.spacegroup, None if p.weight_fraction is None else round(p.weight_fraction, 2),
               [a["formula"] for a in p.alternatives]) for p in phases]
    assert set(named) <= found, f"{stem} ({database}, elements {elements}): returned {report}"
    assert all(set(Composition(p.formula).as_dict()) <= set(elements) for p in phases)


# --- review fixes: scans without signal, table quirks, batch errors, stored wavelength -----------------------------------


def test_flat_noise_and_coarse_scans_are_refused_not_explained(refdb, tmp_path):
    """A flat Poisson scan or an amorphous hump has no crystalline phase; before, three phases were "found" in each."""
    db = refdb
    x = np.round(np.arange(10.0, 90.0001, 0.01), 4)
    rng = np.random.default_rng(0)
    for name, counts in (("flat.xy", np.full(len(x), 1000.0)), ("hump.xy", 500 + 400 * np.exp(-0.5 * ((x - 25) / 5) ** 2))):
        path = write_xy(tmp_path / name, Scan(x, rng.poisson(counts).astype(float), CU, name))
        with pytest.raises(XtalbaseError, match="no peak stands out of the noise"):
            identify_scan(db, path, elements="Ti,Mn,O")
    coarse = synthetic_scan({"MnO_225": (0.6, 0.0), "TiO2_141": (0.4, 0.0)}, 0)
    sparse = Scan(coarse.two_theta[::50], coarse.intensity[::50], CU, "coarse")
    with pytest.raises(XtalbaseError, match="too coarse"):
        identify_scan(db, sparse, elements="Ti,Mn,O")


def test_a_batch_keeps_going_past_a_bad_scan_and_a_rerun_stores_nothing_twice(db, tmp_path):
    loaded(db, ["MnO_225", "TiO2_141"])
    folder = tmp_path / "scans"
    folder.mkdir()
    good = mixture_file(folder)
    bad = folder / "broken.xy"
    bad.write_text("2theta intensity\n10 1\n11 x\n")
    with pytest.raises(XtalbaseError, match="broken.xy"):
        identify_scans(db, [bad, good], elements="Mn,Ti,O", store=True)
    results = identify_scans(db, [bad, good], elements="Mn,Ti,O", store=True, on_error="collect")
    assert results[0].error and "not numeric" in results[0].error and results[0].prediction_id is None
    assert {p.formula for p in results[1].identification.phases} == {"MnO", "TiO2"} and results[1].prediction_id is not None
    assert results[0].to_dict()["error"] == results[0].error
    result = runner.invoke(app, ["xrd", "identify", str(folder), "--elements", "Mn,Ti,O", "--db", db.url, "--json"])
    assert result.exit_code == 1 and json.loads(result.output)["failed"] == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 1  # the good scan's search is stored once


def test_sample_tables_with_a_byte_order_mark_are_read_and_bad_rows_named(tmp_path):
    table = tmp_path / "samples.csv"
    table.write_text("\ufefffile,elements\nA.xy,\"Ti,O\"\n", encoding="utf-8")
    assert read_sample_table(table) == {"A.xy": CandidateFilter(["Ti", "O"], None, None)}
    table.write_text("file,elements\nA.xy,\"Ti,O\"\nA.xy,Mn\n", encoding="utf-8")
    with pytest.raises(XtalbaseError, match="A.xy is listed twice"):
        read_sample_table(table)
    table.write_text("file,elements\nA.xy,\n", encoding="utf-8")
    with pytest.raises(XtalbaseError, match="gives no elements"):
        read_sample_table(table)


def test_a_stored_scan_keeps_the_wavelength_it_was_searched_at(db, tmp_path):
    loaded(db, ["MnO_225"])
    mo = synthetic_scan({"MnO_225": (1.0, 0.0)}, 0, lines=((0.709300, 1.0), (0.713590, 0.5)))
    path = write_xy(tmp_path / "MnO_mo.xy", Scan(mo.two_theta, mo.intensity, None, "MnO_mo"))
    result = identify_scans(db, [path], elements="Mn,O", wavelength=0.71073, store=True)[0]
    assert [p.formula for p in result.identification.phases] == ["MnO"]
    with db.session() as s:
        assert s.get(XrdPattern, result.pattern_id).wavelength == pytest.approx(0.71073)
