"""Exports (cdvae-csv, parquet, extxyz, poscar) with manifests, verification and the CDVAE import, on real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TEST_DATA, shared
from xtalbase.ml.manifest import ExportError

PEROV = TEST_DATA / "splits" / "perov5_220.csv"  # first 220 rows of perov5/test.csv
SIC = TEST_DATA / "splits" / "sic_dft.xyz"  # 8 SiC DFT frames (flare test file)


def perov_csv(tmp_path, start: int, stop: int):
    path = tmp_path / f"perov_{start}_{stop}.csv"
    pd.read_csv(PEROV, index_col=0).iloc[start:stop].to_csv(path)
    return path


@pytest.fixture
def perov(db, tmp_path):
    """120 real Perov-5 structures and a 60/20/20 split of them (seed 0)."""
    db.ingest(perov_csv(tmp_path, 0, 120))
    db.splits.create("perov", strategy="random", fractions=(0.6, 0.2, 0.2), seed=0)
    return db


def test_cdvae_csv_has_the_benchmark_layout_and_loads_like_cdvae(perov, tmp_path):
    from pymatgen.core import Structure

    split = perov.splits.get("perov")
    manifest = split.export(tmp_path / "out", "cdvae-csv")
    original = pd.read_csv(PEROV, index_col=0).set_index("material_id")
    header = PEROV.read_text().splitlines()[0]
    assert sorted(manifest["files"]) == ["test.csv", "train.csv", "val.csv"]
    for fold, n in split.counts.items():
        path = tmp_path / "out" / f"{fold}.csv"
        assert path.read_text().splitlines()[0] == header  # ,material_id,cif,formula,heat_all,heat_ref,dir_gap,ind_gap
        frame = pd.read_csv(path)  # what the CDVAE/DiffCSP preprocessing does
        assert len(frame) == n == manifest["files"][f"{fold}.csv"]["records"]
        assert frame["Unnamed: 0"].tolist() == split.ids(fold)
        for _, row in frame.iterrows():
            crystal = Structure.from_str(row["cif"], fmt="cif")  # CDVAE build_crystal
            source = original.loc[row["material_id"]]
            assert crystal.composition.reduced_formula == Structure.from_str(source["cif"], fmt="cif").composition.reduced_formula
            for prop in ("heat_all", "heat_ref", "dir_gap", "ind_gap"):
                assert row[prop] == source[prop]
            assert row["formula"] == source["formula"]
    assert manifest["split"] == {"name": "perov", "id": split.id, "recipe": split.recipe, "counts": split.counts}


def test_cdvae_round_trip_gives_the_same_membership(perov, tmp_path):
    split = perov.splits.get("perov")
    split.export(tmp_path / "out", "cdvae-csv")
    imported, report = perov.splits.import_cdvae("perov-again", tmp_path / "out")
    assert imported.members() == split.members()
    assert report["rows"] == report["matched"] == 120 and report["unmatched"] == [] and report["conflicts"] == []
    assert imported.counts == split.counts and imported.strategy == "imported"
    # re-importing the same files under the same name returns the stored split
    again, _ = perov.splits.import_cdvae("perov-again", tmp_path / "out")
    assert again.id == imported.id


def test_import_of_published_csvs_reports_rows_it_cannot_match(perov, tmp_path):
    rows = pd.read_csv(PEROV, index_col=0)
    published = tmp_path / "published"
    published.mkdir()
    rows.iloc[0:80].to_csv(published / "train.csv")
    rows.iloc[80:120].to_csv(published / "val.csv")
    test = rows.iloc[[200, 201, 202]].copy()  # real perovskites that were never ingested
    broken = rows.iloc[[0]].copy()
    broken["cif"] = "data_broken\n_cell_length_a 4.0\n"  # hand-made bad record
    pd.concat([test, broken]).to_csv(published / "test.csv")
    split, report = perov.splits.import_cdvae("published", published)
    assert report["matched"] == report["matched_exact"] == 120  # the very CIFs that were ingested
    assert [u["material_id"] for u in report["unmatched"]] == [str(m) for m in rows.iloc[[200, 201, 202, 0]]["material_id"]]
    assert all("no stored structure" in u["reason"] or "StructureMatcher" in u["reason"] for u in report["unmatched"][:3])
    assert report["unmatched"][3]["reason"].startswith("unreadable")
    assert split.counts == {"train": 80, "val": 40, "test": 0}
    with pytest.raises(ExportError, match="no train.csv"):
        perov.splits.import_cdvae("empty", tmp_path)


def test_parquet_has_one_row_per_structure_with_features(perov, tmp_path):
    from xtalbase.ml.features import peaks11_for_structures
    from xtalbase.xrd.builder import compute_missing

    split = perov.splits.get("perov")
    with_xrd = split.ids("test")[:5]
    compute_missing(perov, structure_ids=with_xrd)
    split.export(tmp_path / "pq", "parquet")
    table = pd.read_parquet(tmp_path / "pq" / "structures.parquet")
    assert list(table.columns[:3]) == ["structure_id", "canonical_hash", "fold"]
    assert len(table) == 120 and table["structure_id"].is_unique
    frame = split.frame()
    merged = table.merge(frame, on="structure_id", suffixes=("", "_db"))
    for col in ("fold", "canonical_hash", "formula_reduced", "spacegroup_number", "crystal_system", "a", "volume"):
        assert (merged[col] == merged[f"{col}_db"]).all(), col
    assert {"prop_heat_ref", "prop_formula", "cell", "numbers", "frac_coords", "elements", "prototype"} <= set(table)
    first = table.iloc[0]
    assert len(first["cell"]) == 9 and len(first["frac_coords"]) == 3 * first["nsites"]
    expected = peaks11_for_structures(perov, with_xrd)
    got = table.set_index("structure_id")["peaks11"]
    for sid in with_xrd:
        assert np.allclose(got[sid], expected[sid])
    assert got.drop(index=with_xrd).isna().all()


def test_extxyz_carries_energy_forces_and_stress(db, tmp_path):
    from ase.io import read

    db.ingest(SIC)
    # AIMD-like frames share a canonical hash, so "random" would keep them together; split per frame
    split = db.splits.create("sic", strategy="group", by="exact_hash", mode="exact", fractions=(0.5, 0.25, 0.25))
    assert split.counts == {"train": 4, "val": 2, "test": 2}
    split.export(tmp_path / "xyz", "extxyz")
    original = read(SIC, index=":")
    by_energy = {round(a.get_potential_energy(), 8): a for a in original}
    frames = [f for fold in split.folds for f in read(tmp_path / "xyz" / f"{fold}.extxyz", index=":")]
    assert len(frames) == len(original) == sum(split.counts.values())
    for frame in frames:
        source = by_energy[round(frame.get_potential_energy(), 8)]
        assert np.allclose(frame.get_forces(), source.get_forces())
        assert np.allclose(frame.get_stress(voigt=False), source.get_stress(voigt=False))
        assert np.allclose(frame.positions, source.positions) and frame.info["fold"] in split.folds
    in_memory = split.atoms("train")  # the Python API carries the same calculations
    assert [a.info["structure_id"] for a in in_memory] == split.ids("train")
    assert all(round(a.get_potential_energy(), 8) in by_energy for a in in_memory)


def test_extxyz_converts_vasp_kbar_stress_like_ase(db, tmp_path):
    from ase.io import read

    outcar = shared("extxyz", "2021.10.19.19.28.01.OUTCAR")
    db.ingest(outcar)
    split = db.splits.create("vasp", strategy="random", fractions=(1.0,))
    split.export(tmp_path / "x", "extxyz")
    frame = read(tmp_path / "x" / "train.extxyz")
    reference = read(outcar)  # ASE's own OUTCAR reader: eV/Å³ with ASE's sign convention
    assert np.allclose(frame.get_stress(), reference.get_stress(), atol=1e-8)
    # ingest stores VASP's free energy (TOTEN), ASE's force-consistent energy
    assert np.isclose(frame.get_potential_energy(), reference.get_potential_energy(force_consistent=True), atol=1e-6)
    assert np.allclose(frame.get_forces(), reference.get_forces())


def test_poscar_export_has_one_folder_per_fold(perov, tmp_path):
    from ase.io import read

    split = perov.splits.get("perov")
    manifest = split.export(tmp_path / "pos", "poscar")
    atoms = dict(zip(split.ids(), split.atoms()))
    for fold, n in split.counts.items():
        files = sorted((tmp_path / "pos" / fold).iterdir())
        assert len(files) == n
        for path in files[:5]:
            got = read(path, format="vasp")
            ref = atoms[int(path.stem)]
            assert got.get_chemical_formula() == ref.get_chemical_formula()
            assert np.allclose(got.cell[:], ref.cell[:]) and np.allclose(got.get_scaled_positions(), ref.get_scaled_positions())
    assert len(manifest["files"]) == 120


def test_verify_fails_loudly_on_any_difference(perov, tmp_path):
    from xtalbase.ml.export import verify_export

    split = perov.splits.get("perov")
    out = tmp_path / "out"
    split.export(out, "cdvae-csv")
    assert verify_export(out)["ok"]
    text = (out / "val.csv").read_text()
    (out / "val.csv").write_text(text.replace("heat", "Heat", 1))
    (out / "test.csv").unlink()
    (out / "notes.txt").write_text("extra")
    with pytest.raises(ExportError) as err:
        verify_export(out)
    message = str(err.value)
    assert "changed: val.csv" in message and "missing: test.csv" in message and "unlisted: notes.txt" in message
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ExportError, match="not readable JSON"):
        verify_export(out)
    with pytest.raises(ExportError, match="not an empty folder"):
        split.export(out, "parquet")
    with pytest.raises(ExportError, match="unknown export format 'xlsx'"):
        split.export(tmp_path / "new", "xlsx")


def test_export_is_a_recorded_run_and_manifest_names_the_split(perov, tmp_path):
    from sqlalchemy import select

    from xtalbase.schema import Run, RunLink

    split = perov.splits.get("perov")
    manifest = split.export(tmp_path / "e", "extxyz")
    on_disk = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert on_disk["files"] == manifest["files"] and on_disk["format"] == "extxyz"
    with perov.session() as s:
        run = s.scalars(select(Run).where(Run.kind == "export")).one()
        links = {(l.direction, l.kind, l.sha256) for l in s.scalars(select(RunLink).where(RunLink.run_id == run.id))}
    assert ("input", "split", split.id) in links
    assert {("output", "file", e["sha256"]) for e in manifest["files"].values()} <= links


def test_import_hashes_at_the_tolerance_the_database_used(db, tmp_path):
    db.ingest(perov_csv(tmp_path, 0, 40), symprec=0.1)  # canonical hashes depend on symprec
    split = db.splits.create("loose", strategy="random", mode="exact")
    split.export(tmp_path / "out", "cdvae-csv")
    imported, report = db.splits.import_cdvae("loose-again", tmp_path / "out")
    assert imported.recipe["source"]["symprec"] == 0.1
    assert report["matched"] == 40 and imported.members() == split.members()
