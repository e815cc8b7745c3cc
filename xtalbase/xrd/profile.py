"""Peak broadening: a stick pattern spread onto a fixed 2θ grid (Gaussian or pseudo-Voigt)."""

from __future__ import annotations

import numpy as np

from xtalbase.errors import XtalbaseError

#: Default profile grid: 2θ from 5° to 90° in 0.02° steps (4,251 points).
DEFAULT_GRID = (5.0, 90.0, 0.02)
#: Profile peaks are evaluated within this many FWHM of their centre (Gaussian tails are < 1e-15 there).
PROFILE_WINDOW = 8.0


def profile_grid(grid: tuple[float, float, float] = DEFAULT_GRID) -> np.ndarray:
    """2θ points (degrees) of ``grid`` = (start, stop, step), stop included when on the grid."""
    start, stop, step = (float(v) for v in grid)
    if not step > 0 or stop <= start:
        raise XtalbaseError(f"profile grid must be (start, stop, step) with stop > start and step > 0, got {grid}")
    return start + step * np.arange(int(np.floor((stop - start) / step + 1e-9)) + 1)


def profile(two_theta: np.ndarray, intensity: np.ndarray, *, grid: tuple[float, float, float] = DEFAULT_GRID, fwhm: float = 0.2,
            shape: str = "gaussian", eta: float = 0.5, normalize: bool = True) -> np.ndarray:
    """The peaks broadened onto ``grid`` (2θ degrees), ``(npoints,)`` float32.

    ``shape`` is ``"gaussian"`` or ``"pseudo-voigt"`` (``eta`` Lorentzian fraction, both parts with the
    same ``fwhm`` in degrees). Each peak contributes ``intensity * shape(2θ - centre)`` with unit peak
    height; the sum is scaled to a maximum of 1 unless ``normalize=False``.
    """
    x = profile_grid(grid)
    tt = np.asarray(two_theta, dtype=float)
    inten = np.asarray(intensity, dtype=float)
    if not fwhm > 0:
        raise XtalbaseError(f"fwhm must be positive (degrees), got {fwhm}")
    if shape not in ("gaussian", "pseudo-voigt"):
        raise XtalbaseError(f"profile shape must be 'gaussian' or 'pseudo-voigt', got {shape!r}")
    y = np.zeros(len(x))
    start, step = x[0], x[1] - x[0] if len(x) > 1 else 1.0
    # pseudo-Voigt's Lorentzian tails decay slowly: evaluate it on the whole grid; Gaussians only near their centre.
    half = len(x) if shape == "pseudo-voigt" else int(np.ceil(PROFILE_WINDOW * fwhm / step))
    offsets = np.arange(-half, half + 1)
    centre = np.rint((tt - start) / step).astype(np.int64)
    idx = centre[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < len(x))
    dx = start + idx * step - tt[:, None]
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    g = np.exp(-0.5 * (dx / sigma) ** 2)
    if shape == "pseudo-voigt":
        g = (1 - eta) * g + eta / (1 + (2 * dx / fwhm) ** 2)
    np.add.at(y, idx[valid], (inten[:, None] * g)[valid])
    if normalize and y.max() > 0:
        y /= y.max()
    return y.astype(np.float32)
