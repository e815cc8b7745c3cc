"""XRD recipes: the measurement set-up a pattern is computed for, stored once per content hash.

The hash covers what changes the peaks (wavelength, 2θ range, merge and intensity tolerances,
Debye–Waller factors, the engine's physics version), never the label or the code revision, so
``--radiation CuKa`` and ``--wavelength 1.54184`` are the same recipe and a new wavelength is a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.platform.hashing import recipe_hash
from xtalbase.schema import XrdRecipe
from xtalbase.xrd.constants import WAVELENGTHS, wavelength_of
from xtalbase.xrd.engine import SCALED_INTENSITY_TOL, TWO_THETA_TOL

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from xtalbase.platform.database import Database

#: Bumped when the engine's physics or conventions change (so old patterns are not mistaken for new ones).
PHYSICS_VERSION = "xtalbase-xrd-1 (pymatgen XRDCalculator conventions)"
DEFAULT_RADIATION = "CuKa"
DEFAULT_TWO_THETA = (0.0, 90.0)


def recipe_spec(radiation: str | None = DEFAULT_RADIATION, wavelength: float | None = None,
                two_theta: tuple[float, float] = DEFAULT_TWO_THETA, merge_tol: float = TWO_THETA_TOL,
                scaled_tol: float = SCALED_INTENSITY_TOL, debye_waller: dict[str, float] | None = None) -> dict[str, Any]:
    """The canonical, hashable description of a recipe (wavelength Å, 2θ degrees); validates every value."""
    if wavelength is None:
        if radiation is None:
            raise XtalbaseError("give a radiation name (e.g. CuKa) or a wavelength in Å")
        wavelength = wavelength_of(radiation)
    elif radiation is None:
        radiation = next((name for name, lam in WAVELENGTHS.items() if abs(lam - wavelength) < 1e-9), None)
    wavelength = float(wavelength)
    if not wavelength > 0:
        raise XtalbaseError(f"wavelength must be positive (Å), got {wavelength}")
    lo, hi = (float(v) for v in two_theta)
    if not 0 <= lo < hi <= 180:
        raise XtalbaseError(f"2θ range must satisfy 0 <= min < max <= 180 degrees, got ({lo}, {hi})")
    if not merge_tol > 0:
        raise XtalbaseError(f"merge tolerance must be positive (2θ degrees), got {merge_tol}")
    return {
        "radiation": radiation,
        "wavelength": round(wavelength, 9),
        "two_theta_min": lo,
        "two_theta_max": hi,
        "merge_tol": float(merge_tol),
        "scaled_tol": float(scaled_tol),
        "debye_waller": {str(k): float(v) for k, v in sorted((debye_waller or {}).items())},
        "physics": PHYSICS_VERSION,
    }


def get_or_create_recipe(db_session: "Session", radiation: str | None = DEFAULT_RADIATION, wavelength: float | None = None,
                         two_theta: tuple[float, float] = DEFAULT_TWO_THETA, merge_tol: float = TWO_THETA_TOL,
                         *, scaled_tol: float = SCALED_INTENSITY_TOL, debye_waller: dict[str, float] | None = None,
                         name: str | None = None) -> XrdRecipe:
    """The stored recipe with this content hash, inserted (and flushed) when new.

    Safe against a concurrent writer inserting the same recipe: the loser re-reads the winner's row.
    """
    from xtalbase.platform.provenance import code_version

    spec = recipe_spec(radiation, wavelength, two_theta, merge_tol, scaled_tol, debye_waller)
    digest = recipe_hash(spec)
    found = db_session.scalars(select(XrdRecipe).where(XrdRecipe.hash == digest)).first()
    if found is not None:
        return found
    recipe = XrdRecipe(hash=digest, name=name or _default_name(spec), radiation=spec["radiation"], wavelength=spec["wavelength"],
                       two_theta_min=spec["two_theta_min"], two_theta_max=spec["two_theta_max"], merge_tol=spec["merge_tol"],
                       params=spec, code_version=code_version())
    try:
        with db_session.begin_nested():
            db_session.add(recipe)
    except IntegrityError:
        found = db_session.scalars(select(XrdRecipe).where(XrdRecipe.hash == digest)).first()
        if found is None:
            raise
        return found
    return recipe


def recipe_options(recipe: XrdRecipe) -> dict[str, Any]:
    """Keyword arguments of :func:`xtalbase.xrd.compute_xrd` that reproduce ``recipe``."""
    params = recipe.params or {}
    return {
        "wavelength": recipe.wavelength,
        "two_theta": (recipe.two_theta_min, recipe.two_theta_max),
        "merge_tol": recipe.merge_tol,
        "scaled_tol": params.get("scaled_tol", SCALED_INTENSITY_TOL),
        "debye_waller": params.get("debye_waller") or None,
    }


def resolve_recipe(session_or_db: "Session | Database", recipe: str | int | None = None) -> XrdRecipe:
    """The XRD recipe named by an id, a name or a hash prefix; ``None`` means the default recipe.

    **The default** is the recipe of :func:`recipe_spec` with no arguments: Cu Kα (1.54184 Å), 2θ 0-90°,
    pymatgen's merge and intensity tolerances, no Debye–Waller factors. It is what ``xtalbase xrd compute``
    computes without options, and every command that takes ``--recipe`` (``train``, ``xrd show``,
    ``xrd match``, exports) uses it when none is given. It is never guessed from pattern counts: when it
    is not stored, :class:`NotFound` lists the stored recipes to choose from.

    Given a :class:`Database`, the row is read in its own session and returned detached (its columns
    loaded); given a ``Session``, the row belongs to it.
    """
    from sqlalchemy.orm import Session

    if not isinstance(session_or_db, Session):
        with session_or_db.session() as s:
            found = resolve_recipe(s, recipe)
            s.expunge(found)
            return found
    s = session_or_db
    if recipe is None:
        found = s.scalars(select(XrdRecipe).where(XrdRecipe.hash == recipe_hash(recipe_spec()))).first()
        if found is None:
            stored = [f"{r.id} ({r.name})" for r in s.scalars(select(XrdRecipe).order_by(XrdRecipe.id).limit(20))]
            hint = f"choose one with --recipe: {', '.join(stored)}" if stored else "run `xtalbase xrd compute` first"
            raise NotFound(f"the default XRD recipe (Cu Kα, 2θ 0-90°) is not stored; {hint}")
        return found
    text = str(recipe).strip()
    found = s.get(XrdRecipe, int(text)) if text.isdigit() else None
    if found is None and text:
        # an all-digit text that is no id may still be a name or a hash prefix
        stmt = select(XrdRecipe).where((XrdRecipe.name == text) | XrdRecipe.hash.startswith(text.lower()))
        found = s.scalars(stmt.order_by(XrdRecipe.id)).first()
    if found is None:
        raise NotFound(f"no XRD recipe {text!r} (give an id, a name or a hash prefix; see `xtalbase xrd recipes`)")
    return found


def _default_name(spec: dict[str, Any]) -> str:
    label = spec["radiation"] or f"{spec['wavelength']:g}A"
    return f"{label} {spec['two_theta_min']:g}-{spec['two_theta_max']:g}"
