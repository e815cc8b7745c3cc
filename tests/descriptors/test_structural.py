"""Structural descriptors on hand-checkable crystals (bcc, fcc, rock salt), their invariances and errors, and
matminer's CrystalNN fingerprint where matminer is installed."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TEST_DATA
from xtalbase.descriptors.structural import (
    ADFRecipe,
    CrystalNNRecipe,
    RDFRecipe,
    StructuralDescriptorError,
    adf_histogram,
    rdf_histogram,
    site_feature_names,
    structural_preset,
)
from xtalbase.errors import XtalbaseError
from xtalbase.platform.convert import StructureArrays

#: Small Materials Project structures of tests/data (cubic, tetragonal, hexagonal, monoclinic; 4-10 sites) for the
#: matminer comparison.
MP_CIFS = ["xrd/mp/mp-21067", "xrd/mp/mp-21089", "xrd/mp/mp-867865", "query/mp_cgcnn/mp-21344"]


def _cubic(a: float, frac: list[list[float]], z: list[int]) -> StructureArrays:
    return StructureArrays(np.eye(3) * a, np.array(z), np.array(frac, dtype=float))


FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
BCC_FE = _cubic(2.87, [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26])
FCC_CU = _cubic(3.61, FCC, [29] * 4)
NACL = _cubic(5.64, FCC + [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]], [11] * 4 + [17] * 4)


def _supercell(s: StructureArrays, reps: tuple[int, int, int]) -> StructureArrays:
    shifts = np.array([(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])], dtype=float)
    frac = ((s.frac_coords[None, :, :] + shifts[:, None, :]) / np.array(reps)).reshape(-1, 3)
    return StructureArrays(s.cell * np.array(reps)[:, None], np.tile(s.numbers, len(shifts)), frac)


def _mp(name: str):
    from pymatgen.core import Structure

    return Structure.from_file(TEST_DATA / f"{name}.cif")


@pytest.fixture(scope="module")
def hand_fingerprints() -> dict[str, dict[str, float]]:
    recipe = CrystalNNRecipe()
    X = recipe.transform([BCC_FE, FCC_CU, NACL], labels=["Fe", "Cu", "NaCl"])
    return {label: dict(zip(recipe.names(), row)) for label, row in zip(["Fe", "Cu", "NaCl"], X)}


# --------------------------------------------------------------------------- CrystalNN


def test_crystalnn_has_cspml_244_columns_in_matminer_order():
    recipe = structural_preset("crystalnn")
    names = recipe.names()
    assert len(site_feature_names()) == 61 and len(names) == 244
    assert names[:5] == ["mean wt CN_1", "std_dev wt CN_1", "minimum wt CN_1", "maximum wt CN_1", "mean sgl_bd CN_1"]
    assert names[-1] == "maximum wt CN_24" and "mean octahedral CN_6" in names and "mean q6 CN_12" in names


def test_bcc_iron_is_bcc_with_cn_8_and_every_site_alike(hand_fingerprints):
    fe = hand_fingerprints["Fe"]
    # CrystalNN weighs 8 (first shell) against 14 (with the second shell 15% further): both CNs are present
    assert fe["mean wt CN_8"] > 0.5 and fe["mean wt CN_8"] + fe["mean wt CN_14"] == pytest.approx(1.0)
    assert fe["mean body-centered cubic CN_8"] / fe["mean wt CN_8"] == pytest.approx(1.0, abs=1e-6)
    assert all(v == pytest.approx(0.0, abs=1e-12) for k, v in fe.items() if k.startswith("std_dev"))


def test_fcc_is_cuboctahedral_and_rock_salt_octahedral(hand_fingerprints):
    cu, nacl = hand_fingerprints["Cu"], hand_fingerprints["NaCl"]
    assert cu["mean wt CN_12"] == pytest.approx(1.0) and cu["mean cuboctahedral CN_12"] == pytest.approx(1.0, abs=1e-6)
    assert nacl["mean wt CN_6"] == pytest.approx(1.0) and nacl["mean octahedral CN_6"] == pytest.approx(1.0, abs=1e-6)
    assert nacl["minimum octahedral CN_6"] == pytest.approx(nacl["maximum octahedral CN_6"])
    assert nacl["mean wt CN_4"] == 0.0


def test_crystalnn_is_supercell_invariant_and_ignores_species():
    recipe = CrystalNNRecipe()
    s = _mp("xrd/mp/mp-21089")
    arrays = StructureArrays(s.lattice.matrix, np.array([site.specie.Z for site in s]), s.frac_coords)
    relabelled = arrays._replace(numbers=np.full(len(s), 14))
    X = recipe.transform([arrays, _supercell(arrays, (2, 1, 1)), relabelled])
    assert np.allclose(X[1], X[0], atol=1e-9) and np.allclose(X[2], X[0], atol=1e-12)
    # every site computed (symprec=None) agrees with copies of equivalent sites
    assert np.allclose(CrystalNNRecipe(symprec=None).transform([arrays]), X[:1], atol=1e-9)


def test_crystalnn_matches_matminer_site_stats_fingerprint():
    pytest.importorskip("matminer", reason="matminer is not installed (optional; only this cross-check uses it)")
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint
    from matminer.featurizers.structure.sites import SiteStatsFingerprint

    reference = SiteStatsFingerprint(CrystalNNFingerprint.from_preset("ops", distance_cutoffs=None, x_diff_weight=0),
                                     stats=("mean", "std_dev", "minimum", "maximum"))
    structures = [_mp(name) for name in MP_CIFS]
    expected = np.array([reference.featurize(s) for s in structures], dtype=float)
    assert CrystalNNRecipe().names() == reference.feature_labels()
    assert np.abs(CrystalNNRecipe(symprec=None).transform(structures) - expected).max() < 1e-12
    assert np.abs(CrystalNNRecipe().transform(structures) - expected).max() < 1e-6


# --------------------------------------------------------------------------- RDF / ADF


def test_rdf_first_peak_integrates_to_the_coordination_number():
    for s, d1, cn in [(BCC_FE, 2.87 * np.sqrt(3) / 2, 8), (FCC_CU, 3.61 / np.sqrt(2), 12), (NACL, 5.64 / 2, 6)]:
        g = rdf_histogram(s, r_max=6.0, bin_width=0.05)
        assert int(np.argmax(g > 0)) == int(d1 // 0.05)  # the first non-empty bin holds the nearest neighbours
        rho = len(s.numbers) / abs(np.linalg.det(s.cell))
        shells = 4 / 3 * np.pi * np.diff((np.arange(len(g) + 1) * 0.05) ** 3)
        running = np.cumsum(g * rho * shells)
        assert running[int(d1 // 0.05)] == pytest.approx(cn)
        assert running[int(d1 // 0.05) - 1] == 0.0


def test_rdf_of_a_dilute_gas_is_about_one():
    # random points, each kept when at least 0.5 Å from the others (overlaps are rejected as bad input)
    rng = np.random.default_rng(0)
    box, kept = 30.0, np.zeros((0, 3))
    while len(kept) < 1500:
        p = rng.random(3)
        d = (kept - p + 0.5) % 1.0 - 0.5
        if not len(kept) or (np.linalg.norm(d * box, axis=1) > 0.5).all():
            kept = np.vstack([kept, p])
    gas = StructureArrays(np.eye(3) * box, np.ones(len(kept), dtype=int), kept)
    g = RDFRecipe(r_max=8.0, bin_width=0.5).transform([gas], labels=["gas"])[0]
    assert abs(g[2:].mean() - 1.0) < 0.03


def test_adf_of_fcc_has_its_four_angles():
    h = adf_histogram(FCC_CU, cutoff=3.0, bins=36)  # the 12 nearest neighbours only: 66 pairs
    assert h.sum() == pytest.approx(1.0)
    expected = {60: 24 / 66, 90: 12 / 66, 120: 24 / 66, 180: 6 / 66}
    for angle, fraction in expected.items():
        assert h[min(angle // 5, 35)] == pytest.approx(fraction)
    assert np.count_nonzero(h) == 4


def test_histograms_are_supercell_invariant():
    big = _supercell(NACL, (2, 1, 1))
    for recipe in (structural_preset("rdf"), structural_preset("adf")):
        X = recipe.transform([NACL, big])
        assert X.shape == (2, len(recipe.names())) and np.allclose(X[0], X[1])


def test_adf_without_neighbours_is_all_zero():
    lonely = _cubic(5.0, [[0, 0, 0]], [1])
    assert not ADFRecipe(cutoff=3.5).transform([lonely]).any()


# --------------------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", ["crystalnn", "rdf", "adf"])
def test_recipes_round_trip_and_reject_unknown_options(name: str):
    recipe = structural_preset(name)
    assert recipe.input == "structure" and isinstance(recipe.version, int)
    again = type(recipe).from_dict(recipe.to_dict())
    assert again == recipe and again.to_dict() == recipe.to_dict()
    with pytest.raises(StructuralDescriptorError, match="unknown .* option"):
        type(recipe).from_dict({**recipe.to_dict(), "colour": "blue"})


def test_presets_and_parameters_are_checked():
    assert len(structural_preset("rdf").names()) == 80 and len(structural_preset("adf").names()) == 36
    assert structural_preset("rdf").names()[24] == "rdf_2.4-2.5" and structural_preset("adf").names()[-1] == "adf_175-180"
    # integer parameters are stored as the floats they mean, so 8 and 8.0 give one recipe hash
    assert RDFRecipe(r_max=8, bin_width=0.1).to_dict() == {"r_max": 8.0, "bin_width": 0.1}
    assert ADFRecipe(cutoff=3, bins=36.0).to_dict() == {"cutoff": 3.0, "bins": 36}
    with pytest.raises(StructuralDescriptorError, match="unknown structural preset"):
        structural_preset("soap")
    with pytest.raises(StructuralDescriptorError, match="whole number of bins"):
        RDFRecipe(r_max=8.0, bin_width=0.3)
    with pytest.raises(StructuralDescriptorError, match="statistic"):
        CrystalNNRecipe(stats=("median",))


@pytest.mark.parametrize("recipe", [CrystalNNRecipe(), RDFRecipe(), ADFRecipe()], ids=lambda r: r.kind)
def test_bad_structures_name_the_record_and_the_reason(recipe):
    empty = StructureArrays(np.eye(3) * 4.0, np.zeros(0, dtype=int), np.zeros((0, 3)))
    flat = StructureArrays(np.array([[4.0, 0, 0], [0, 4.0, 0], [4.0, 4.0, 0]]), np.array([1]), np.zeros((1, 3)))
    overlapping = _cubic(4.0, [[0, 0, 0], [0.01, 0, 0]], [1, 1])
    cases = [(empty, "no sites"), (flat, "degenerate cell"), (overlapping, "overlapping")]
    for bad, reason in cases:
        with pytest.raises(StructuralDescriptorError, match=f"structure mp-bad.*{reason}") as err:
            recipe.transform([BCC_FE, bad], labels=["mp-ok", "mp-bad"])
        assert isinstance(err.value, XtalbaseError)
    with pytest.raises(StructuralDescriptorError, match="structure #1"):
        recipe.transform([BCC_FE, empty])
    assert recipe.transform([]).shape == (0, len(recipe.names()))
