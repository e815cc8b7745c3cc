"""Checks that decide whether a record is stored or quarantined, and warnings that do not reject.

Each check returns ``(reason, message)`` with a reason code from
:data:`xtalbase.ingest.records.REASONS`. Thresholds live in
:class:`ValidationOptions` and are documented in ``docs/ingest.md``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from xtalbase.ingest.records import Record

Problem = Optional[tuple[str, str]]
#: Denominators of special (symmetry-fixed) fractional coordinates: k/n for these n.
SPECIAL_DENOMINATORS = (1, 2, 3, 4, 6, 8, 12)
_UNCERTAINTY = re.compile(r"\(\d+\)$")
#: A coordinate this close to k/n is read as meant to be on that special position.
NEAR_SPECIAL = 1e-3


@dataclass(frozen=True)
class ValidationOptions:
    """Thresholds of the checks.

    Attributes
    ----------
    allow_disorder : bool
        Store partially occupied sites (with their occupancies) instead of quarantining.
    require_converged : bool
        Quarantine DFT results whose electronic or ionic loop did not converge.
    max_sites : int
        ``too_many_sites`` above this many sites per cell.
    min_coord_decimals : int
        A fractional coordinate that is not on a special position (k/n, n in 1,2,3,4,6,8,12)
        needs at least this many decimals.
    min_special_decimals : int
        A coordinate near a special value that the written digits cannot represent
        exactly (``0.333`` for 1/3) needs at least this many decimals.
    min_cell_decimals : int
        Cell lengths need at least this many decimals (Å).
    overlap_fraction : float
        ``overlapping_atoms`` when two sites are closer than this fraction of the sum of
        their covalent radii (ASE ``covalent_radii``).
    min_cell_length, max_cell_length : float
        ``bad_cell`` when a lattice length (Å) is outside these bounds.
    min_volume_per_atom : float
        ``bad_cell`` below this cell volume per site (Å³).
    min_cell_shape : float
        ``bad_cell`` when volume / (a·b·c) is below this: a sliver cell (1 for a cube, sin γ for
        a right prism) that sends the neighbour search after millions of periodic images.
    max_cell_offset : float
        ``bad_cell`` when a fractional coordinate lies further than this many cells outside
        the cell (a lost decimal point); nearer ones are wrapped for the neighbour search.
    """

    allow_disorder: bool = False
    require_converged: bool = False
    max_sites: int = 1000
    min_coord_decimals: int = 3
    min_special_decimals: int = 4
    min_cell_decimals: int = 2
    overlap_fraction: float = 0.5
    min_cell_length: float = 0.5
    max_cell_length: float = 1000.0
    min_volume_per_atom: float = 0.5
    min_cell_shape: float = 1e-3
    max_cell_offset: float = 100.0


def check(record: Record, opts: ValidationOptions) -> Problem:
    """The first problem of ``record``, or ``None`` when it may be stored."""
    for rule in (_finite, _volume, _cell, _sites, _elements, _precision, _occupancy, _overlap, _converged):
        problem = rule(record, opts)
        if problem:
            return problem
    return None


def _finite(record: Record, opts: ValidationOptions) -> Problem:
    cell = np.asarray(record.cell, dtype=float)
    if cell.shape != (3, 3) or not np.all(np.isfinite(cell)):
        return "non_finite", "cell holds NaN or infinite values"
    for name, value in cell_numbers(cell).items():  # 1e308 Å is finite, its volume is not
        if not math.isfinite(value):
            return "non_finite", f"cell {name} is {value} (the lattice vectors overflow: {_largest(cell)})"
    if record.frac_coords.size and not np.all(np.isfinite(record.frac_coords)):
        site = int(np.argmax(~np.isfinite(record.frac_coords).all(axis=1)))
        return "non_finite", f"coordinates of site {site} hold NaN or infinite values"
    calc = record.calculation
    if calc is not None:
        for name in ("energy", "forces", "stress"):
            value = getattr(calc, name)
            if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=float))):
                return "non_finite", f"calculation {name} holds NaN or infinite values"
        if calc.energy is not None and not math.isfinite(float(calc.energy) / max(len(record.species), 1)):
            return "non_finite", "calculation energy per atom is not finite"
    return None


def _largest(cell: np.ndarray) -> str:
    return f"largest component {float(np.abs(cell).max()):.3g} Å"


def cell_numbers(cell: np.ndarray) -> dict[str, float]:
    """Lengths a, b, c (Å) and volume (Å³) of a 3x3 cell as plain floats; ``inf`` where they overflow."""
    rows = np.asarray(cell, dtype=float).tolist()
    lengths = [math.hypot(x, y, z) for x, y, z in rows]
    try:
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = rows
        volume = abs(ax * (by * cz - bz * cy) - ay * (bx * cz - bz * cx) + az * (bx * cy - by * cx))
    except OverflowError:
        volume = math.inf
    if math.isnan(volume):  # inf - inf: the products overflowed
        volume = math.inf
    return {"a": lengths[0], "b": lengths[1], "c": lengths[2], "volume": volume}


def _volume(record: Record, opts: ValidationOptions) -> Problem:
    volume = abs(float(np.linalg.det(record.cell)))
    if volume < 1e-6:
        return "zero_volume", f"cell volume is {volume:.3g} Å³ (lattice vectors are coplanar or zero)"
    if not record.species:
        return "missing_coordinates", "no atoms in the cell"
    return None


def cell_problem(lengths: tuple[float, float, float], volume: float, nsites: int, opts: ValidationOptions) -> Problem:
    """``bad_cell`` for lattice lengths (Å) or a volume (Å³) no crystal of ``nsites`` sites has, else ``None``.

    Cheap arithmetic, run before anything that scales with the cell's shape (symmetry
    expansion, the neighbour search): a 10⁶ Å cell or a = 1e-7 Å took gigabytes there,
    and γ = 179.9999° hung the search.
    """
    named = dict(zip("abc", lengths))
    short = {k: v for k, v in named.items() if v < opts.min_cell_length}
    if short:
        return "bad_cell", (f"cell length {', '.join(f'{k}={v:.4g} Å' for k, v in short.items())} below "
                            f"{opts.min_cell_length:g} Å (--min-cell-length)")
    long = {k: v for k, v in named.items() if v > opts.max_cell_length}
    if long:
        return "bad_cell", (f"cell length {', '.join(f'{k}={v:.4g} Å' for k, v in long.items())} above "
                            f"{opts.max_cell_length:g} Å (--max-cell-length)")
    product = lengths[0] * lengths[1] * lengths[2]
    shape = volume / product if product > 0 else 0.0
    if shape < opts.min_cell_shape:
        return "bad_cell", (f"sliver cell: volume/(a·b·c) = {shape:.3g}, below {opts.min_cell_shape:g} "
                            f"(--min-cell-shape; an angle near 0° or 180°)")
    if nsites and volume / nsites < opts.min_volume_per_atom:
        return "bad_cell", (f"cell volume {volume:.4g} Å³ holds {nsites} sites: {volume / nsites:.3g} Å³ per site, "
                            f"below {opts.min_volume_per_atom:g} (--min-volume-per-atom)")
    return None


def _cell(record: Record, opts: ValidationOptions) -> Problem:
    numbers = cell_numbers(record.cell)
    problem = cell_problem((numbers["a"], numbers["b"], numbers["c"]), numbers["volume"], len(record.species), opts)
    if problem:
        return problem
    frac = np.asarray(record.frac_coords, dtype=float)
    if frac.size:
        outside = np.abs(frac - 0.5).max(axis=1) - 0.5
        worst = int(np.argmax(outside))
        if outside[worst] > opts.max_cell_offset:
            return "bad_cell", (f"site {worst} lies {outside[worst]:.3g} cells outside the cell (fractional "
                                f"{np.array2string(frac[worst], precision=4)}; above --max-cell-offset "
                                f"{opts.max_cell_offset:g}: a lost decimal point?)")
    return None


def _sites(record: Record, opts: ValidationOptions) -> Problem:
    if len(record.species) > opts.max_sites:
        return "too_many_sites", f"{len(record.species)} sites exceed the cap of {opts.max_sites} (--max-sites)"
    return None


def _elements(record: Record, opts: ValidationOptions) -> Problem:
    # readers that take symbols from a library (pymatgen DummySpecies 'X', extxyz 'Xx') can hand over non-elements
    for i, occ in enumerate(record.species):
        for symbol in occ:
            if not _is_element(symbol):
                return "unknown_element", f"site {i}: {symbol!r} is not a chemical element"
    return None


@functools.lru_cache(maxsize=512)
def _is_element(symbol: str) -> bool:
    from ase.data import atomic_numbers

    return symbol in atomic_numbers and symbol != "X"


def decimals(text: str) -> int:
    """Digits after the decimal point as written (``0.1234(5)`` -> 4; ``1e-3`` -> 3; ``2`` -> 0)."""
    text = _UNCERTAINTY.sub("", text.strip().lower())
    mantissa, _, exponent = text.partition("e")
    digits = len(mantissa.partition(".")[2])
    if exponent.lstrip("+-").isdigit():
        digits -= int(exponent)
    return max(digits, 0)


def imprecise_coordinate(text: str, opts: ValidationOptions) -> bool:
    """True when a fractional coordinate is written with too few digits to mean what it must.

    Exactly written special positions (``0``, ``0.5``, ``0.25``, ``0.125``) are fine;
    near-special values whose digits cannot be exact (``0.333``, ``0.67``) need
    ``min_special_decimals``; every other value needs ``min_coord_decimals``.
    """
    stripped = text.strip()
    try:
        value = float(_UNCERTAINTY.sub("", stripped)) % 1.0
    except ValueError:
        return False
    ndec = decimals(text)
    if _UNCERTAINTY.search(stripped):  # a refined (free) parameter with its standard uncertainty
        return ndec < opts.min_coord_decimals
    for n in SPECIAL_DENOMINATORS:
        k = round(value * n)
        if abs(value - k / n) < NEAR_SPECIAL:
            exact = Fraction(k, n)
            written_exactly = (exact * 10**ndec).denominator == 1 and abs(value - k / n) < 10.0 ** -(ndec + 1)
            return not written_exactly and ndec < opts.min_special_decimals
    return ndec < opts.min_coord_decimals


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _exact_ratio(text: str) -> bool:
    """A value with a terminating binary fraction of at most 1/8 (``0.5``, ``-0.25``, ``1.0``): exact as written."""
    value = _number(text) * 8
    return math.isfinite(value) and abs(value - round(value)) < 1e-9


def _nonzero(text: str) -> bool:
    return _number(text) != 0.0  # text that is no number (NaN) counts as non-zero: it is checked, not skipped


def _all_plainly_precise(values: list[str], needed: int) -> bool:
    """Quick pass for the common case: plain decimals (no exponent or uncertainty) with enough digits each."""
    for text in values:
        dot = text.find(".")
        if dot < 0 or len(text) - dot - 1 < needed or "e" in text or "E" in text or "(" in text:
            return False
    return True


def _precision(record: Record, opts: ValidationOptions) -> Problem:
    raw = record.raw_values
    if not raw:
        return None
    lengths = [t for t in raw.get("cell", [])[:3] if t and t not in ("?", ".")]
    # A zero component of a lattice vector (``0.0`` in a POSCAR) is exact, however it is written.
    vectors = [t for t in raw.get("cell_vectors", []) if _nonzero(t)]
    cartesian = [t for t in raw.get("cart_coords", []) if _nonzero(t)]
    scale = raw.get("scale") or []
    if any(_number(t) != 1.0 for t in scale):
        # POSCAR vectors (and Cartesian positions) are then in units of the scaling factor, which carries the
        # precision (VASP's own examples: 3.57 with 0.5 0.5 0.0): a shape ratio such as 0.5 or 1.0 is exact.
        lengths = list(scale)
        vectors = [t for t in vectors if not _exact_ratio(t)]
        cartesian = [t for t in cartesian if not _exact_ratio(t)]
    for what, values in (("cell lengths" if raw.get("cell") else "scaling factors", lengths),
                         ("lattice-vector components", vectors), ("Cartesian coordinates (Å)", cartesian)):
        short = [t for t in values if decimals(t) < opts.min_cell_decimals]
        if short:
            shown = ", ".join(short[:5]) + (" ..." if len(short) > 5 else "")
            return "low_precision", (f"{what} {shown} have fewer than {opts.min_cell_decimals} decimals "
                                     f"(--min-cell-decimals)")
    coords = raw.get("coords", [])
    if _all_plainly_precise(coords, max(opts.min_coord_decimals, opts.min_special_decimals)):
        return None
    bad = [t for t in coords if imprecise_coordinate(t, opts)]
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        return "low_precision", (f"{len(bad)} of {len(raw['coords'])} fractional coordinates have too few digits ({shown}): "
                                 f"need {opts.min_coord_decimals} decimals (--min-coord-decimals), "
                                 f"{opts.min_special_decimals} near special positions such as 1/3 (--min-special-decimals)")
    return None


def is_ordered(record: Record) -> bool:
    """True when every site holds one element with occupancy 1."""
    return all(len(occ) == 1 and abs(next(iter(occ.values())) - 1.0) < 1e-6 for occ in record.species)


def _occupancy(record: Record, opts: ValidationOptions) -> Problem:
    # 1e-9 above the tolerance: 0.334 + 0.333 + 0.334 sums to 1.0010000000000001 in floating point
    over = [i for i, occ in enumerate(record.species) if sum(occ.values()) > 1.0 + 1e-3 + 1e-9]
    if over:
        return "parse_error", (f"site {over[0]} has total occupancy {sum(record.species[over[0]].values()):.3f} > 1 "
                               f"(atoms listed twice? e.g. symmetry-equivalent atoms given as well as generated)")
    if is_ordered(record) or opts.allow_disorder:
        return None
    partial = [i for i, occ in enumerate(record.species) if not (len(occ) == 1 and abs(next(iter(occ.values())) - 1.0) < 1e-6)]
    return "partial_occupancy", (f"{len(partial)} of {len(record.species)} sites are partially occupied or mixed "
                                 f"(e.g. site {partial[0]}: {record.species[partial[0]]}); use --allow-disorder to store")


@functools.cache
def _neighbour_search() -> tuple[Any, Any, Any]:
    """ASE's atomic numbers and covalent radii, pymatgen's cell-list neighbour search (imported once)."""
    from ase.data import atomic_numbers, covalent_radii
    from pymatgen.optimization.neighbors import find_points_in_spheres

    return atomic_numbers, covalent_radii, find_points_in_spheres


#: Above this many cells of the neighbour search's grid (its memory), sites are paired with a k-d tree instead:
#: pymatgen's cell list spans the whole cell, 27 GB for a 1000 Å cell (about 200 bytes per cell of the grid).
MAX_SEARCH_CELLS = 2_000_000


def _overlap(record: Record, opts: ValidationOptions) -> Problem:
    atomic_numbers, covalent_radii, find_points_in_spheres = _neighbour_search()
    full = np.array([len(o) == 1 and next(iter(o.values())) > 1 - 1e-6 for o in record.species])
    if not full.any():
        return None
    symbols = [max(o, key=o.get) for o in record.species]
    radii = np.array([covalent_radii[atomic_numbers[s]] for s in symbols])
    lattice = np.ascontiguousarray(record.cell, dtype=float)
    # wrapped: an atom many cells away (unwrapped MD, a lost decimal point) stretches the search grid to reach it
    frac = np.asarray(record.frac_coords, dtype=float) % 1.0
    cart = np.ascontiguousarray(frac @ lattice, dtype=float)
    cutoff = float(2 * radii.max() * opts.overlap_fraction)
    extent = np.abs(lattice).sum(axis=0) + 2 * cutoff
    if np.prod(np.ceil(extent / max(cutoff, 0.1))) > MAX_SEARCH_CELLS:
        centers, points, dist = _pairs_in_large_cell(cart, lattice, cutoff)
    else:
        centers, points, _images, dist = find_points_in_spheres(
            cart, cart, r=cutoff, pbc=np.array([1, 1, 1], dtype=np.int64), lattice=lattice, tol=1e-8)
    limit = opts.overlap_fraction * (radii[centers] + radii[points])
    close = (dist < limit) & (dist > 1e-8) | ((dist <= 1e-8) & (centers != points))
    close &= full[centers] & full[points]  # split sites of disordered structures may sit close by design
    if not close.any():
        return None
    k = int(np.argmax(close))
    i, j = int(centers[k]), int(points[k])
    return "overlapping_atoms", (f"sites {i} ({symbols[i]}) and {j} ({symbols[j]}) are {dist[k]:.3f} Å apart, closer than "
                                 f"{opts.overlap_fraction:g} x the sum of covalent radii ({limit[k]:.3f} Å)")


def _pairs_in_large_cell(cart: np.ndarray, lattice: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centers, points, distances)`` of site pairs within ``cutoff`` Å, for cells too large for a grid search.

    Wrapped sites and their images out to ``cutoff`` beyond each face (one image per side when
    every plane spacing exceeds the cutoff) go into a k-d tree: memory grows with the sites, not the cell.
    """
    from itertools import product

    from scipy.spatial import cKDTree

    volume = abs(float(np.linalg.det(lattice)))
    spacings = [volume / float(np.linalg.norm(np.cross(lattice[(i + 1) % 3], lattice[(i + 2) % 3]))) for i in range(3)]
    reach = [range(-m, m + 1) for m in (int(math.ceil(cutoff / d)) for d in spacings)]
    shifts = np.array(list(product(*reach)), dtype=float) @ lattice
    n = len(cart)
    images = (cart[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    tree = cKDTree(images)
    found = tree.query_ball_point(cart, r=cutoff)
    centers = np.repeat(np.arange(n), [len(f) for f in found])
    flat = np.fromiter((p for f in found for p in f), dtype=np.int64, count=len(centers))
    points = flat % n
    dist = np.linalg.norm(images[flat] - cart[centers], axis=1)
    return centers, points, dist


def _converged(record: Record, opts: ValidationOptions) -> Problem:
    calc = record.calculation
    if opts.require_converged and calc is not None and calc.converged is False:
        return "unconverged", (f"DFT step not converged (electronic={calc.electronic_converged}, "
                               f"ionic={calc.ionic_converged}); stored only without --require-converged")
    return None


def warnings_for(record: Record, elements: dict[str, float]) -> list[str]:
    """Warnings stored with the source: they flag, they do not reject."""
    out: list[str] = []
    if "C" in elements and "H" not in elements and elements["C"] >= 3 and ({"N", "O"} & set(elements)) \
            and _per_formula_unit(elements)["C"] >= 3:  # per formula unit: a conventional calcite cell holds 6 CO3
        out.append("organic_without_hydrogen: carbon-rich formula with N/O but no H (hydrogens missing?)")
    if "O" in elements and is_ordered(record) and _charge_unbalanced(elements):
        out.append("charge_unbalanced: no average of common oxidation states makes this oxide neutral")
    return out


def _per_formula_unit(elements: dict[str, float]) -> dict[str, float]:
    from pymatgen.core import Composition

    return dict(Composition(elements).reduced_composition.get_el_amt_dict())


def _charge_unbalanced(elements: dict[str, float]) -> bool:
    """True when no assignment of each element's average oxidation state within the range of its common and
    ICSD-observed states (pymatgen ``common_oxidation_states``, ``icsd_oxidation_states``) makes the cell neutral.

    An interval test, so mixed valence (Fe3O4) passes; it costs microseconds, unlike a full
    ``oxi_state_guesses`` search.
    """
    low = high = 0.0
    for el, amount in elements.items():
        lo, hi = _oxidation_range(el)
        low += amount * lo
        high += amount * hi
    return not (low - 1e-6 <= 0.0 <= high + 1e-6)


@functools.lru_cache(maxsize=None)
def _oxidation_range(symbol: str) -> tuple[int, int]:
    from pymatgen.core import Element

    element = Element(symbol)
    # common states alone miss everyday oxides: Cu2O (Cu +1), Ti2O3, VO2, UO2
    states = tuple(element.common_oxidation_states) + tuple(element.icsd_oxidation_states) or (0,)
    return min(states), max(states)
