"""A measured scan made ready for phase search: net profile on a uniform grid, peak width, and candidate line positions.

Everything the search compares lives on one uniform 2θ grid (``step`` degrees): the scan's net intensity
(counts smoothed, SNIP background and one noise σ removed, clipped at zero, scaled to a maximum of 1; see
:func:`net_counts`) and the candidates' broadened sticks.
Candidate peaks are unit-height Gaussians of FWHM ``w``; the inner products the least-squares fit needs
are then closed forms (see :func:`blurred` and :func:`pair_kernel`), so a candidate is scored from its stick
positions without drawing its profile.

**Kα2.** Laboratory Cu, Mo, Co, Fe, Cr and Ag tubes give a Kα1/Kα2 doublet whose splitting grows with 2θ
(0.16° at 60° for Cu). When the scan's wavelength is a Kα mean of :data:`KALPHA` (Cu Kα = 1.54184 Å, the
default), each computed reflection becomes two sticks at the Kα1 and Kα2 wavelengths with intensities 2:1;
a Kα1-only wavelength (1.54056 Å) keeps one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.xrd.engine import Pattern
from xtalbase.xrd.scans import Scan, check_scan, find_peaks, snip_background

#: Kα mean wavelength → ((Kα1 Å, weight), (Kα2 Å, weight)); weights 2:1 (the Kα2/Kα1 ratio 0.5).
KALPHA: dict[float, tuple[tuple[float, float], tuple[float, float]]] = {
    1.54184: ((1.54056, 1.0), (1.54439, 0.5)),
    0.71073: ((0.70930, 1.0), (0.71359, 0.5)),
    2.29100: ((2.28970, 1.0), (2.29361, 0.5)),
    1.93735: ((1.93604, 1.0), (1.93998, 0.5)),
    1.79026: ((1.78896, 1.0), (1.79285, 0.5)),
    0.560885: ((0.559421, 1.0), (0.563813, 0.5)),
}
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
#: Net intensity counts from this many noise σ above the background (the rest is taken for noise).
NOISE_FLOOR = 1.0
#: A picked peak must rise this many noise σ above its surroundings to count (a scan needs at least one).
MIN_SIGNAL = 5.0
#: Coarsest 2θ step (degrees) a scan may have: lab peaks are 0.05-0.3° wide.
MAX_SCAN_STEP = 0.1


@dataclass
class PreparedScan:
    """A scan on the search grid.

    ``x`` (n,) 2θ degrees (uniform, ``step``), ``y`` (n,) net intensity scaled to max 1, ``scale`` the counts
    of y = 1, ``background`` (n,) counts, ``fwhm`` the FWHM (degrees) of its sharp peaks (:func:`peak_fwhm`),
    ``lines`` the (wavelength Å, weight) pairs each reflection is drawn with, ``peaks`` the picked peaks that rise
    :data:`MIN_SIGNAL` noise σ above their surroundings.
    """

    x: np.ndarray
    y: np.ndarray
    step: float
    wavelength: float
    lines: tuple[tuple[float, float], ...]
    fwhm: float
    scale: float
    background: np.ndarray
    peaks: Pattern
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def range(self) -> tuple[float, float]:
        return float(self.x[0]), float(self.x[-1])


def kalpha_lines(wavelength: float, kalpha2: bool | None = None) -> tuple[tuple[float, float], ...]:
    """The (λ, weight) sticks of one reflection: the Kα1/Kα2 doublet for a known Kα mean (``kalpha2=None`` = auto)."""
    doublet = next((pair for mean, pair in KALPHA.items() if abs(mean - wavelength) < 2e-4), None)
    if kalpha2 is None:
        kalpha2 = doublet is not None
    if not kalpha2:
        return ((float(wavelength), 1.0),)
    if doublet is None:
        raise XtalbaseError(f"no Kα1/Kα2 doublet is known for λ = {wavelength:g} Å; known Kα means: "
                            f"{', '.join(f'{k:g}' for k in KALPHA)} (or turn Kα2 off)")
    return doublet


def prepare_scan(scan: Scan, two_theta_range: tuple[float, float] | None = None, *, step: float = 0.02,
                 background_width: float = 2.0, kalpha2: bool | None = None) -> PreparedScan:
    """``scan`` (wavelength set) as the search sees it, limited to ``two_theta_range`` (degrees) when given.

    Refuses a scan whose step is coarser than :data:`MAX_SCAN_STEP` or in which no picked peak rises :data:`MIN_SIGNAL`
    noise σ above its surroundings (flat, amorphous or pure-noise scans have no phase to find)."""
    scan = check_scan(scan)
    if scan.wavelength is None:
        raise XtalbaseError(f"{scan.path}: the scan's wavelength is unknown; give one")
    x0, y0 = np.asarray(scan.two_theta, float), np.asarray(scan.intensity, float)
    lo, hi = float(x0[0]), float(x0[-1])
    if two_theta_range is not None:
        lo, hi = max(lo, two_theta_range[0]), min(hi, two_theta_range[1])
    if hi - lo < 10 * step:
        raise XtalbaseError(f"{scan.path}: the scan ({x0[0]:g}-{x0[-1]:g}° 2θ) and the candidates' 2θ range "
                            f"({two_theta_range}) barely overlap; nothing to compare")
    scan_step = float(np.median(np.diff(x0)))
    if scan_step > MAX_SCAN_STEP:
        raise XtalbaseError(f"{scan.path}: 2θ step {scan_step:g}° is too coarse to resolve powder peaks (at most {MAX_SCAN_STEP:g}°)")
    smoothed, background, noise = net_counts(x0, y0, background_width)
    x = lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)
    net = np.interp(x, x0, np.maximum(smoothed - background - NOISE_FLOOR * noise, 0.0))
    top = float(net.max())
    peaks = find_peaks(scan, background_width=background_width)
    # a picked peak counts only where it rises MIN_SIGNAL noise σ above its surroundings (±0.5°): noise wiggles, also
    # those riding on an amorphous hump the background does not follow, are not peaks
    at = np.clip(np.searchsorted(x0, peaks.two_theta), 0, len(x0) - 1)
    reach = max(1, int(round(0.5 / scan_step)))
    left = np.array([smoothed[max(0, i - reach):i + 1].min() for i in at]) if len(at) else np.zeros(0)
    right = np.array([smoothed[i:i + reach + 1].min() for i in at]) if len(at) else np.zeros(0)
    prominence = smoothed[at] - np.maximum(left, right) if len(at) else np.zeros(0)
    significant = prominence >= MIN_SIGNAL * noise[at] if len(at) else np.zeros(0, dtype=bool)
    inside = (peaks.two_theta >= lo) & (peaks.two_theta <= hi) & significant
    if not inside.any() or not top > 1e-9 * max(float(np.abs(y0).max()), 1.0):
        raise XtalbaseError(f"{scan.path}: no peak stands out of the noise in {lo:g}-{hi:g}° 2θ (none rises {MIN_SIGNAL:g} noise "
                            f"σ above its surroundings): nothing crystalline to identify")
    peaks = Pattern(peaks.two_theta[inside], peaks.intensity[inside], peaks.d_spacing[inside], None, scan.wavelength, peaks.meta)
    return PreparedScan(x, net / top, step, float(scan.wavelength), kalpha_lines(scan.wavelength, kalpha2),
                        peak_fwhm(x0, smoothed - background, peaks), top, np.interp(x, x0, background), peaks,
                        {"path": scan.path, **scan.meta})


def net_counts(x: np.ndarray, y: np.ndarray, background_width: float = 2.0, smooth: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(smoothed counts, SNIP background, noise σ) of a scan, all (n,).

    SNIP on raw noisy counts follows the noise's lower edge, so a net profile clipped at zero keeps a positive floor
    that a candidate with hundreds of reflections can "fit"; the counts are therefore smoothed first (cubic
    Savitzky–Golay over ``smooth`` degrees), and the noise is taken as ``k·√background`` with ``k`` the robust (MAD)
    spread of the raw counts about the smooth ones, so the caller can subtract a noise floor.
    """
    from scipy.signal import savgol_filter

    step = float(np.median(np.diff(x)))
    window = max(5, int(round(smooth / step)) | 1)
    smoothed = savgol_filter(y, window, 3) if window < len(y) else np.asarray(y, float)
    background = snip_background(x, smoothed, background_width)
    scale = np.sqrt(np.maximum(background, 1.0))
    ratio = (y - smoothed) / scale
    k = 1.4826 * float(np.median(np.abs(ratio - np.median(ratio))))
    return smoothed, background, k * scale


def peak_fwhm(x: np.ndarray, net: np.ndarray, peaks: Pattern, n: int = 12, percentile: float = 25.0) -> float:
    """FWHM (degrees) of the sharp peaks: the ``percentile`` of the widths of the ``n`` strongest picked peaks (0.1°
    when there are none), within 0.03-1°. A low percentile, not the median: the search tries widths from this one
    upwards, and a sharp phase beside a dominant broad one must still get its own width."""
    from scipy.signal import peak_widths

    if not len(peaks):
        return 0.1
    strongest = peaks.two_theta[np.argsort(-peaks.intensity)[:n]]
    near = np.clip(np.searchsorted(x, strongest)[:, None] + np.arange(-3, 4)[None, :], 0, len(x) - 1)
    idx = near[np.arange(len(near)), net[near].argmax(axis=1)]  # the local maximum, where peak_widths measures from
    idx = np.unique(idx[(idx > 0) & (idx < len(x) - 1)])
    if not len(idx):
        return 0.1
    widths = peak_widths(net, idx, rel_height=0.5)[0] * float(np.median(np.diff(x)))
    widths = widths[np.isfinite(widths) & (widths > 0)]
    return float(np.clip(np.percentile(widths, percentile), 0.03, 1.0)) if len(widths) else 0.1


def blurred(y: np.ndarray, step: float, fwhm: float) -> np.ndarray:
    """``ŷ(t) = Σ_x y(x) G(x - t)`` on the grid, G a unit-height Gaussian of ``fwhm``: the inner product of
    ``y`` with a unit stick at t broadened by G, read off for any t by interpolation."""
    from scipy.ndimage import gaussian_filter1d

    sigma = fwhm * FWHM_TO_SIGMA / step
    return gaussian_filter1d(np.asarray(y, float), sigma, mode="constant", truncate=5.0) * (np.sqrt(2 * np.pi) * sigma)


def pair_kernel(delta: np.ndarray, step: float, fwhm: float) -> np.ndarray:
    """``Σ_x G(x - a) G(x - b)`` for ``delta = a - b`` (the grid sum of two unit-height Gaussians, exact up to
    sampling): ``σ√π / step · exp(-Δ² / 4σ²)``."""
    sigma = fwhm * FWHM_TO_SIGMA
    return (sigma * np.sqrt(np.pi) / step) * np.exp(-(np.asarray(delta) ** 2) / (4 * sigma * sigma))


def two_theta_of(d: np.ndarray, wavelength: float, strain: float | np.ndarray = 0.0) -> np.ndarray:
    """2θ (degrees) of d-spacings ``d`` (Å) scaled by ``1 + strain``; NaN beyond the limiting sphere."""
    s = wavelength / (2 * np.asarray(d, float) * (1 + np.asarray(strain, float)))
    with np.errstate(invalid="ignore"):
        return np.degrees(2 * np.arcsin(np.where(s <= 1, s, np.nan)))


def render(d: np.ndarray, intensity: np.ndarray, x: np.ndarray, lines: tuple[tuple[float, float], ...], fwhm: float,
           strain: float = 0.0, shift: float = 0.0) -> np.ndarray:
    """The broadened profile (n,) on grid ``x`` of sticks (d Å, intensity), each drawn at every (λ, weight) of ``lines``."""
    step = float(x[1] - x[0])
    sigma = fwhm * FWHM_TO_SIGMA
    half = int(np.ceil(5 * sigma / step))
    out = np.zeros(len(x))
    for wavelength, weight in lines:
        tt = two_theta_of(d, wavelength, strain) + shift
        keep = np.isfinite(tt) & (tt > x[0] - 5 * sigma) & (tt < x[-1] + 5 * sigma)
        tt, inten = tt[keep], np.asarray(intensity, float)[keep] * weight
        centre = np.rint((tt - x[0]) / step).astype(np.int64)
        idx = centre[:, None] + np.arange(-half, half + 1)[None, :]
        valid = (idx >= 0) & (idx < len(x))
        g = np.exp(-0.5 * ((x[0] + idx * step - tt[:, None]) / sigma) ** 2)
        np.add.at(out, idx[valid], (inten[:, None] * g)[valid])
    return out
