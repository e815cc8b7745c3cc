"""Compositional statistics against hand-computed values, the vendored tables' provenance, and matminer where installed."""

from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pytest

from tests.conftest import ROOT, shared
from xtalbase.descriptors import tables
from xtalbase.descriptors.compositional import CompositionError, CompositionRecipe, composition_preset, pack
from xtalbase.descriptors.tables import TableError, element_table


def _col(recipe: CompositionRecipe, X: np.ndarray, name: str) -> np.ndarray:
    return X[:, recipe.names().index(name)]


def test_xenonpy_table_has_58_properties_for_h_to_pu():
    t = element_table("xenonpy")
    assert len(t.properties) == 58 and t.properties[0] == "atomic_number"
    assert t.covered().tolist() == list(range(1, 95))
    assert np.array_equal(t.column("atomic_number")[1:95], np.arange(1, 95))
    assert t.column("atomic_weight")[26] == pytest.approx(55.845, abs=1e-3)  # Fe
    assert np.isnan(t.values[95]).all()


def test_magpie_table_reads_missing_entries_as_nan_and_imputes_the_mean():
    t = element_table("magpie")
    assert len(t.properties) == 22
    assert np.array_equal(t.column("Number")[1:113], np.arange(1, 113))
    sg = t.column("SpaceGroupNumber")
    lines = (tables.ELEMENTS_DIR / "magpie" / "SpaceGroupNumber.table").read_text().splitlines()
    missing = [z for z, line in enumerate(lines, start=1) if line.strip() == "Missing"]
    assert missing and np.isnan(sg[missing]).all()
    assert t.imputed()[missing[0], t.properties.index("SpaceGroupNumber")] == pytest.approx(np.nanmean(sg[1:]))


def test_every_vendored_file_is_listed_with_its_sha256_in_the_data_readme():
    readme = (ROOT / "xtalbase" / "data" / "README.md").read_text()
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (elements/\S+)$", readme, re.M))
    expected = {f"elements/{tables.XENONPY_FILE}": tables.XENONPY_SHA256,
                **{f"elements/magpie/{p}.table": h for p, h in tables.MAGPIE_SHA256.items()}}
    assert listed == expected
    assert "ElementEmbeddings" in readme and "matminer" in readme


def test_an_altered_table_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(tables.ELEMENTS_DIR, tmp_path / "elements")
    path = tmp_path / "elements" / tables.XENONPY_FILE
    path.write_text(path.read_text().replace("55.845", "55.846", 1))
    monkeypatch.setattr(tables, "ELEMENTS_DIR", tmp_path / "elements")
    with pytest.raises(TableError, match="altered"):
        tables._xenonpy()
    with pytest.raises(TableError, match="unknown element table"):
        element_table("nope")


def test_xenonpy_statistics_by_hand_for_fe2o3():
    r = CompositionRecipe("xenonpy", ("ave", "sum", "var", "max", "min", "gmean", "hmean"), properties=("atomic_number",))
    X = r.transform(["Fe2O3"])
    ave = (2 * 26 + 3 * 8) / 5
    expected = {"ave": ave, "sum": 76.0, "var": 0.4 * (26 - ave) ** 2 + 0.6 * (8 - ave) ** 2, "max": 26.0, "min": 8.0,
                "gmean": math.exp(0.4 * math.log(26) + 0.6 * math.log(8)), "hmean": 1 / (0.4 / 26 + 0.6 / 8)}
    assert r.names() == [f"{s}:atomic_number" for s in expected]
    np.testing.assert_allclose(X[0], list(expected.values()), rtol=1e-12)
    assert expected["var"] == pytest.approx(77.76)


def test_sums_use_the_reduced_formula_unless_asked_for_the_cell():
    cell = np.array([26] * 4 + [8] * 6)  # Fe4O6: a doubled Fe2O3 cell
    reduced = CompositionRecipe("xenonpy", ("sum", "ave"), properties=("atomic_number",))
    as_cell = CompositionRecipe("xenonpy", ("sum", "ave"), properties=("atomic_number",), basis="cell")
    assert reduced.transform([cell])[0].tolist() == pytest.approx([76.0, 15.2])
    assert as_cell.transform([cell])[0].tolist() == pytest.approx([152.0, 15.2])
    # non-integer amounts (partial occupancy) are never reduced
    assert reduced.transform([{"Fe": 0.5, "Co": 0.5}])[0, 0] == pytest.approx(0.5 * 26 + 0.5 * 27)


def test_geometric_and_harmonic_means_are_nan_for_non_positive_values():
    t = element_table("xenonpy")
    ea = t.column("electron_affinity")
    negative = int(np.flatnonzero(ea[1:95] < 0)[0]) + 1
    positive = int(np.flatnonzero(ea[1:95] > 0)[0]) + 1
    r = CompositionRecipe("xenonpy", ("gmean", "hmean", "ave"), properties=("electron_affinity",))
    X = r.transform([[negative, positive], [positive, positive]])
    assert np.isnan(X[0, :2]).all() and np.isfinite(X[0, 2])
    assert X[1].tolist() == pytest.approx([ea[positive]] * 3)


def test_magpie_statistics_by_hand_including_mode_ties():
    r = composition_preset("magpie")
    assert len(r.names()) == 132 and r.names()[:2] == ["MagpieData minimum Number", "MagpieData maximum Number"]
    X = r.transform(["Fe2O3", "NaCl"])
    got = {s: _col(r, X, f"MagpieData {s} Number") for s in ("minimum", "maximum", "range", "mean", "avg_dev", "mode")}
    assert [got[s][0] for s in got] == pytest.approx([8, 26, 18, 15.2, 0.4 * 10.8 + 0.6 * 7.2, 8])
    assert [got[s][1] for s in got] == pytest.approx([11, 17, 6, 14, 3, 11])  # equal fractions: the smaller value is the mode


def test_the_xenonpy_preset_has_290_columns_in_xenonpys_order():
    r = composition_preset("xenonpy")
    names = r.names()
    assert len(names) == 290 and names[0] == "ave:atomic_number" and names[58] == "sum:atomic_number" and names[-1] == "min:Polarizability"
    X = r.transform(["CaTiO3", np.array([20, 22, 8, 8, 8])])
    np.testing.assert_allclose(X[0], X[1], rtol=1e-12)  # element order differs: sums may differ in the last bit


def test_bad_compositions_name_the_record_and_the_reason():
    r = composition_preset("xenonpy")
    with pytest.raises(CompositionError, match=r"composition mp-1: element Am \(Z=95\) is not in the xenonpy table"):
        r.transform(["AmO2"], labels=["mp-1"])
    with pytest.raises(CompositionError, match="composition #1 is empty"):
        pack(["NaCl", {}])
    with pytest.raises(CompositionError, match="positive"):
        pack([{"Na": -1}])
    with pytest.raises(CompositionError, match="#0"):
        pack(["Xx2O"])
    with pytest.raises(CompositionError, match="unknown or no statistic"):
        CompositionRecipe(stats=("median",))
    with pytest.raises(CompositionError, match="unknown composition recipe option"):
        CompositionRecipe.from_dict({"tabel": "xenonpy"})
    # the magpie preset imputes unknown entries, as matminer does, so the same element is described there
    assert np.isfinite(composition_preset("magpie").transform(["AmO2"])).all()


def test_recipes_round_trip_through_their_dict():
    r = CompositionRecipe("magpie", ("mean", "range"), basis="cell", impute=True, layout="property", properties=("Number", "Row"))
    assert CompositionRecipe.from_dict(r.to_dict()) == r
    assert CompositionRecipe.from_dict({"stats": "ave,var"}).stats == ("ave", "var")


def test_a_batch_equals_one_composition_at_a_time():
    rng = np.random.default_rng(0)
    comps = [rng.integers(1, 95, size=rng.integers(1, 12)) for _ in range(200)]
    for recipe in (composition_preset("xenonpy"), composition_preset("magpie")):
        batch = recipe.transform(comps)
        one = np.vstack([recipe.transform([c]) for c in comps])
        np.testing.assert_allclose(batch, one, rtol=1e-12, atol=1e-12)


def test_magpie_preset_matches_matminer():
    pytest.importorskip("matminer", reason="matminer is not installed: the cross-check against its Magpie preset is skipped")
    import csv

    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition

    with shared("perov5", "test.csv").open() as fh:
        formulas = [row["formula"] for _, row in zip(range(60), csv.DictReader(fh))]
    formulas += ["Fe2O3", "NaCl", "LiFePO4", "Ba2YCu3O7", "UO2", "Cs3Bi2I9", "AmO2", "H2O"]
    ours = composition_preset("magpie")
    theirs = ElementProperty.from_preset("magpie", impute_nan=True)
    assert ours.names() == theirs.feature_labels()
    X = ours.transform(formulas)
    Y = np.array([theirs.featurize(Composition(f)) for f in formulas])
    np.testing.assert_allclose(X, Y, rtol=1e-9, atol=1e-9)
