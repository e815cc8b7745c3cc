"""Read a stored pattern back for display, and draw it: sticks with the broadened profile over them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xtalbase.errors import NotFound

if TYPE_CHECKING:
    from xtalbase.platform.database import Database


def load_pattern(db: "Database", structure_id: int, recipe: str | int | None = None) -> dict[str, Any]:
    """The stored computed pattern of ``structure_id`` for ``recipe``: peak arrays plus labels for display."""
    from sqlalchemy import select

    from xtalbase.schema import Structure, XrdPattern
    from xtalbase.schema.arrays import unpack
    from xtalbase.xrd.recipe import resolve_recipe

    with db.session() as s:
        rec = resolve_recipe(s, recipe)
        recipe_id = rec.id
        structure = s.get(Structure, structure_id)
        if structure is None:
            raise NotFound(f"no structure with id {structure_id}")
        pattern = s.scalars(select(XrdPattern).where(XrdPattern.structure_id == structure_id, XrdPattern.recipe_id == recipe_id,
                                                     XrdPattern.kind == "computed")).first()
        if pattern is None:
            raise NotFound(f"structure {structure_id} has no pattern for recipe {recipe_id} ({rec.name}): run `xtalbase xrd compute`")
        return {"structure_id": structure_id, "formula": structure.formula_reduced, "spacegroup": structure.spacegroup_number,
                "recipe_id": recipe_id, "recipe_name": rec.name, "wavelength": rec.wavelength,
                "two_theta_range": (rec.two_theta_min, rec.two_theta_max), "pattern_id": pattern.id,
                "two_theta": unpack(pattern.two_theta), "intensity": unpack(pattern.intensity), "d_spacing": unpack(pattern.d_spacing),
                "hkl_families": pattern.hkl_families}


def plot_pattern(info: dict[str, Any], path: str | Path, *, fwhm: float = 0.2) -> Path:
    """Write a PNG: peaks as sticks, the Gaussian-broadened profile over them, axes labelled."""
    from xtalbase.platform.figures import new_figure, save_figure
    from xtalbase.xrd.profile import profile

    lo, hi = info["two_theta_range"]
    step = min(0.02, fwhm / 5)
    tt, inten = info["two_theta"], info["intensity"]
    curve = profile(tt, inten, grid=(lo, hi, step), fwhm=fwhm, normalize=False)
    top = curve.max() if len(curve) and curve.max() > 0 else 1.0
    fig = new_figure((10, 4.5))
    ax = fig.subplots()
    ax.vlines(tt, 0, inten, color="k", linewidth=1.0, label="peaks (scaled intensity)")
    x = lo + step * np.arange(len(curve))
    ax.plot(x, curve / top * 100, color="tab:red", linewidth=1.0, alpha=0.8, label=f"Gaussian profile, FWHM {fwhm:g}°")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, 105)
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("Intensity (scaled to 100)")
    ax.set_title(f"structure {info['structure_id']} {info['formula']}  —  {info['recipe_name']} (λ = {info['wavelength']:g} Å)")
    ax.legend(loc="upper right")
    return save_figure(fig, Path(path), dpi=120)
