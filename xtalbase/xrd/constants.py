"""Physical tables the engine needs: named X-ray wavelengths and atomic scattering-factor coefficients.

The scattering coefficients are the ones pymatgen ships
(``pymatgen/analysis/diffraction/atomic_scattering_params.json``, four ``(a_i, b_i)``
pairs per element, Z = 1..98), read from the installed package *without importing
pymatgen*, so the database path never pays pymatgen's import time.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np

from xtalbase.errors import XtalbaseError

#: Named radiations, wavelength in Å (the usual tabulated Kα / Kα1 / Kα2 / Kβ1 lines; Kα is the weighted mean).
WAVELENGTHS: dict[str, float] = {
    "CuKa": 1.54184, "CuKa2": 1.54439, "CuKa1": 1.54056, "CuKb1": 1.39222,
    "MoKa": 0.71073, "MoKa2": 0.71359, "MoKa1": 0.70930, "MoKb1": 0.63229,
    "CrKa": 2.29100, "CrKa2": 2.29361, "CrKa1": 2.28970, "CrKb1": 2.08487,
    "FeKa": 1.93735, "FeKa2": 1.93998, "FeKa1": 1.93604, "FeKb1": 1.75661,
    "CoKa": 1.79026, "CoKa2": 1.79285, "CoKa1": 1.78896, "CoKb1": 1.63079,
    "AgKa": 0.560885, "AgKa2": 0.563813, "AgKa1": 0.559421, "AgKb1": 0.497082,
}

MAX_Z = 118


def wavelength_of(radiation: str) -> float:
    """Wavelength in Å of a named radiation (``"CuKa"``, ``"MoKa1"``...); clear error for unknown names."""
    try:
        return WAVELENGTHS[radiation]
    except KeyError:
        raise XtalbaseError(f"unknown radiation {radiation!r}; known: {', '.join(WAVELENGTHS)} (or give a wavelength in Å)") from None


def _params_path() -> Path:
    spec = importlib.util.find_spec("pymatgen")
    if spec is None or not spec.submodule_search_locations:
        raise XtalbaseError("pymatgen is not installed: its atomic_scattering_params.json table is needed for XRD")
    return Path(next(iter(spec.submodule_search_locations))) / "analysis" / "diffraction" / "atomic_scattering_params.json"


@functools.cache
def scattering_table() -> tuple[np.ndarray, np.ndarray]:
    """Coefficients indexed by atomic number: ``coeffs`` (MAX_Z+1, 4, 2) float64 and ``known`` (MAX_Z+1,) bool.

    The atomic scattering factor is ``f(s) = Z - 41.78214 s² Σ_i a_i exp(-b_i s²)`` with
    ``s = sin θ / λ`` in Å⁻¹ (the form pymatgen's ``XRDCalculator`` uses).
    """
    from ase.data import atomic_numbers

    raw = json.loads(_params_path().read_text())
    coeffs = np.zeros((MAX_Z + 1, 4, 2))
    known = np.zeros(MAX_Z + 1, dtype=bool)
    for symbol, pairs in raw.items():
        z = atomic_numbers.get(symbol)
        if z is None:  # isotopes (D) have their own entry; sites carry elements, so they never use it
            continue
        coeffs[z, : len(pairs)] = pairs
        known[z] = True
    return coeffs, known
