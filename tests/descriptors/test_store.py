"""Descriptor recipes stored by content hash, vectors cached per (recipe, structure), on every backend."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import BACKENDS, TEST_DATA, new_database
from xtalbase.cli import app
from xtalbase.descriptors.compositional import CompositionRecipe, composition_preset
from xtalbase.errors import NotFound, XtalbaseError

MP = TEST_DATA / "query" / "mp_cgcnn"


def _write_cifs(folder) -> None:
    """A disordered alloy and a compound of americium (Z 95: outside the XenonPy table)."""
    from pymatgen.core import Lattice, Structure

    Structure(Lattice.cubic(2.87), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]]).to(filename=str(folder / "FeCo_disordered.cif"))
    Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.38), ["Am", "O"], [[0, 0, 0], [0.25, 0.25, 0.25]]).to(filename=str(folder / "AmO2.cif"))


@pytest.fixture(scope="module", params=BACKENDS)
def ddb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    folder = tmp_path_factory.mktemp("extra")
    _write_cifs(folder)
    with new_database(request.param, tmp_path_factory.mktemp("descriptors")) as db:
        report = db.ingest([MP, folder], allow_disorder=True)
        assert report.inserted == 26, report
        yield db


def _ids(db, filter: str) -> list[int]:
    return db.query(filter).ids()


def test_vectors_are_computed_once_and_equal_the_recipe_on_the_stored_composition(ddb):
    ids = _ids(ddb, 'NOT elements HAS "Am"')
    store = ddb.descriptors
    first = store.matrix("xenonpy", ids)
    assert first.computed == len(ids) and not first.errors
    again = store.matrix("xenonpy", list(reversed(ids)))
    assert again.computed == 0
    np.testing.assert_array_equal(again.values[::-1], first.values)
    from pymatgen.core import Composition

    frame = ddb.query(f"id={ids[0]}").frame()
    expected = composition_preset("xenonpy").transform([Composition(frame.formula_reduced[0])])
    np.testing.assert_allclose(first.values[0], expected[0], rtol=1e-12)


def test_partial_occupancies_count_through_structure_elements(ddb):
    [sid] = _ids(ddb, 'elements HAS ALL "Fe","Co" AND nsites=1')
    frame = ddb.describe(CompositionRecipe("xenonpy", ("ave", "sum"), properties=("atomic_number",)), ids=[sid])
    assert frame.loc[sid].tolist() == pytest.approx([26.5, 26.5])


def test_a_structure_the_table_lacks_is_stored_with_its_reason_and_not_retried(ddb):
    [am] = _ids(ddb, 'elements HAS "Am"')
    frame = ddb.describe("xenonpy", filter='elements HAS ANY "Am","O"')
    assert am in frame.attrs["errors"] and "Am (Z=95) is not in the xenonpy table" in frame.attrs["errors"][am]
    assert frame.loc[am].isna().all() and frame.drop(index=am).notna().all().all()
    again = ddb.descriptors.matrix("xenonpy", [am])
    assert again.computed == 0 and am in again.errors
    assert np.isfinite(ddb.describe("magpie", ids=[am]).loc[am]).all()  # magpie imputes, as matminer


def test_a_new_recipe_version_or_parameter_is_a_new_recipe_and_recomputes(ddb, monkeypatch):
    ids = _ids(ddb, "nsites<10")[:5]
    store = ddb.descriptors
    base = store.recipe("xenonpy")
    store.matrix(base, ids)
    assert store.matrix("xenonpy", ids).computed == 0
    changed = store.recipe("xenonpy", basis="cell")
    assert changed.hash != base.hash and changed.name.startswith("composition-")
    assert store.matrix(changed, ids).computed == len(ids)
    monkeypatch.setattr(CompositionRecipe, "version", 2)
    bumped = store.recipe("xenonpy")
    assert bumped.id != base.id and bumped.hash != base.hash
    assert store.matrix(bumped, ids).computed == len(ids)
    assert store.recipe(bumped.hash[:12]).id == bumped.id  # a stored recipe by hash prefix
    kinds = {(r["name"], r["version"]) for r in store.recipes()}
    assert ("xenonpy", 1) in kinds and ("xenonpy", 2) in kinds


def test_without_compute_a_missing_vector_is_an_error_and_unknown_ids_are_named(ddb):
    store = ddb.descriptors
    recipe = store.recipe("xenonpy", stats=["max"])
    with pytest.raises(XtalbaseError, match="have no composition-.* descriptors yet"):
        store.matrix(recipe, _ids(ddb, "nsites<10")[:2], compute=False)
    with pytest.raises(NotFound, match="not stored: 999999"):
        store.matrix(recipe, [999999])
    with pytest.raises(XtalbaseError, match="not both"):
        store.frame(recipe, ids=[1], filter="nsites<3")
    with pytest.raises(NotFound, match="no descriptor recipe 'nope'"):
        store.recipe("nope")


def test_cli_writes_the_matrix_and_lists_recipes(ddb, tmp_path):
    out = tmp_path / "magpie.parquet"
    result = CliRunner().invoke(app, ["--db", ddb.url, "describe", "--recipe", "magpie", "--filter", 'elements HAS "O"', "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert frame.index.name == "structure_id" and frame.shape == (len(_ids(ddb, 'elements HAS "O"')), 132)
    listed = CliRunner().invoke(app, ["--db", ddb.url, "describe", "--list", "--json"])
    assert "magpie" in listed.output
    bad = CliRunner().invoke(app, ["--db", ddb.url, "describe", "--out", str(tmp_path / "x.xlsx")])
    assert bad.exit_code != 0 and ".parquet" in str(bad.exception)


def test_structural_recipes_are_cached_and_computed_alike_by_worker_processes(ddb):
    from xtalbase.descriptors.structural import structural_preset

    ids = _ids(ddb, 'nsites<=4 AND NOT elements HAS "Am"')[:4]
    assert len(ids) >= 2
    store = ddb.descriptors
    serial = store.matrix("rdf", ids)
    assert serial.values.shape == (len(ids), 80) and not serial.errors
    fresh = store.recipe("rdf", r_max=6.0)
    pooled = store.matrix(fresh, ids, workers=2)
    assert pooled.computed == len(ids)
    np.testing.assert_allclose(pooled.values, serial.values[:, :60])
    frame = ddb.describe("crystalnn", ids=ids[:2])
    assert frame.shape == (2, 244)
    rows = ddb.query(f"id={ids[0]}").structures()
    np.testing.assert_allclose(frame.iloc[0].to_numpy(), structural_preset("crystalnn").transform(rows)[0])


def test_failures_are_retried_on_request_and_recipes_are_named_unambiguously(ddb):
    [am] = _ids(ddb, 'elements HAS "Am"')
    store = ddb.descriptors
    recipe = store.recipe("xenonpy", stats=["ave"])
    assert am in store.matrix(recipe, [am]).errors
    retried = store.matrix(recipe, [am], retry_failed=True)
    assert retried.computed == 1 and am in retried.errors  # the same reason again, one row
    assert store.recipe(recipe) is recipe and ddb.describe(recipe, ids=[am]).shape == (1, 58)
    with pytest.raises(NotFound):
        store.recipe(recipe.hash[:4])  # too short to name a recipe
    with pytest.raises(XtalbaseError, match="impute must be true or false"):
        store.recipe("magpie", impute="no")


def test_a_recipe_stored_with_other_table_data_is_refused(ddb):
    stored = ddb.descriptors.recipe("magpie")
    params = dict(stored.recipe.to_dict(), table_sha256="0" * 64)
    with pytest.raises(XtalbaseError, match="other magpie table data"):
        CompositionRecipe.from_dict(params)
    assert CompositionRecipe.from_dict(stored.recipe.to_dict()) == stored.recipe


def test_an_interrupted_computation_keeps_its_finished_chunks(ddb, monkeypatch):
    from xtalbase.descriptors import store as store_module

    monkeypatch.setattr(store_module, "CHUNK", 4)
    ids = _ids(ddb, 'NOT elements HAS "Am"')[:10]
    store = ddb.descriptors
    recipe = store.recipe("xenonpy", stats=["min"], properties=["atomic_number"])
    real = store_module._compute_chunk
    calls = []

    def interrupted_second_chunk(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return real(*args)

    monkeypatch.setattr(store_module, "_compute_chunk", interrupted_second_chunk)
    with pytest.raises(RuntimeError, match="interrupted"):
        store.matrix(recipe, ids)
    monkeypatch.setattr(store_module, "_compute_chunk", real)
    again = store.matrix(recipe, ids)
    assert again.computed == len(ids) - 4 and not again.errors  # the first chunk was committed and is not recomputed
