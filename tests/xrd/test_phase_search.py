"""Phase search on hand-made scans (issue #23): the least-squares profile score, multi-phase search, weight fractions.

Scans here are made by an independent forward model (:func:`synthetic_scan`): the unscaled computed
intensities of real structures (``tests/data/xrd/references`` plus a few rock-salt/antifluorite cells built
with pymatgen), weighted as in Hill & Howard (intensity of phase i ∝ w_i / (ρ_i V_i²) · |F|²-intensity,
i.e. ∝ w_i / (M_i V_i) with M the cell mass), drawn as pseudo-Voigt peaks whose width grows with 2θ
(Caglioti), at the Cu Kα1 and Kα2 wavelengths (2:1), with a per-phase lattice strain, a zero shift, a
sloping background with an amorphous hump and Poisson noise. The search itself draws Gaussians, so the
peak shape is one of the things it has to tolerate. No database and no shared data are needed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tests.conftest import TEST_DATA
from xtalbase.errors import XtalbaseError
from xtalbase.schema.arrays import pack
from xtalbase.xrd import compute_xrd
from xtalbase.xrd.match import score_candidates
from xtalbase.xrd.peak_index import PeakIndex, build_index, element_mask, parse_elements
from xtalbase.xrd.phase_search import SearchSettings, peak_widths, search_phases
from xtalbase.xrd.scan_profile import blurred, kalpha_lines, pair_kernel, prepare_scan, render, two_theta_of
from xtalbase.xrd.scans import Scan, find_peaks

pytestmark = pytest.mark.filterwarnings("ignore")

CU_KA = 1.54184
#: Cu Kα1 and Kα2 (Å) and Kα2/Kα1 = 0.5, written out here rather than read from the module under test.
CU_LINES = ((1.540562, 1.0), (1.544390, 0.5))
SCAN_RANGE = (10.0, 88.0)
#: Structure ids of the many-peak decoys in the decoy index.
COMB_ID, BIG_CELL_ID = 900, 901


@dataclass
class Library:
    """Reference structures by name, their unscaled patterns (recipe: Cu Kα, 2θ 0-90°) and ids."""

    structures: dict[str, Structure]
    raw: dict[str, tuple[np.ndarray, np.ndarray]]  # name → (d Å, unscaled intensity)
    ids: dict[str, int]

    def name_of(self, structure_id: int) -> str:
        return {v: k for k, v in self.ids.items()}.get(structure_id, f"id {structure_id}")

    def raw_max(self, structure_id: int) -> float:
        name = self.name_of(structure_id)
        return float(self.raw[name][1].max()) if name in self.raw else 100.0

    def row(self, name: str) -> tuple:
        s = self.structures[name]
        d, inten = self.raw[name]
        return (self.ids[name], pack(d), pack(inten / inten.max() * 100), s.composition.chemical_system, s.composition.reduced_formula,
                s.get_space_group_info()[1], float(s.density), float(s.volume))


@cache
def library() -> Library:
    structures = {p.stem: Structure.from_file(p) for p in sorted((TEST_DATA / "xrd" / "references").glob("*.cif"))}
    structures["LiF_225"] = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.027), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    structures["Li2O_225"] = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.611), ["O", "Li"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    structures["NaCl_225"] = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.640), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    names = sorted(structures)
    patterns = compute_xrd([structures[n] for n in names], wavelength=CU_KA, two_theta=(0, 90), scaled=False)
    raw = {n: (np.asarray(p.d_spacing, float), np.asarray(p.intensity, float)) for n, p in zip(names, patterns)}
    return Library(structures, raw, {n: i + 1 for i, n in enumerate(names)})


@cache
def index(decoys: bool = False) -> PeakIndex:
    """A peak index of every library phase; with ``decoys`` also two many-peak candidates (see :func:`decoy_rows`)."""
    lib = library()
    rows = [lib.row(n) for n in lib.structures] + (decoy_rows() if decoys else [])
    return build_index(1, CU_KA, (0, 90), "test", rows)


@cache
def decoy_rows() -> list[tuple]:
    """Two candidates with hundreds of reflections: a comb with a stick every 0.2° 2θ (10-90°, all at 100), and a
    random 60-atom P1 Mn20O40 cell of 3,450 Å³ (hundreds of reflections above 1 %)."""
    tt = np.arange(10.0, 90.0001, 0.2)
    comb_d = CU_KA / (2 * np.sin(np.radians(tt / 2)))
    rng = np.random.default_rng(0)
    big = Structure(Lattice.from_parameters(14.1, 15.3, 16.7, 83, 97, 104), ["Mn"] * 20 + ["O"] * 40, rng.random((60, 3)))
    p = compute_xrd(big, wavelength=CU_KA, two_theta=(0, 90))[0]
    assert (p.intensity >= 1).sum() > 300
    return [(COMB_ID, pack(comb_d), pack(np.full(len(tt), 100.0)), "Mn-O", "Comb", 1, 5.0, 1000.0),
            (BIG_CELL_ID, pack(p.d_spacing), pack(p.intensity), "Mn-O", "Mn20O40", 1, float(big.density), float(big.volume))]


def synthetic_scan(mix: dict[str, tuple[float, ...]], seed: int, *, shift: float = 0.04, counts: float = 5000.0,
                   eta: float = 0.3, background: float = 260.0, tails: float = 15.0,
                   lines: tuple[tuple[float, float], ...] = CU_LINES) -> Scan:
    """A measured-like scan (10-90° 2θ, step 0.01°; Cu Kα unless ``lines`` says otherwise) of ``mix`` = {phase:
    (weight fraction, strain[, peak-width factor])}.

    Phase i contributes w_i / (M_i V_i) × its unscaled intensities (Hill & Howard) as peak areas; the strongest net point is
    about ``counts``; peaks are pseudo-Voigt (Lorentzian fraction ``eta``) with a Caglioti FWHM (0.09° at 30°,
    0.13° at 80°), drawn out to ``tails`` FWHM; the background falls from ``background`` + 80 to 80 counts, with a
    hump at 25°; counts are Poisson.
    """
    lib = library()
    rng = np.random.default_rng(seed)
    x = np.round(np.arange(10.0, 90.0001, 0.01), 4)
    y = np.zeros_like(x)
    for name, (weight, strain, *broad) in mix.items():
        s = lib.structures[name]
        d, inten = lib.raw[name]
        k = weight / (float(s.composition.weight) * float(s.volume))
        for lam, line_weight in lines:
            tt = np.degrees(2 * np.arcsin(lam / (2 * d * (1 + strain)))) + shift
            tan = np.tan(np.radians(tt / 2))
            fwhm = np.sqrt(0.004 * tan**2 - 0.002 * tan + 0.008) * (broad[0] if broad else 1.0)
            for centre, height, width in zip(tt, inten, fwhm):
                lo, hi = np.searchsorted(x, [centre - tails * width, centre + tails * width])
                u = (x[lo:hi] - centre) / width
                # a reflection's intensity is its peak's area: height × width
                y[lo:hi] += k * line_weight * height * (0.1 / width) * (eta / (1 + 4 * u * u) + (1 - eta) * np.exp(-4 * np.log(2) * u * u))
    y *= counts / y.max()
    wavelength = sum(lam * w for lam, w in lines) / sum(w for _, w in lines)
    return Scan(x, rng.poisson(y + true_background(x, background)).astype(float), round(wavelength, 5), f"synthetic {'+'.join(mix)} seed {seed}")


def true_background(x: np.ndarray, amplitude: float = 260.0) -> np.ndarray:
    """The background of :func:`synthetic_scan` (counts)."""
    return amplitude * np.exp(-(x - 10) / 25) + 80 + 60 * np.exp(-0.5 * ((x - 25) / 6) ** 2)


def identify(scan: Scan, idx: PeakIndex, settings: SearchSettings | None = None, weights: bool = True):
    lib = library()
    return search_phases(prepare_scan(scan, SCAN_RANGE), idx, idx.select(), settings or SearchSettings(),
                         raw_max=lib.raw_max if weights else None)


# --- the profile model: Kα doublet, closed-form inner products, the prepared scan --------------------------------------


def test_each_reflection_is_drawn_at_both_kalpha_lines_with_intensities_two_to_one():
    assert kalpha_lines(CU_KA) == ((1.54056, 1.0), (1.54439, 0.5))
    assert kalpha_lines(CU_KA, kalpha2=False) == ((CU_KA, 1.0),)
    assert kalpha_lines(1.54056) == ((1.54056, 1.0),)  # a Kα1-only wavelength keeps one line
    with pytest.raises(XtalbaseError, match="no Kα1/Kα2 doublet is known for λ = 1.2"):
        kalpha_lines(1.2, kalpha2=True)
    x = np.round(np.arange(50.0, 70.0, 0.005), 4)
    d = CU_KA / (2 * np.sin(np.radians(30.0)))  # 2θ = 60° at the Kα mean
    profile = render(np.array([d]), np.array([100.0]), x, kalpha_lines(CU_KA), 0.05)
    peaks = x[[i for i in range(1, len(x) - 1) if profile[i] > profile[i - 1] and profile[i] >= profile[i + 1] and profile[i] > 10]]
    expected = two_theta_of(np.array([d, d]), 1.54056)[0], two_theta_of(np.array([d]), 1.54439)[0]
    np.testing.assert_allclose(peaks, expected, atol=0.005)
    assert expected[1] - expected[0] == pytest.approx(0.165, abs=0.005)  # the doublet splitting at 60° for Cu
    heights = np.interp(peaks, x, profile)
    assert heights[0] == pytest.approx(100, rel=0.01) and heights[1] / heights[0] == pytest.approx(0.5, rel=0.02)
    # strain scales d: +1 % moves the peak to lower angle by 2 tan θ · 1 % rad
    single = ((1.54056, 1.0),)
    moved = render(np.array([d]), np.array([1.0]), x, single, 0.05, strain=0.01)
    expected_move = np.degrees(2 * np.tan(np.radians(expected[0] / 2)) * 0.01)
    assert x[moved.argmax()] == pytest.approx(expected[0] - expected_move, abs=0.02)
    assert x[render(np.array([d]), np.array([1.0]), x, single, 0.05, shift=0.3).argmax()] == pytest.approx(expected[0] + 0.3, abs=0.006)


def test_blurred_and_pair_kernel_are_the_inner_products_of_drawn_peaks():
    step, fwhm = 0.02, 0.15
    x = np.round(np.arange(20.0, 40.0, step), 4)
    line = ((1.0, 1.0),)

    def stick(tt: float) -> np.ndarray:
        return render(np.array([1.0 / (2 * np.sin(np.radians(tt / 2)))]), np.array([1.0]), x, line, fwhm)

    a, b = stick(30.0), stick(30.07)
    assert float(a @ b) == pytest.approx(float(pair_kernel(np.array([0.07]), step, fwhm)[0]), rel=1e-3)
    assert float(a @ a) == pytest.approx(float(pair_kernel(np.zeros(1), step, fwhm)[0]), rel=1e-3)
    y = np.random.default_rng(1).random(len(x))
    for t in (25.0, 31.5, 36.78):  # on the grid: exact up to the 5σ truncation
        assert float(y @ stick(t)) == pytest.approx(float(np.interp(t, x, blurred(y, step, fwhm))), rel=1e-6)
    for t in (25.013, 36.777):  # between grid points: linear interpolation of the blurred profile
        assert float(y @ stick(t)) == pytest.approx(float(np.interp(t, x, blurred(y, step, fwhm))), rel=1e-2)


def test_prepared_scan_is_net_max_one_on_a_uniform_grid_with_its_peak_width():
    scan = synthetic_scan({"MnO_225": (1.0, 0.0)}, 0, shift=0.0)
    prepared = prepare_scan(scan, (20.0, 80.0))
    assert prepared.range == (20.0, 80.0) and prepared.step == 0.02 and np.allclose(np.diff(prepared.x), 0.02)
    assert prepared.y.max() == pytest.approx(1.0) and prepared.y.min() >= 0
    assert prepared.lines == kalpha_lines(CU_KA) and prepared.scale == pytest.approx(5000, rel=0.1)
    assert 0.06 <= prepared.fwhm <= 0.2  # Caglioti width 0.09-0.12° here
    assert (prepared.peaks.two_theta >= 20).all() and (prepared.peaks.two_theta <= 80).all()
    strongest = prepared.peaks.two_theta[prepared.peaks.intensity.argmax()]
    assert strongest == pytest.approx(two_theta_of(np.array([4.444 / 2]), CU_KA)[0], abs=0.05)  # MnO (200)
    assert np.median(prepared.background) == pytest.approx(np.median(true_background(prepared.x)), rel=0.35)
    with pytest.raises(XtalbaseError, match="wavelength is unknown"):
        prepare_scan(Scan(scan.two_theta, scan.intensity, None, "nowave.xy"))
    with pytest.raises(XtalbaseError, match="barely overlap"):
        prepare_scan(scan, (89.95, 120.0))
    with pytest.raises(XtalbaseError, match="no peak stands out of the noise"):
        prepare_scan(Scan(scan.two_theta, np.full(len(scan.two_theta), 50.0), CU_KA, "flat.xy"))


def test_search_settings_are_validated_and_peak_widths_double_up_to_the_cap():
    assert peak_widths(0.1) == [0.1, 0.2, 0.4, 0.8] and peak_widths(0.7) == [0.35, 0.7] and peak_widths(1.5) == [0.75, 1.5]
    assert peak_widths(0.2) == [0.1, 0.2, 0.4, 0.8]  # half the width too, when at least 3 grid steps
    for bad, message in (({"max_phases": 0}, "max_phases"), ({"max_strain": 0.3}, "max_strain"), ({"max_shift": 2}, "max_shift"),
                         ({"min_gain": 1.0}, "min_gain"), ({"beam": 0}, "beam must be >= 1"), ({"shortlist": 0}, "shortlist")):
        with pytest.raises(XtalbaseError, match=message):
            SearchSettings(**bad)
    scan = prepare_scan(synthetic_scan({"MnO_225": (1.0, 0.0)}, 0), SCAN_RANGE)
    assert SearchSettings().kernels(scan) == (max(scan.fwhm, 0.1), max(3 * max(scan.fwhm, 0.1), 0.4))
    assert SearchSettings(fit_fwhm=0.2, screen_fwhm=0.5).kernels(scan) == (0.2, 0.5)
    with pytest.raises(XtalbaseError, match="no candidate phases"):
        search_phases(scan, index(), np.array([], dtype=np.int64))


# --- the score: the true phase beats candidates with hundreds of peaks ----------------------------------------------


@pytest.mark.parametrize("truth", ["MnO_225", "NaCl_225", "TiO2_141", "Mn2O3_206"])
def test_true_phase_ranks_first_and_many_peak_candidates_do_not_outrank_it(truth):
    lib = library()
    result = identify(synthetic_scan({truth: (1.0, 0.001)}, 3), index(decoys=True), SearchSettings(top=20))
    ranked = [r["structure_id"] for r in result.ranking]
    scores = {r["structure_id"]: r["score"] for r in result.ranking}
    assert ranked[0] == lib.ids[truth], result.ranking[:3]
    assert scores[lib.ids[truth]] > 0.8
    for decoy in (COMB_ID, BIG_CELL_ID):
        assert scores.get(decoy, 0.0) < 0.5 * scores[lib.ids[truth]], result.ranking
    found = [p.structure_id for p in result.phases]
    assert found[0] == lib.ids[truth] and COMB_ID not in found and BIG_CELL_ID not in found, [p.to_dict() for p in result.phases]
    main = result.phases[0]
    assert main.strain == pytest.approx(0.001, abs=0.0015) and result.shift == pytest.approx(0.04, abs=0.05)
    assert main.intensity_share > 0.95 and main.cosine > 0.9 and len(main.explained_peaks) >= 3


def test_old_peak_pairing_score_prefers_the_comb_in_a_crowded_scan_and_the_profile_score_does_not():
    """Why the peak-pairing score of :mod:`xtalbase.xrd.match` was replaced: in a four-phase scan (about 60 picked
    peaks) a comb with a stick every 0.2° pairs with nearly every picked peak and outscores two of the real phases;
    the profile fit ranks it below all four."""
    lib = library()
    mix = {"TiO2_141": (0.2, 0.0015), "Mn2O3_206": (0.3, -0.002), "LiMnO2_59": (0.3, 0.001), "Ti2O3_167": (0.2, 0.0)}
    scan = synthetic_scan(mix, 3)
    idx = index(decoys=True)
    names = sorted(lib.structures)
    candidates = [(lib.raw[n][0], lib.raw[n][1] / lib.raw[n][1].max() * 100) for n in names]
    comb = decoy_rows()[0]
    candidates.append((np.frombuffer(comb[1]), np.frombuffer(comb[2])))
    old = score_candidates(find_peaks(scan), CU_KA, candidates, SCAN_RANGE)[:, 0]
    old_by_name = dict(zip(names + ["Comb"], old))
    beaten = [n for n in mix if old_by_name["Comb"] > old_by_name[n]]
    assert len(beaten) >= 2, old_by_name

    result = identify(scan, idx, SearchSettings(max_phases=4, top=20))
    ranked = [r["structure_id"] for r in result.ranking]
    assert COMB_ID in ranked
    assert all(ranked.index(lib.ids[n]) < ranked.index(COMB_ID) for n in mix), result.ranking
    assert {lib.name_of(p.structure_id) for p in result.phases} == set(mix), [p.to_dict() for p in result.phases]


NOISE_FLOOR = ("noise floor: SNIP on the smoothed counts still lies about 1.3 σ under the true background; prepare_scan "
               "subtracts one noise σ from the net profile instead (scan_profile.NOISE_FLOOR)")


@pytest.mark.parametrize("truth", ["MnO_225", "TiO2_141"])
def test_a_noisier_scan_does_not_report_a_many_peak_candidate(truth):
    """Peaks of 1,000 counts on an 80-340 count background (the strongest peak 50 σ above it; every reflection of
    the phase is plain to the eye): the true phase is found and no many-peak decoy. Before the counts were smoothed
    for SNIP and a noise σ taken off the net profile, a decoy was reported with about 90 % of the fitted intensity,
    fitting the pedestal the net profile kept over the whole range (see the next test)."""
    lib = library()
    result = identify(synthetic_scan({truth: (1.0, 0.001)}, 3, counts=1000), index(decoys=True))
    found = [p.structure_id for p in result.phases]
    assert lib.ids[truth] in found
    assert BIG_CELL_ID not in found and COMB_ID not in found, [p.to_dict() for p in result.phases]


@pytest.mark.xfail(strict=True, reason=NOISE_FLOOR)
def test_background_follows_the_middle_of_the_noise_not_its_lower_envelope():
    """The cause of the pedestal: on raw Poisson counts SNIP's clipping keeps the lowest excursions, so the background
    it returns lies about 3 σ (σ = √background) under the true one and y - background is about +3 σ everywhere.
    Smoothing the counts first (e.g. the Savitzky-Golay filter :func:`find_peaks` already uses) brings it to
    about 1.3 σ; subtracting a noise allowance (about 2 σ) from the net profile before clipping removes the rest."""
    scan = synthetic_scan({"MnO_225": (1.0, 0.0)}, 0, shift=0.0)
    prepared = prepare_scan(scan, SCAN_RANGE)
    true = true_background(prepared.x)
    z = (true - prepared.background) / np.sqrt(true)
    assert abs(float(np.median(z))) < 1.0, f"background {float(np.median(z)):.2f} σ under the true one"


# --- synthetic mixtures: phases and weight fractions -------------------------------------------------------------------

MIXTURES = {
    "MnO+anatase": {"MnO_225": (0.6, 0.002), "TiO2_141": (0.4, -0.001)},
    "Mn2O3+LiF": {"Mn2O3_206": (0.7, 0.0), "LiF_225": (0.3, 0.003)},
    "minor MnO in Ti2O3": {"MnO_225": (0.15, 0.001), "Ti2O3_167": (0.85, 0.0)},
    "anatase+Mn2O3+LiMnO2": {"TiO2_141": (0.3, 0.0015), "Mn2O3_206": (0.4, -0.002), "LiMnO2_59": (0.3, 0.001)},
    "rutile+pyrolusite+MnO": {"TiO2_136": (0.5, 0.001), "MnO2_136": (0.3, 0.0), "MnO_225": (0.2, -0.002)},
    "pyrolusite+LiF+anatase": {"MnO2_136": (0.25, -0.001), "LiF_225": (0.25, 0.002), "TiO2_141": (0.5, 0.0)},
}
SHIFTS = {0: 0.04, 1: -0.03, 2: 0.0}


@pytest.mark.parametrize("seed", sorted(SHIFTS))
@pytest.mark.parametrize("name", sorted(MIXTURES))
def test_mixture_phases_and_weight_fractions_are_recovered(name, seed):
    lib = library()
    mix = MIXTURES[name]
    result = identify(synthetic_scan(mix, seed, shift=SHIFTS[seed]), index())
    found = {lib.name_of(p.structure_id): p for p in result.phases}
    report = {n: (round(p.weight_fraction or -1, 3), round(p.strain, 4), len(p.explained_peaks)) for n, p in found.items()}
    assert set(found) == set(mix), report  # every phase recovered, none beyond the mixture
    for phase, (weight, strain) in mix.items():
        assert found[phase].weight_fraction == pytest.approx(weight, abs=0.10), report
        assert found[phase].strain == pytest.approx(strain, abs=0.002), report
        assert len(found[phase].explained_peaks) >= 2, report
    assert result.shift == pytest.approx(SHIFTS[seed], abs=0.06)
    assert sum(p.weight_fraction for p in result.phases) == pytest.approx(1.0)
    assert result.residual < 0.1 and result.residual_steps[0] == 1.0 and result.residual_steps[-1] == result.residual
    assert result.profiles.shape == (len(result.phases), len(result.x))


def test_a_wrong_first_phase_is_pruned_from_the_answer():
    """Regression: on this scan (background 200 + 80 counts, tails cut at 10 FWHM) a beam state that took wurtzite MnO
    (P6_3mc) first and MnO + anatase after it kept the wurtzite at 1.6 wt% with no picked peak of its own, 0.0003
    of |y|² below the correct two-phase state; fixed by pruning phases that explain no picked peak."""
    lib = library()
    mix = MIXTURES["MnO+anatase"]
    for seed in (0, 1):
        result = identify(synthetic_scan(mix, seed, counts=4000, background=200, tails=10), index())
        assert {lib.name_of(p.structure_id) for p in result.phases} == set(mix), [p.to_dict() for p in result.phases]


@pytest.mark.parametrize("lines", [((1.788965, 1.0), (1.792850, 0.5)), ((0.709300, 1.0), (0.713590, 0.5))], ids=["CoKa", "MoKa"])
def test_a_scan_at_another_wavelength_is_searched_through_d_spacings(lines):
    """Patterns stored for Cu Kα; a Co Kα or Mo Kα scan is compared through d, over the 2θ range (at the scan's
    wavelength) where the Cu patterns hold every reflection (about 0-108° for Co, 0-37° for Mo)."""
    from xtalbase.xrd.identify import search_range

    lib = library()
    mix = MIXTURES["MnO+anatase"]
    scan = synthetic_scan(mix, 0, lines=lines)
    assert scan.wavelength in (1.79026, 0.71073)
    low, high = search_range(scan, index(), SearchSettings())
    assert low == pytest.approx(0.0) and high == pytest.approx(np.degrees(2 * np.arcsin(scan.wavelength / (2 * index().d_min * 1.015))))
    prepared = prepare_scan(scan, (low, high))
    assert len(prepared.lines) == 2 and prepared.lines[0][0] == pytest.approx(lines[0][0], abs=1e-4)
    result = search_phases(prepared, index(), index().select(), SearchSettings(), raw_max=lib.raw_max)
    found = {lib.name_of(p.structure_id): p for p in result.phases}
    assert set(found) == set(mix), [p.to_dict() for p in result.phases]
    for phase, (weight, strain) in mix.items():
        assert found[phase].weight_fraction == pytest.approx(weight, abs=0.05)
        assert found[phase].strain == pytest.approx(strain, abs=0.002)


def test_a_poorly_crystalline_phase_beside_a_sharp_one():
    """60 wt% MnO with sharp peaks (FWHM 0.09-0.13°) and 40 wt% anatase with peaks four times broader, eight noise
    realisations. Regression: the scan's FWHM estimate (then the median width of the eight strongest picked peaks,
    measured from the grid point after each peak rather than its maximum) ranged over 0.06-0.36° between them, and
    where it came out at 0.15° or more MnO was fitted too broad (seed 3 without shift: MnO 34 wt%, anatase 66 wt%)."""
    lib = library()
    mix = {"MnO_225": (0.6, 0.002), "TiO2_141": (0.4, -0.001, 4.0)}
    wrong = {}
    for seed in range(4):
        for shift in (0.04, 0.0):
            scan = synthetic_scan(mix, seed, shift=shift)
            result = identify(scan, index())
            found = {lib.name_of(p.structure_id): round(p.weight_fraction, 3) for p in result.phases}
            if set(found) != set(mix) or any(abs(found[n] - w[0]) > 0.10 for n, w in mix.items()):
                wrong[(seed, shift)] = (found, round(prepare_scan(scan, SCAN_RANGE).fwhm, 3))
    assert not wrong, f"(seed, shift): (weight fractions, scan FWHM): {wrong}"


def test_weight_fractions_are_none_without_raw_max_and_scale_free_with_it():
    lib = library()
    mix = MIXTURES["Mn2O3+LiF"]
    scan = synthetic_scan(mix, 0)
    without = identify(scan, index(), weights=False)
    assert all(p.weight_fraction is None for p in without.phases) and {lib.name_of(p.structure_id) for p in without.phases} == set(mix)
    # the counting level changes the scales, not the fractions
    louder = identify(Scan(scan.two_theta, scan.intensity * 7.0, CU_KA, "x7"), index())
    base = identify(scan, index())
    assert {p.structure_id: round(p.weight_fraction, 4) for p in louder.phases} == pytest.approx(
        {p.structure_id: round(p.weight_fraction, 4) for p in base.phases}, abs=2e-3)
    summary = base.to_dict()
    assert set(summary) == {"phases", "shift", "residual", "residual_steps", "unexplained_peaks", "ranking", "n_candidates", "settings"}
    assert summary["n_candidates"] == len(index()) and summary["settings"]["scan_fwhm"] == pytest.approx(prepare_scan(scan, SCAN_RANGE).fwhm)


# --- the peak index ------------------------------------------------------------------------------------------------------


def test_index_selects_by_elements_required_elements_and_ids():
    lib = library()
    idx = index()
    name = lambda positions: sorted(lib.name_of(int(i)) for i in idx.structure_ids[positions])  # noqa: E731
    assert name(idx.select(["Mn", "O"])) == ["Mn2O3_206", "MnO2_136", "MnO_186", "MnO_225"]
    assert name(idx.select("O Ti Mn".split(), require=["Ti"])) == ["Ti2O3_167", "TiO2_136", "TiO2_141"]
    assert name(idx.select(["Li", "Mn", "O", "F"], require=["Li"])) == ["Li2O_225", "LiF_225", "LiMnO2_59"]
    assert name(idx.select(require=["Cl"])) == ["NaCl_225"]
    assert len(idx.select(["Zr", "O"])) == 0 and len(idx.select()) == len(idx) == len(lib.structures)
    assert name(idx.select(["Mn", "O"], structure_ids=[lib.ids["MnO_225"], lib.ids["TiO2_141"]])) == ["MnO_225"]
    with pytest.raises(XtalbaseError, match="unknown element 'Xx'"):
        idx.select(["Mn", "Xx"])
    with pytest.raises(XtalbaseError, match="unknown element 'X'"):
        element_mask(["X"])
    assert parse_elements("Ti, Zn;O-Mn  Li") == ["Ti", "Zn", "O", "Mn", "Li"] and parse_elements(["Ti", " O "]) == ["Ti", "O"]
    assert parse_elements(None) is None
    # bits beyond 64: U (92) and Og (118) land in the second word
    mask = element_mask(["H", "U", "Og"])
    assert mask[0] == 1 and mask[1] == (1 << (92 - 65)) | (1 << (118 - 65))


def test_index_holds_each_pattern_d_descending_with_its_cell_data():
    lib = library()
    idx = index()
    position = int(np.flatnonzero(idx.structure_ids == lib.ids["Mn2O3_206"])[0])
    d, inten, owner = idx.lines(np.array([position]))
    raw_d, raw_i = lib.raw["Mn2O3_206"]
    order = np.argsort(-raw_d)
    np.testing.assert_allclose(d, raw_d[order], rtol=1e-6)
    np.testing.assert_allclose(inten, raw_i[order] / raw_i.max() * 100, rtol=1e-5)
    assert (owner == 0).all() and inten.max() == pytest.approx(100)
    s = lib.structures["Mn2O3_206"]
    assert idx.formulas[position] == "Mn2O3" and idx.spacegroups[position] == 206
    assert idx.cell_mass[position] == pytest.approx(float(s.composition.weight), rel=1e-6)
    assert idx.volume[position] == pytest.approx(s.volume)
    assert idx.d_min == pytest.approx(CU_KA / (2 * np.sin(np.radians(45))))
    two = idx.lines(np.array([position, 0]))
    assert len(two[0]) == len(d) + idx.offsets[1] - idx.offsets[0] and (np.diff(two[2]) >= 0).all()


def test_index_bytes_round_trip_and_another_layout_version_is_an_error():
    idx = index(decoys=True)
    again = PeakIndex.from_bytes(idx.to_bytes())
    assert (again.recipe_id, again.wavelength, again.two_theta_range, again.fingerprint) == (1, CU_KA, (0.0, 90.0), "test")
    for name in ("structure_ids", "offsets", "d", "intensity", "element_mask", "spacegroups", "cell_mass", "volume", "formulas"):
        a, b = getattr(idx, name), getattr(again, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    buffer = io.BytesIO()
    with np.load(io.BytesIO(idx.to_bytes()), allow_pickle=False) as z:  # plain arrays, no pickles
        np.savez(buffer, **{k: (np.int64(99) if k == "version" else z[k]) for k in z.files})
    with pytest.raises(XtalbaseError, match="peak index version 99"):
        PeakIndex.from_bytes(buffer.getvalue())
    empty = build_index(2, CU_KA, (0, 90), "0:0:0", [])
    assert len(empty) == 0 and len(PeakIndex.from_bytes(empty.to_bytes())) == 0


def test_a_cell_strained_along_one_axis_is_fitted_per_axis_when_asked():
    """LiMnO2 (Pmmn) measured with a 1 % shorter and c 3 % longer cell than stored (a DFT-style anisotropic error):
    with Miller indices given, the search reports per-axis strains near (-1 %, 0, +3 %) and fits better than the
    uniform strain does."""
    from xtalbase.xrd.identify import reflections_of

    lib = library()
    stored = lib.structures["LiMnO2_59"]
    strained = stored.copy()
    a, b, c = stored.lattice.abc
    strained.lattice = Lattice.from_parameters(a * 0.99, b, c * 1.03, *stored.lattice.angles)
    pattern = compute_xrd(strained, wavelength=CU_KA, two_theta=(0, 100), scaled=False)[0]
    x = np.round(np.arange(10.0, 90.0001, 0.01), 4)
    y = render(pattern.d_spacing, pattern.intensity, x, CU_LINES, 0.1)
    y = np.random.default_rng(0).poisson(y * 5000 / y.max() + true_background(x)).astype(float)
    scan = prepare_scan(Scan(x, y, CU_KA, "strained LiMnO2"), SCAN_RANGE)
    idx = index()
    options = {"wavelength": CU_KA, "two_theta": (0, 90), "merge_tol": 1e-5, "scaled_tol": 1e-3, "debye_waller": None}
    provider = {lib.ids[n]: reflections_of(s, options) for n, s in lib.structures.items()}
    settings = SearchSettings(max_phases=1)
    uniform = search_phases(scan, idx, idx.select(), settings, raw_max=lib.raw_max)
    axes = search_phases(scan, idx, idx.select(), settings, raw_max=lib.raw_max, reflections=provider.get)
    phase = axes.phases[0]
    assert lib.name_of(phase.structure_id) == "LiMnO2_59" and uniform.phases[0].axis_strains is None
    np.testing.assert_allclose(phase.axis_strains, (-0.01, 0.0, 0.03), atol=0.004)
    assert axes.residual < 0.5 * uniform.residual, (axes.residual, uniform.residual)
