"""Compositional descriptors: fraction-weighted statistics of element properties over a whole batch at once.

A batch of compositions is packed into two ``(n, m)`` arrays, atomic numbers and amounts (``m`` = most
elements in any one composition; padding has amount 0), and every statistic is a masked reduction over the
``(n, m, p)`` gather of the element table, so 20,000 compositions take tens of milliseconds.

Statistics (``w`` = atomic fraction, ``a`` = amount, ``x`` = the element property):

======== ======================================================= ============================
name     value                                                   from
======== ======================================================= ============================
ave      Σ w x                                                   XenonPy ``WeightedAverage``
sum      Σ a x (amounts of the reduced formula, or of the cell)   XenonPy ``WeightedSum``
var      Σ w (x - ave)²                                          XenonPy ``WeightedVariance``
max/min  over the elements present                               XenonPy ``Max/MinPooling``
gmean    exp(Σ w ln x); NaN when any x <= 0                      XenonPy ``GeometricMean``
hmean    1 / Σ (w / x); NaN when any x <= 0                      XenonPy ``HarmonicMean``
minimum, maximum, range, mean                                    matminer ``PropertyStats``
avg_dev  Σ w |x - mean|                                          matminer ``PropertyStats``
mode     x of the element with the largest fraction (ties: the   matminer ``PropertyStats``
         smallest such x)
======== ======================================================= ============================

**Sums and the basis.** ``sum`` is the only statistic that depends on the amounts' scale. With
``basis="reduced"`` (the default) integer amounts are divided by their greatest common divisor, so a
stored supercell and its primitive cell get the same descriptor; ``basis="cell"`` keeps the amounts as given
(what XenonPy computes for ``structure.composition``). Non-integer amounts (partial occupancies) are
never reduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from xtalbase.descriptors.tables import MAX_Z, element_table
from xtalbase.errors import XtalbaseError

STATS = ("ave", "sum", "var", "max", "min", "gmean", "hmean", "minimum", "maximum", "range", "mean", "avg_dev", "mode")
#: XenonPy's default five, in the column order of its ``Compositions`` featurizer.
XENONPY_STATS = ("ave", "sum", "var", "max", "min")
#: matminer's Magpie preset statistics, in its order.
MAGPIE_STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
#: Absolute and relative tolerances under which two fractions tie for ``mode`` (numpy's isclose, as matminer).
_TIE_RTOL, _TIE_ATOL = 1e-5, 1e-8
#: Compositions per vectorised block.
_BLOCK = 2048


class CompositionError(XtalbaseError):
    """A composition cannot be described: unknown element, empty, negative amount, element not in the table."""


@dataclass(frozen=True)
class PackedCompositions:
    """Compositions as padded arrays: ``z`` (n, m) atomic numbers and ``amount`` (n, m), 0 where padded."""

    z: np.ndarray
    amount: np.ndarray

    def __len__(self) -> int:
        return len(self.z)


def _item_counts(item: Any) -> tuple[list[int], list[float]]:
    if isinstance(item, np.ndarray) or (isinstance(item, Sequence) and not isinstance(item, str)):
        numbers = np.asarray(item, dtype=np.int64)
        z, counts = np.unique(numbers, return_counts=True)
        return z.tolist(), counts.astype(float).tolist()
    if isinstance(item, str):
        from pymatgen.core import Composition

        item = Composition(item)
    if hasattr(item, "get_el_amt_dict"):  # a pymatgen Composition
        item = item.get_el_amt_dict()
    if isinstance(item, Mapping):
        from pymatgen.core import Element

        zs, amounts = [], []
        for key, amount in item.items():
            zs.append(int(key) if isinstance(key, (int, np.integer)) else Element(str(key)).Z)
            amounts.append(float(amount))
        return zs, amounts
    raise CompositionError(f"cannot read a composition from {type(item).__name__} {item!r}")


def pack(compositions: Iterable[Any], labels: Sequence[Any] | None = None) -> PackedCompositions:
    """Pack compositions given as atomic-number arrays (a cell's sites), ``{element or Z: amount}`` mappings,
    pymatgen ``Composition`` objects or formula strings. ``labels`` name the records in error messages."""
    rows: list[tuple[list[int], list[float]]] = []
    for i, item in enumerate(compositions):
        name = labels[i] if labels is not None else f"#{i}"
        try:
            zs, amounts = _item_counts(item)
        except (ValueError, KeyError) as exc:
            raise CompositionError(f"composition {name}: {exc}") from None
        if not zs:
            raise CompositionError(f"composition {name} is empty")
        if len(set(zs)) != len(zs):
            raise CompositionError(f"composition {name} names an element twice")
        if min(zs) < 1 or max(zs) > MAX_Z:
            raise CompositionError(f"composition {name}: atomic numbers must be 1-{MAX_Z}, got {sorted(zs)}")
        if not all(np.isfinite(a) and a > 0 for a in amounts):
            raise CompositionError(f"composition {name}: amounts must be positive and finite, got {amounts}")
        rows.append((zs, amounts))
    width = max((len(zs) for zs, _ in rows), default=1)
    z = np.zeros((len(rows), width), dtype=np.int64)
    amount = np.zeros((len(rows), width))
    for i, (zs, amounts) in enumerate(rows):
        z[i, :len(zs)] = zs
        amount[i, :len(zs)] = amounts
    return PackedCompositions(z, amount)


def _table_digest(name: str) -> str:
    from xtalbase.platform.hashing import json_sha256

    return json_sha256(element_table(name).files)


def _reduced(amount: np.ndarray) -> np.ndarray:
    integral = np.all(np.isclose(amount, np.round(amount), rtol=0, atol=1e-8), axis=1)
    out = amount.copy()
    if integral.any():
        ints = np.round(amount[integral]).astype(np.int64)
        gcd = np.gcd.reduce(ints, axis=1)
        out[integral] = ints / np.maximum(gcd, 1)[:, None]
    return out


def weighted_stats(packed: PackedCompositions, values: np.ndarray, stats: Sequence[str], basis: str = "reduced") -> np.ndarray:
    """``(n, len(stats), p)``: each statistic of each property column of ``values`` (indexed by Z)."""
    unknown = sorted(set(stats) - set(STATS))
    if unknown:
        raise CompositionError(f"unknown statistic(s) {unknown}; choose from {', '.join(STATS)}")
    if basis not in ("reduced", "cell"):
        raise CompositionError(f"basis must be 'reduced' or 'cell', got {basis!r}")
    present = packed.amount > 0  # (n, m)
    amount = _reduced(packed.amount) if basis == "reduced" else packed.amount
    w = packed.amount / packed.amount.sum(axis=1, keepdims=True)  # fractions do not depend on the basis
    x = values[packed.z]  # (n, m, p); padding reads row 0 and is masked below
    mask = present[:, :, None]
    x0 = np.where(mask, x, 0.0)
    ww = w[:, :, None]
    ave = (ww * x0).sum(axis=1)
    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for stat in stats:
            if stat in ("ave", "mean"):
                out.append(ave)
            elif stat == "sum":
                out.append((amount[:, :, None] * x0).sum(axis=1))
            elif stat == "var":
                out.append((ww * np.where(mask, x - ave[:, None, :], 0.0) ** 2).sum(axis=1))
            elif stat == "avg_dev":
                out.append((ww * np.abs(np.where(mask, x - ave[:, None, :], 0.0))).sum(axis=1))
            elif stat in ("max", "maximum"):
                out.append(np.where(mask, x, -np.inf).max(axis=1))
            elif stat in ("min", "minimum"):
                out.append(np.where(mask, x, np.inf).min(axis=1))
            elif stat == "range":
                out.append(np.where(mask, x, -np.inf).max(axis=1) - np.where(mask, x, np.inf).min(axis=1))
            elif stat in ("gmean", "hmean"):
                positive = np.where(mask, x > 0, True).all(axis=1)
                safe = np.where(mask & (x > 0), x, 1.0)
                value = np.exp((ww * np.log(safe)).sum(axis=1)) if stat == "gmean" else 1.0 / (ww / safe).sum(axis=1)
                out.append(np.where(positive, value, np.nan))
            elif stat == "mode":
                top = w.max(axis=1, keepdims=True)
                tied = present & np.isclose(w, top, rtol=_TIE_RTOL, atol=_TIE_ATOL)
                out.append(np.where(tied[:, :, None], x, np.inf).min(axis=1))
    # a NaN property of a present element must stay NaN (max/min above skip NaN only through -inf/inf fill)
    nan_rows = np.where(mask, np.isnan(x), False).any(axis=1)  # (n, p)
    stacked = np.stack(out, axis=1)
    stacked[np.broadcast_to(nan_rows[:, None, :], stacked.shape)] = np.nan
    return stacked


@dataclass(frozen=True)
class CompositionRecipe:
    """Statistics of one element table's properties over each composition.

    ``layout`` orders the columns: ``"stat"`` (all properties of the first statistic, then the next: XenonPy's
    order, names ``ave:atomic_radius``) or ``"property"`` (all statistics of the first property: matminer's
    order, names ``MagpieData mean Number``). ``impute`` replaces unknown table entries by the property's
    mean over all elements (matminer's ``impute_nan``); without it an element the table lacks is an error.
    """

    table: str = "xenonpy"
    stats: tuple[str, ...] = XENONPY_STATS
    basis: str = "reduced"
    impute: bool = False
    layout: str = "stat"
    properties: tuple[str, ...] | None = None
    input: ClassVar[str] = "composition"
    kind: ClassVar[str] = "composition"
    #: Bumped when a statistic's definition changes, which makes every stored recipe of this kind a new one.
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        # "ave,var" as given on the command line (``--param stats=ave,var``) is a list
        object.__setattr__(self, "stats", tuple(self.stats.split(",") if isinstance(self.stats, str) else self.stats))
        if self.properties is not None:
            props = self.properties.split(",") if isinstance(self.properties, str) else self.properties
            object.__setattr__(self, "properties", tuple(props))
        unknown = sorted(set(self.stats) - set(STATS))
        if unknown or not self.stats:
            raise CompositionError(f"unknown or no statistic(s) {unknown}; choose from {', '.join(STATS)}")
        if self.basis not in ("reduced", "cell"):
            raise CompositionError(f"basis must be 'reduced' or 'cell', got {self.basis!r}")
        if not isinstance(self.impute, (bool, np.bool_)):
            raise CompositionError(f"impute must be true or false, got {self.impute!r}")
        object.__setattr__(self, "impute", bool(self.impute))
        if self.layout not in ("stat", "property"):
            raise CompositionError(f"layout must be 'stat' or 'property', got {self.layout!r}")
        table = element_table(self.table)
        for prop in self.properties or ():
            table.column(prop)

    def to_dict(self) -> dict[str, Any]:
        """The JSON a stored recipe holds (its hash covers it and :attr:`version`), with the sha256 of the table's
        files: vectors computed from other table data are never read for this recipe."""
        return {"table": self.table, "stats": list(self.stats), "basis": self.basis, "impute": self.impute,
                "layout": self.layout, "properties": None if self.properties is None else list(self.properties),
                "table_sha256": _table_digest(self.table)}

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> "CompositionRecipe":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {"table", "stats", "basis", "impute", "layout", "properties", "table_sha256"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise CompositionError(f"unknown composition recipe option(s) {unknown}; accepted: {sorted(known - {'table_sha256'})}")
        params = dict(params)
        digest = params.pop("table_sha256", None)
        recipe = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        if digest is not None and digest != _table_digest(recipe.table):
            raise CompositionError(f"this recipe was stored with other {recipe.table} table data (sha256 {digest[:12]}...) than this "
                                   f"xtalbase ships ({_table_digest(recipe.table)[:12]}...): use the preset to make a new recipe")
        return recipe

    def _columns(self) -> tuple[list[str], np.ndarray]:
        table = element_table(self.table)
        props = list(self.properties or table.properties)
        cols = [table.properties.index(p) for p in props]
        values = table.imputed() if self.impute else table.values
        return props, values[:, cols]

    def names(self) -> list[str]:
        """Column names, in the order of :meth:`transform`'s columns."""
        props, _ = self._columns()
        if self.table == "magpie" and self.layout == "property":
            return [f"MagpieData {s} {p}" for p in props for s in self.stats]
        if self.layout == "property":
            return [f"{s}:{p}" for p in props for s in self.stats]
        return [f"{s}:{p}" for s in self.stats for p in props]

    def transform(self, compositions: Iterable[Any] | PackedCompositions, labels: Sequence[Any] | None = None) -> np.ndarray:
        """``(n, len(names()))`` float64 matrix; NaN where a statistic is undefined (``gmean`` of x <= 0) or, without
        ``impute``, where a present element's table entry is unknown (an element with no entry at all is an error)."""
        packed = compositions if isinstance(compositions, PackedCompositions) else pack(compositions, labels)
        props, values = self._columns()
        if not len(packed):
            return np.zeros((0, len(props) * len(self.stats)))
        if not self.impute:
            self._check_covered(packed, values, labels)
        out = np.empty((len(packed), len(props) * len(self.stats)))
        # in blocks: the (n, m, p) temporaries of a whole 30k-row query fall out of cache (2x slower per row)
        for start in range(0, len(packed), _BLOCK):
            block = PackedCompositions(packed.z[start:start + _BLOCK], packed.amount[start:start + _BLOCK])
            stacked = weighted_stats(block, values, self.stats, self.basis)  # (b, s, p)
            if self.layout == "property":
                stacked = stacked.transpose(0, 2, 1)
            out[start:start + _BLOCK] = stacked.reshape(len(block), -1)
        return out

    def _check_covered(self, packed: PackedCompositions, values: np.ndarray, labels: Sequence[Any] | None) -> None:
        missing = np.isnan(values).all(axis=1)
        bad = missing[packed.z] & (packed.amount > 0)
        if bad.any():
            from pymatgen.core import Element

            i = int(np.flatnonzero(bad.any(axis=1))[0])
            zs = sorted(set(packed.z[i][bad[i]].tolist()))
            name = labels[i] if labels is not None else f"#{i}"
            symbols = ", ".join(f"{Element.from_Z(z).symbol} (Z={z})" for z in zs)
            covered = element_table(self.table).covered()
            raise CompositionError(f"composition {name}: element {symbols} is not in the {self.table} table "
                                   f"(it covers Z {covered.min()}-{covered.max()}); "
                                   f"{int(bad.any(axis=1).sum())} of {len(packed)} compositions are affected")


#: Named recipes (constructor arguments): XenonPy's 290 features and matminer's 132 Magpie features.
PRESETS: dict[str, dict[str, Any]] = {
    "xenonpy": {"table": "xenonpy", "stats": XENONPY_STATS},
    "magpie": {"table": "magpie", "stats": MAGPIE_STATS, "impute": True, "layout": "property"},
}


def composition_preset(name: str) -> CompositionRecipe:
    """``xenonpy`` (58 properties x ave, sum, var, max, min = 290) or ``magpie`` (22 x 6 = 132, matminer's preset)."""
    if name not in PRESETS:
        raise CompositionError(f"unknown composition preset {name!r}; choose one of {', '.join(PRESETS)}")
    return CompositionRecipe(**PRESETS[name])
