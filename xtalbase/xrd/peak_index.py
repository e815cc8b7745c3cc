"""Every computed pattern of one recipe in flat arrays: the candidates a phase search scans, and their chemistry.

A :class:`PeakIndex` holds the d-spacings and intensities of all computed patterns of a recipe back to back
(``offsets`` delimit each pattern, d descending = 2θ ascending), each structure's elements as a 128-bit mask
(so "elements a subset of {Ti, Zn, O}" is two integer operations per candidate), and the formula, space
group, cell mass and volume the report and the weight fractions need.

Built once from the database and stored in it (``xrd_peak_indexes``, one row per recipe and pattern-set
fingerprint; :mod:`xtalbase.platform.repositories.patterns`), so a search over 100,000 patterns reads one
blob instead of 100,000 rows; a new or deleted pattern, or a new layout version, changes the fingerprint and the
index is rebuilt.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

#: Bumped when the stored layout changes (an index of another version is rebuilt, never misread).
INDEX_VERSION = 1
_ARRAYS = ("structure_ids", "offsets", "d", "intensity", "element_mask", "spacegroups", "cell_mass", "volume")


@dataclass
class PeakIndex:
    """Computed patterns of recipe ``recipe_id`` (computed at ``wavelength`` Å over ``two_theta_range`` degrees)."""

    recipe_id: int
    wavelength: float
    two_theta_range: tuple[float, float]
    fingerprint: str
    structure_ids: np.ndarray   # (n,) int64
    offsets: np.ndarray         # (n + 1,) int64
    d: np.ndarray               # (P,) float32, Å, descending within a pattern
    intensity: np.ndarray       # (P,) float32, max 100 per pattern
    element_mask: np.ndarray    # (n, 2) uint64, bit Z-1 of word (Z-1)//64
    formulas: np.ndarray        # (n,) str
    spacegroups: np.ndarray     # (n,) int32, 0 = unknown
    cell_mass: np.ndarray       # (n,) float64, amu
    volume: np.ndarray          # (n,) float64, Å³

    def __len__(self) -> int:
        return len(self.structure_ids)

    @property
    def d_min(self) -> float:
        """The smallest d-spacing (Å) every stored pattern covers: reflections below it were never computed."""
        return float(self.wavelength / (2 * np.sin(np.radians(self.two_theta_range[1] / 2))))

    def select(self, elements: Iterable[str] | None = None, require: Iterable[str] | None = None,
               structure_ids: Sequence[int] | None = None) -> np.ndarray:
        """Positions of the candidates whose elements all lie in ``elements`` and include every one of ``require``,
        limited to ``structure_ids`` when given (ascending positions)."""
        keep = np.ones(len(self), dtype=bool)
        if elements is not None:
            allowed = element_mask(elements)
            keep &= ((self.element_mask & ~allowed[None, :]) == 0).all(axis=1)
        if require is not None:
            needed = element_mask(require)
            keep &= ((self.element_mask & needed[None, :]) == needed[None, :]).all(axis=1)
        if structure_ids is not None:
            keep &= np.isin(self.structure_ids, np.asarray(list(structure_ids), dtype=np.int64))
        return np.flatnonzero(keep)

    def lines(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat (d, intensity, owner) of the candidates at ``positions``; ``owner`` indexes ``positions``."""
        positions = np.asarray(positions, dtype=np.int64)
        starts, stops = self.offsets[positions], self.offsets[positions + 1]
        lengths = stops - starts
        owner = np.repeat(np.arange(len(positions)), lengths)
        first = np.cumsum(lengths) - lengths
        flat = np.arange(int(lengths.sum())) - np.repeat(first, lengths) + np.repeat(starts, lengths)
        return self.d[flat], self.intensity[flat], owner

    def to_bytes(self) -> bytes:
        """The index as an uncompressed ``.npz`` (no pickles)."""
        buffer = io.BytesIO()
        np.savez(buffer, version=np.int64(INDEX_VERSION), recipe_id=np.int64(self.recipe_id), wavelength=np.float64(self.wavelength),
                 two_theta_range=np.asarray(self.two_theta_range, dtype=np.float64), fingerprint=np.str_(self.fingerprint),
                 formulas=np.asarray(self.formulas, dtype=str), **{name: getattr(self, name) for name in _ARRAYS})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "PeakIndex":
        """Read :meth:`to_bytes` output; another layout version is an error (the caller rebuilds)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if int(z["version"]) != INDEX_VERSION:
                raise XtalbaseError(f"peak index version {int(z['version'])} is not {INDEX_VERSION}")
            lo, hi = (float(v) for v in z["two_theta_range"])
            return cls(int(z["recipe_id"]), float(z["wavelength"]), (lo, hi), str(z["fingerprint"]),
                       formulas=z["formulas"], **{name: z[name] for name in _ARRAYS})


def element_mask(symbols: Iterable[str]) -> np.ndarray:
    """The (2,) uint64 mask of element ``symbols``; an unknown symbol is an error naming it."""
    from ase.data import atomic_numbers

    mask = np.zeros(2, dtype=np.uint64)
    for symbol in symbols:
        z = atomic_numbers.get(str(symbol).strip())
        if not z or str(symbol).strip() in ("X",):
            raise XtalbaseError(f"unknown element {symbol!r} in the element list")
        mask[(z - 1) // 64] |= np.uint64(1) << np.uint64((z - 1) % 64)
    return mask


def parse_elements(text: str | Iterable[str] | None) -> list[str] | None:
    """``"Ti,Zn,O"`` (commas, spaces, semicolons or dashes) or a list → element symbols; ``None`` stays ``None``."""
    if text is None:
        return None
    parts = text.replace(";", ",").replace("-", ",").replace(" ", ",").split(",") if isinstance(text, str) else list(text)
    symbols = [p.strip() for p in parts if str(p).strip()]
    element_mask(symbols)
    return symbols


def build_index(recipe_id: int, wavelength: float, two_theta_range: tuple[float, float], fingerprint: str,
                rows: Iterable[tuple]) -> PeakIndex:
    """A :class:`PeakIndex` from ``rows`` of (structure_id, d bytes, intensity bytes, chemical_system, formula,
    spacegroup, density g/cm³, volume Å³), in any order (sorted by structure id here)."""
    from xtalbase.schema.arrays import unpack

    ids, ds, ints, masks, formulas, groups, mass, volume = [], [], [], [], [], [], [], []
    for sid, d, inten, chemsys, formula, group, density, vol in rows:
        dd, ii = unpack(d), unpack(inten)
        order = np.argsort(-dd, kind="stable")
        ids.append(int(sid))
        ds.append(dd[order].astype(np.float32))
        ints.append(ii[order].astype(np.float32))
        masks.append(element_mask((chemsys or "").split("-")) if chemsys else np.zeros(2, dtype=np.uint64))
        formulas.append(formula or "")
        groups.append(int(group or 0))
        # density (g/cm³) × volume (Å³) → cell mass in amu: 1 g/cm³ · Å³ = 0.602214 amu
        mass.append(float(density or 0.0) * float(vol or 0.0) * 0.6022140857)
        volume.append(float(vol or 0.0))
    order = np.argsort(ids, kind="stable")
    lengths = np.array([len(ds[i]) for i in order], dtype=np.int64)
    return PeakIndex(
        recipe_id, float(wavelength), (float(two_theta_range[0]), float(two_theta_range[1])), fingerprint,
        structure_ids=np.array(ids, dtype=np.int64)[order], offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        d=np.concatenate([ds[i] for i in order]) if ids else np.zeros(0, np.float32),
        intensity=np.concatenate([ints[i] for i in order]) if ids else np.zeros(0, np.float32),
        element_mask=np.array([masks[i] for i in order], dtype=np.uint64).reshape(-1, 2),
        formulas=np.array([formulas[i] for i in order], dtype=str), spacegroups=np.array([groups[i] for i in order], dtype=np.int32),
        cell_mass=np.array([mass[i] for i in order]), volume=np.array([volume[i] for i in order]))


#: In-process cache: (database url, recipe id) → (stored row key, index), reused while that stored row is unchanged.
_LOADED: dict[tuple[str, int], tuple[tuple[int, str], PeakIndex]] = {}


def load_index(db: "Database", recipe_id: int) -> PeakIndex:
    """The peak index of ``recipe_id``: from this process's cache, else the stored one, else built and stored.

    The pattern set's fingerprint (layout version; count, id sum, largest id, structure id sum and peak count of its
    computed patterns) is read each time, and the
    cache is only used while the stored row for it is the same row (id and creation time), so patterns computed or
    deleted since, or a database recreated at the same URL, are never missed.
    """
    from xtalbase.platform.repositories.patterns import (
        computed_pattern_rows,
        pattern_set_fingerprint,
        store_peak_index,
        stored_peak_index,
        stored_peak_index_key,
    )
    from xtalbase.schema import XrdRecipe

    key = (str(db.engine.url), int(recipe_id))
    with db.session() as s:
        # the layout version is part of the key, so an index stored by another version is replaced, never misread
        fingerprint = f"v{INDEX_VERSION}:{pattern_set_fingerprint(s, recipe_id)}"
        stored_key = stored_peak_index_key(s, recipe_id, fingerprint)
        cached = _LOADED.get(key)
        if cached is not None and stored_key is not None and cached[0] == stored_key and cached[1].fingerprint == fingerprint:
            return cached[1]
        index = None
        data = stored_peak_index(s, recipe_id, fingerprint) if stored_key is not None else None
        if data is not None:
            try:
                index = PeakIndex.from_bytes(data)
            except XtalbaseError:  # an older layout: rebuilt below
                index = None
        if index is None:
            recipe = s.get(XrdRecipe, recipe_id)
            if recipe is None:
                raise XtalbaseError(f"no XRD recipe with id {recipe_id}")
            index = build_index(recipe_id, recipe.wavelength, (recipe.two_theta_min, recipe.two_theta_max), fingerprint,
                                computed_pattern_rows(s, recipe_id))
            if len(index):
                store_peak_index(s, recipe_id, fingerprint, len(index), index.to_bytes())
                s.commit()
                stored_key = stored_peak_index_key(s, recipe_id, fingerprint)
    if not len(index):
        raise XtalbaseError(f"no computed patterns for XRD recipe {recipe_id}: run `xtalbase xrd compute` first")
    if stored_key is not None:
        _LOADED[key] = (stored_key, index)
    return index
