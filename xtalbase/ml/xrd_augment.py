"""Measured-looking scans from computed stick patterns, peak-picked like a measured scan.

Models trained on computed stick patterns see every reflection; peak picking on a measured scan finds only
the clear ones, resolves Cu Kα2 doublets at high angle, and moves, merges or loses peaks. This module turns
one computed pattern (sticks: 2θ in degrees at the XRD recipe's wavelength, intensity scaled to 100) into a
synthetic laboratory scan and runs the measured-scan peak picking on it
(:func:`xtalbase.xrd.scans.find_peaks` with the defaults that ``xtalbase predict --pattern`` imports with),
so training rows and measured scans come out of one pipeline. Per synthetic scan, drawn from ``rng``:

1. **Preferred orientation**: each stick's intensity times a log-normal factor ``exp(N(0, po_sigma))``.
   March–Dollase needs the hkl and a texture axis, which stored sticks do not carry; an independent random
   factor per peak is the documented stand-in (it changes relative intensities the way texture does,
   without the correlation between related reflections).
2. **Cu Kα1/Kα2**: each stick's d-spacing (``d = λ / 2 sin θ`` at ``wavelength``, the Kα average the
   patterns were computed at) gives a Kα1 line (``kalpha1``, weight ``1 / (1 + r)``) and, with probability
   ``kalpha2_probability``, a Kα2 line (``kalpha2``, weight ``r / (1 + r)``, ``r = kalpha2_ratio``).
3. **Zero shift**: every line moves by the same ``U(-zero_shift, zero_shift)`` degrees.
4. **Broadening**: area-normalised pseudo-Voigt lines; FWHM ``H(θ) = w sqrt(1 + u tan²θ)`` (Caglioti's
   ``H² = U tan²θ + V tanθ + W`` with ``V = 0``, ``W = w²``, ``U = u w²``), ``w`` log-uniform in
   ``[fwhm_min, fwhm_max]`` degrees, ``u`` uniform in ``[0, caglioti_max]``; Lorentzian fraction ``η``
   uniform in ``[0, eta_max]`` (rendered by FFT, :func:`render_lines`).
5. **Foreign peaks**: with probability ``impurity_probability``, 1 to ``impurity_max`` extra lines at random 2θ
   within the scan, each 1-10 % (log-uniform) of the strongest line's area: a minor second phase, the sample
   holder or a stray reflection, which measured scans of nominally single phases show and computed patterns never do.
6. **Counts, background, noise**: the pattern is scaled to a peak count log-uniform in
   ``[counts_min, counts_max]``; a smooth background is added (a level of ``U(0.02, background_max)`` ×
   the peak count, a random linear and quadratic trend, a rise towards low angle, and with probability 0.3 a
   broad amorphous hump at 15-35°); counts are Poisson.
7. **Peak picking** on the scan (2θ from ``scan_min`` to ``scan_max`` + 2°, step ``scan_step``): SNIP
   background, Savitzky–Golay smoothing, prominence ≥ 2 % of the strongest peak. Weak peaks are lost where
   they fall below that threshold or under the noise, close lines merge, doublets split.

The random stream of a copy is ``SeedSequence([seed, int(exact_hash[:16], 16), copy])``: it depends on the
recipe's seed, the structure's exact hash and the copy number, never on row order or database ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from xtalbase.xrd.constants import WAVELENGTHS

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from xtalbase.ml.features import FeatureRecipe
    from xtalbase.ml.xrd_inputs import Fold
    from xtalbase.xrd.scans import Scan

Peaks = tuple[np.ndarray, np.ndarray]

#: The simulation's options and defaults (stored in an augmented feature recipe; see the module docstring).
AUGMENT_DEFAULTS: dict[str, Any] = {
    "n_augment": 5, "seed": 0, "include_clean": True,
    "wavelength": WAVELENGTHS["CuKa"], "kalpha1": WAVELENGTHS["CuKa1"], "kalpha2": WAVELENGTHS["CuKa2"],
    "kalpha2_ratio": 0.5, "kalpha2_probability": 1.0,
    "fwhm_min": 0.05, "fwhm_max": 0.5, "caglioti_max": 1.0, "eta_max": 0.7, "zero_shift": 0.1, "po_sigma": 0.3,
    "counts_min": 10000.0, "counts_max": 200000.0, "background_max": 0.3,
    "impurity_probability": 0.5, "impurity_max": 2,
    "scan_min": 10.0, "scan_max": 90.0, "scan_step": 0.02,
}
#: The rendering grid is padded by this many FWHM on each side (Lorentzian tails wrapping past it are < 0.1 % of a peak).
LINE_WINDOW = 15.0
#: Lines whose FWHM differ by less than this fraction share one line shape when rendered.
FWHM_GROUP = 0.03
#: Blank 2θ beyond ``scan_max`` so that SNIP and smoothing treat the last peaks as a measured scan's inner peaks.
SCAN_MARGIN = 2.0
#: Sticks weaker than this fraction of the strongest are not drawn (far below the noise of any simulated scan).
MIN_STICK = 1e-4


def copy_rng(seed: int, exact_hash: str, copy: int) -> np.random.Generator:
    """The random stream of copy ``copy`` of the structure with ``exact_hash`` (hex) under recipe seed ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(str(exact_hash)[:16], 16), int(copy)]))


def scan_grid(params: Mapping[str, Any]) -> np.ndarray:
    """2θ points (degrees) of a synthetic scan: ``scan_min`` to ``scan_max`` + :data:`SCAN_MARGIN` in ``scan_step`` steps."""
    lo, hi, step = float(params["scan_min"]), float(params["scan_max"]) + SCAN_MARGIN, float(params["scan_step"])
    return lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)


def synthetic_scan(two_theta: np.ndarray, intensity: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator) -> "Scan":
    """One simulated laboratory scan (counts on :func:`scan_grid`) of a computed stick pattern (see the module docstring)."""
    from xtalbase.xrd.scans import Scan

    p = {**AUGMENT_DEFAULTS, **dict(params)}
    x = scan_grid(p)
    tt = np.asarray(two_theta, dtype=float)
    inten = np.asarray(intensity, dtype=float)
    keep = (inten > MIN_STICK * inten.max()) & (tt > 0) if len(inten) else np.zeros(0, dtype=bool)
    tt, inten = tt[keep], inten[keep]
    # draws in a fixed order, whatever the options, so one option does not reshuffle the others' values
    po = np.exp(rng.normal(0.0, float(p["po_sigma"]), len(tt)))
    with_ka2 = rng.random() < float(p["kalpha2_probability"])
    shift = rng.uniform(-1.0, 1.0) * float(p["zero_shift"])
    w = float(np.exp(rng.uniform(np.log(float(p["fwhm_min"])), np.log(float(p["fwhm_max"])))))
    u = rng.uniform(0.0, float(p["caglioti_max"]))
    eta = rng.uniform(0.0, float(p["eta_max"]))
    peak_counts = float(np.exp(rng.uniform(np.log(float(p["counts_min"])), np.log(float(p["counts_max"])))))
    background = _background(x, rng, float(p["background_max"]))
    # foreign lines are drawn after the other distortions, so those stay the same whatever the foreign-line options
    n_foreign = int(rng.integers(1, int(p["impurity_max"]) + 1)) if int(p["impurity_max"]) > 0 else 0
    foreign = rng.random() < float(p["impurity_probability"])
    foreign_tt = rng.uniform(float(p["scan_min"]), float(p["scan_max"]), max(n_foreign, 0))
    foreign_share = np.exp(rng.uniform(np.log(0.01), np.log(0.10), max(n_foreign, 0)))

    d = float(p["wavelength"]) / (2.0 * np.sin(np.radians(tt / 2.0)))
    ratio = float(p["kalpha2_ratio"]) if with_ka2 else 0.0
    centres, areas = [], []
    for lam, weight in ((float(p["kalpha1"]), 1.0 / (1.0 + ratio)), (float(p["kalpha2"]), ratio / (1.0 + ratio))):
        if weight <= 0:
            continue
        s = lam / (2.0 * d)
        ok = s < 1.0
        centres.append(np.degrees(2.0 * np.arcsin(s[ok])) + shift)
        areas.append(inten[ok] * po[ok] * weight)
    if foreign and n_foreign and len(areas) and len(areas[0]):
        centres.append(foreign_tt)
        areas.append(foreign_share * float(np.concatenate(areas).max()))
    c = np.concatenate(centres) if centres else np.zeros(0)
    a = np.concatenate(areas) if areas else np.zeros(0)
    fwhm = w * np.sqrt(1.0 + u * np.tan(np.radians(c / 2.0)) ** 2)
    signal = render_lines(x, c, a, fwhm, eta)
    top = signal.max() if len(signal) else 0.0
    expected = background * peak_counts
    if top > 0:
        expected = expected + signal * (peak_counts / top)
    counts = rng.poisson(np.maximum(expected, 0.0)).astype(float)
    return Scan(x, counts, float(p["wavelength"]), None, {"synthetic": True})


def render_lines(x: np.ndarray, centres: np.ndarray, areas: np.ndarray, fwhm: np.ndarray, eta: float) -> np.ndarray:
    """Area-normalised pseudo-Voigt lines summed on the uniform grid ``x`` (degrees), (len(x),) float64.

    ``centres``, ``areas``, ``fwhm`` are (nlines,) arrays (degrees, any intensity unit, degrees); ``eta`` is the
    Lorentzian fraction. The cost does not grow with the number of lines: lines are binned onto the grid
    (linear interpolation between the two nearest points keeps each centroid) in groups of FWHM within
    :data:`FWHM_GROUP` of each other, and each group is convolved with its line shape through the analytic
    Fourier transforms (Gaussian ``exp(-2π²σ²ν²)``, Lorentzian ``exp(-π H |ν|)``) on a grid padded by
    :data:`LINE_WINDOW` FWHM on each side, so wrapped tails stay out of the scan.
    """
    n = len(x)
    out = np.zeros(n)
    ok = (areas > 0) & np.isfinite(centres) & (fwhm > 0)
    if not ok.any() or n < 2:
        return out
    c, a, h = centres[ok], areas[ok], fwhm[ok]
    step = float(x[1] - x[0])
    pad = int(np.ceil(LINE_WINDOW * float(h.max()) / step))
    size = 1 << int(np.ceil(np.log2(n + 2 * pad)))
    pos = (c - x[0]) / step + pad  # fractional index on the padded grid
    inside = (pos >= 0) & (pos <= size - 2)
    c, a, h, pos = c[inside], a[inside], h[inside], pos[inside]
    if not len(c):
        return out
    nu = np.fft.rfftfreq(size, d=step)  # cycles per degree
    group = np.floor(np.log(h / h.min()) / np.log1p(FWHM_GROUP)).astype(np.int64)
    spectrum = np.zeros(len(nu), dtype=complex)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    for g in np.unique(group):
        sel = group == g
        binned = np.bincount(lo[sel], a[sel] * (1.0 - frac[sel]), minlength=size)[:size]
        binned += np.bincount(lo[sel] + 1, a[sel] * frac[sel], minlength=size)[:size]
        width = float(np.average(h[sel], weights=a[sel])) if a[sel].sum() > 0 else float(h[sel].mean())
        sigma = width / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        shape = (1.0 - eta) * np.exp(-2.0 * (np.pi * sigma * nu) ** 2) + eta * np.exp(-np.pi * width * nu)
        spectrum += np.fft.rfft(binned) * shape
    # bins hold areas; dividing by the step makes the result a density (area-normalised lines, counts per degree)
    return np.fft.irfft(spectrum, n=size)[pad:pad + n] / step


def _background(x: np.ndarray, rng: np.random.Generator, level_max: float) -> np.ndarray:
    """A smooth, positive background in units of the peak count: a trend, a low-angle rise and maybe an amorphous hump."""
    t = (x - x[0]) / max(float(x[-1] - x[0]), 1e-9)
    level = rng.uniform(0.02, max(level_max, 0.02))
    slope, curve = rng.uniform(-0.6, 0.3), rng.uniform(0.0, 0.6)
    rise, decay = rng.uniform(0.0, 1.0), rng.uniform(3.0, 15.0)
    hump, centre, width = rng.random() < 0.3, rng.uniform(15.0, 35.0), rng.uniform(3.0, 8.0)
    shape = 1.0 + slope * t + curve * (t - 0.5) ** 2 + rise * np.exp(-(x - x[0]) / decay)
    if hump:
        shape = shape + rng.uniform(0.2, 1.0) * np.exp(-0.5 * ((x - centre) / width) ** 2)
    return level * np.maximum(shape, 0.1)


def picked_peaks(scan: "Scan", params: Mapping[str, Any]) -> Peaks:
    """Peaks of ``scan`` picked with the measured-scan defaults, within ``scan_min``-``scan_max``: (2θ degrees, height 0-100)."""
    from xtalbase.xrd.scans import find_peaks

    found = find_peaks(scan)
    keep = (found.two_theta >= float(params["scan_min"])) & (found.two_theta <= float(params["scan_max"]))
    return found.two_theta[keep], found.intensity[keep]


def augmented_peaks(two_theta: np.ndarray, intensity: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator) -> Peaks:
    """The picked peaks of one synthetic scan of a computed stick pattern (:func:`synthetic_scan` then :func:`picked_peaks`)."""
    return picked_peaks(synthetic_scan(two_theta, intensity, params, rng), params)


def augment_rows(recipe: "FeatureRecipe", peaks: Sequence[Peaks], exact_hashes: Sequence[str], copies: Sequence[int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Features of the augmented copies ``copies`` of each pattern, and the pattern index of each row.

    Returns ``X`` (len(peaks) * len(copies), n_features) float32, rows grouped by pattern (copies in the given
    order), and ``source`` (same rows,) int64 indices into ``peaks``.
    """
    rows, source = [], []
    for i, ((tt, inten), h) in enumerate(zip(peaks, exact_hashes)):
        for k in copies:
            picked = augmented_peaks(tt, inten, recipe.params, copy_rng(int(recipe.params["seed"]), h, int(k)))
            rows.append(recipe.row(*picked))
            source.append(i)
    if not rows:
        return np.zeros((0, len(recipe.names())), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.vstack(rows).astype(np.float32), np.asarray(source, dtype=np.int64)


def augment_fold(session: "Session", fold: "Fold", recipe_id: int, recipe: "FeatureRecipe", *, copies: Sequence[int] | None = None,
                 include_clean: bool | None = None) -> "Fold":
    """``fold`` with each structure's computed pattern replaced by augmented copies (and its clean row when asked).

    ``copies`` defaults to ``range(n_augment)`` and ``include_clean`` to the recipe's option. Rows: the clean rows
    (as in ``fold``) first, then each structure's copies in order. Every row stays in the fold of its structure;
    ``exact_hashes`` stays one per structure, so the fold's set hash (the model's training-set hash) is unchanged.
    """
    from xtalbase.ml.xrd_inputs import Fold
    from xtalbase.platform.repositories.patterns import computed_peaks

    copies = list(range(int(recipe.params["n_augment"]))) if copies is None else list(copies)
    clean = bool(recipe.params["include_clean"]) if include_clean is None else include_clean
    found = computed_peaks(session, fold.ids.tolist(), recipe_id)
    peaks = [found[int(i)] for i in fold.ids]
    X, source = augment_rows(recipe, peaks, fold.exact_hashes, copies)
    if clean:
        X = np.vstack([fold.X, X]).astype(np.float32)
        source = np.concatenate([np.arange(len(fold), dtype=np.int64), source])
    return Fold(fold.ids[source], X, fold.y[source], list(fold.exact_hashes), fold.crystal_systems[source])


__all__ = ["AUGMENT_DEFAULTS", "augment_fold", "augment_rows", "augmented_peaks", "copy_rng", "picked_peaks", "render_lines",
           "scan_grid", "synthetic_scan"]
