"""Powder X-ray diffraction: the batched engine, recipes, stored patterns, measured scans and matching.

``compute_xrd`` is the public entry point (also ``xtalbase.compute_xrd``); the database
builder is :func:`xtalbase.xrd.builder.compute_missing`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.xrd.constants import WAVELENGTHS, wavelength_of
from xtalbase.xrd.engine import Pattern, SiteBatch, batch_from_arrays, compute_batch

__all__ = ["Pattern", "compute_xrd", "to_batch", "WAVELENGTHS"]


def compute_xrd(
    structures: Any,
    radiation: str | float = "CuKa",
    two_theta: tuple[float, float] | None = (0, 90),
    *,
    hkl: bool = False,
    wavelength: float | None = None,
    merge_tol: float = 1e-5,
    scaled_tol: float = 1e-3,
    debye_waller: dict[str | int, float] | None = None,
    scaled: bool = True,
    single_precision: bool = False,
) -> list[Pattern]:
    """Powder XRD patterns of many structures in one vectorised call.

    Parameters
    ----------
    structures : Structure | Atoms | StructureArrays | sequence of them
        pymatgen ``Structure`` (disordered sites keep their occupancies), ASE ``Atoms`` or
        :class:`xtalbase.platform.convert.StructureArrays`; a single one is accepted too.
    radiation : str or float
        Named radiation (``"CuKa"`` = 1.54184 Å, see :data:`WAVELENGTHS`) or a wavelength in Å.
    two_theta : (float, float) or None
        2θ range in degrees; ``None`` is the whole limiting sphere (2θ up to 180°).
    hkl : bool
        Also return ``hkl_families`` per peak (slower; pure Python labelling).
    wavelength : float, optional
        Wavelength in Å; overrides ``radiation``.
    merge_tol, scaled_tol : float
        Reflections with equal ``round(2θ / merge_tol)`` merge; peaks with scaled
        intensity <= ``scaled_tol`` are dropped (pymatgen's 1e-5° and 1e-3).
    debye_waller : dict, optional
        Isotropic B factors in Å² by element symbol or atomic number.
    scaled : bool
        Scale intensities to a maximum of 100 (default) or keep absolute values.
    single_precision : bool
        Structure-factor products in complex64 (peaks unchanged to ~1e-4 in scaled intensity).

    Returns
    -------
    list of Pattern
        One per structure, in input order: ``two_theta`` (degrees), ``intensity`` (max 100),
        ``d_spacing`` (Å), and ``hkl_families`` when ``hkl=True``.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> p = compute_xrd([nacl])[0]
    >>> round(float(p.two_theta[p.intensity.argmax()]), 2)
    31.72
    """
    lam = float(wavelength) if wavelength is not None else (float(radiation) if isinstance(radiation, (int, float)) else wavelength_of(radiation))
    if not lam > 0:
        raise XtalbaseError(f"wavelength must be positive, got {lam}")
    if two_theta is not None:
        lo, hi = float(two_theta[0]), float(two_theta[1])
        if not 0 <= lo < hi <= 180:
            raise XtalbaseError(f"2θ range must satisfy 0 <= min < max <= 180 degrees, got ({lo}, {hi})")
        two_theta = (lo, hi)
    batch = to_batch(structures)
    dw = _debye_waller_by_z(debye_waller)
    return compute_batch(batch, lam, two_theta, merge_tol=merge_tol, scaled_tol=scaled_tol, debye_waller=dw,
                         hkl=hkl, scaled=scaled, single_precision=single_precision)


def to_batch(structures: Any) -> SiteBatch:
    """Convert structures (pymatgen, ASE, :class:`StructureArrays`, or a mix) into a :class:`SiteBatch`."""
    if _is_single(structures):
        structures = [structures]
    return batch_from_arrays([_as_arrays(s, i) for i, s in enumerate(structures)])


def _is_single(obj: Any) -> bool:
    return hasattr(obj, "lattice") or hasattr(obj, "get_scaled_positions") or (hasattr(obj, "cell") and hasattr(obj, "frac_coords") and hasattr(obj, "numbers"))


def _as_arrays(s: Any, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    if hasattr(s, "lattice") and hasattr(s, "sites"):  # pymatgen Structure
        return _pymatgen_arrays(s, index)
    if hasattr(s, "get_scaled_positions"):  # ASE Atoms
        return np.asarray(s.cell), s.numbers, s.get_scaled_positions(wrap=False), None
    if hasattr(s, "cell") and hasattr(s, "frac_coords") and hasattr(s, "numbers"):  # StructureArrays
        return s.cell, s.numbers, s.frac_coords, getattr(s, "occupancy", None)
    raise XtalbaseError(f"structure {index}: cannot compute XRD for a {type(s).__name__}; give a pymatgen Structure, ASE Atoms or StructureArrays")


_Z_OF: dict[Any, int] = {}


def _pymatgen_arrays(s: Any, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """One pass over the sites: atomic numbers, and occupancies only when a site is partial or mixed."""
    if getattr(s, "site_properties", {}).get("U11_cif") is not None:
        raise XtalbaseError(f"structure {index}: anisotropic displacement (U_cif site properties) is not supported; "
                            "remove them or give isotropic debye_waller factors")
    numbers, occupancy, site_of = [], [], []
    ordered = True
    for i, site in enumerate(s):
        for sp, amount in site.species.items():
            z = _Z_OF.get(sp)
            if z is None:
                z = getattr(sp, "Z", None)
                if z is None:
                    raise XtalbaseError(f"structure {index}: species {sp} has no atomic number")
                _Z_OF[sp] = z
            numbers.append(z)
            occupancy.append(amount)
            site_of.append(i)
            ordered = ordered and amount == 1
    frac = s.frac_coords
    if len(site_of) != len(frac) or not ordered:
        return s.lattice.matrix, np.array(numbers), frac[site_of], np.array(occupancy, dtype=float)
    return s.lattice.matrix, np.array(numbers), frac, None


def _debye_waller_by_z(factors: dict[str | int, float] | None) -> dict[int, float] | None:
    if not factors:
        return None
    from ase.data import atomic_numbers

    out = {}
    for key, value in factors.items():
        z = key if isinstance(key, int) else atomic_numbers.get(str(key))
        if z is None:
            raise XtalbaseError(f"debye_waller: unknown element {key!r}")
        out[int(z)] = float(value)
    return out
