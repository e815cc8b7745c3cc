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


def plot_identification(result: Any, path: str | Path) -> Path:
    """Write a PNG of a phase identification (:class:`xtalbase.xrd.identify.ScanResult`): the scan's net profile,
    each phase's fitted profile, their sum, and the residual below, with unexplained peaks marked."""
    from xtalbase.platform.figures import new_figure, save_figure

    ident = result.identification
    x, y = ident.x, ident.y
    fig = new_figure((11, 5.5))
    ax = fig.subplots()
    ax.plot(x, y, color="k", linewidth=1.0, label="measured (background removed)")
    for phase, curve in zip(ident.phases, ident.profiles):
        wf = "" if phase.weight_fraction is None else f", ~{phase.weight_fraction:.0%} wt"
        ax.plot(x, curve, linewidth=1.0, alpha=0.85, label=f"{phase.formula} (sg {phase.spacegroup}, id {phase.structure_id}{wf})")
    fit = ident.profiles.sum(axis=0) if len(ident.profiles) else np.zeros_like(y)
    if len(ident.profiles) > 1:
        ax.plot(x, fit, color="tab:gray", linewidth=0.8, linestyle="--", label="sum of phases")
    offset = -0.15
    ax.plot(x, y - fit + offset, color="tab:red", linewidth=0.8, label=f"residual (offset {offset:g})")
    if ident.unexplained_peaks:
        ax.plot(ident.unexplained_peaks, np.interp(ident.unexplained_peaks, x, y) + 0.03, "v", color="tab:red", markersize=5,
                label="unexplained peaks")
    ax.set_xlim(float(x[0]), float(x[-1]))
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("Net intensity (scan maximum = 1)")
    ax.set_title(f"{Path(result.path).name}: residual {ident.residual:.3f}, zero shift {ident.shift:+.3f}°")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, Path(path), dpi=120)
