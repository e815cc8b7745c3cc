"""Structural descriptors: a CrystalNN site-fingerprint summary and element-agnostic RDF/ADF histograms.

Three recipe kinds, each taking periodic structures (:class:`~xtalbase.platform.convert.StructureArrays` or
pymatgen ``Structure``) and returning one row per structure:

``crystalnn`` (:class:`CrystalNNRecipe`, 244 columns)
    matminer's ``SiteStatsFingerprint(CrystalNNFingerprint.from_preset("ops", distance_cutoffs=None,
    x_diff_weight=0), stats=("mean", "std_dev", "minimum", "maximum"))``, the structure fingerprint of CSPML
    (Kusaba et al. 2022), computed with pymatgen's ``CrystalNN`` and ``LocalStructOrderParams`` (matminer is not
    needed). Per site, 61 features: for every coordination number CN = 1..24 the CrystalNN weight of that CN
    (``wt CN_n``) and, for CN 1..12, each target motif's order parameter times that weight (``octahedral CN_6``);
    then the mean, population standard deviation, minimum and maximum over all sites, named as matminer names
    them (``mean wt CN_1``, ``std_dev wt CN_1``, ...). With these settings CrystalNN is purely geometric, so the
    species on the sites do not matter.
``rdf`` (:class:`RDFRecipe`)
    g(r) of all sites (species ignored): pairs per distance bin over ``N ρ 4π/3 (r₂³ - r₁³)``, with ``N`` the
    sites of the cell and ``ρ = N / V``, so an ideal gas gives 1 and ``Σ g ρ ΔV`` up to r is the mean number of
    neighbours within r.
``adf``  (:class:`ADFRecipe`)
    The bond angles j-i-k (degrees) of every two neighbours j < k of every site i within ``cutoff`` Å,
    histogrammed over 0-180° and normalised to sum 1 (all zeros when no site has two neighbours within reach).

**Cost.** matminer spends ~30 ms per site: a third in CrystalNN's Voronoi tessellation, two thirds in ~30
single-type ``LocalStructOrderParams`` calls (one per motif of each CN with a weight). Order parameters of one CN are computed in one
``LocalStructOrderParams`` call where that gives the same numbers (see :func:`order_parameter_groups`), and, with
``symprec`` set, a site spglib finds equivalent to an earlier one (species ignored) and with the same CrystalNN
weights copies its order parameters instead of computing them.
The histograms are vectorised numpy over pymatgen's compiled neighbour search and take milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.platform.convert import StructureArrays

if TYPE_CHECKING:
    from pymatgen.core import Structure

#: Statistics over sites, in matminer's order and under its names (``std_dev`` is the population std, ddof=0).
STATS = ("mean", "std_dev", "minimum", "maximum")
#: Largest coordination number whose CrystalNN weight is a feature (matminer's ``ops`` preset).
CN_MAX = 24
#: matminer's ``load_cn_target_motif_op()``: the motifs scored at each coordination number, in column order.
TARGET_MOTIFS: dict[int, tuple[str, ...]] = {
    1: ("sgl_bd",),
    2: ("L-shaped", "water-like", "bent 120 degrees", "bent 150 degrees", "linear"),
    3: ("trigonal planar", "trigonal non-coplanar", "T-shaped"),
    4: ("square co-planar", "tetrahedral", "rectangular see-saw-like", "see-saw-like", "trigonal pyramidal"),
    5: ("pentagonal planar", "square pyramidal", "trigonal bipyramidal"),
    6: ("hexagonal planar", "octahedral", "pentagonal pyramidal"),
    7: ("hexagonal pyramidal", "pentagonal bipyramidal"),
    8: ("body-centered cubic", "hexagonal bipyramidal"),
    9: ("q2", "q4", "q6"),
    10: ("q2", "q4", "q6"),
    11: ("q2", "q4", "q6"),
    12: ("cuboctahedral", "q2", "q4", "q6"),
}
#: Order-parameter types whose "south pole" term ``LocalStructOrderParams.get_order_parameters`` adds only for the
#: last type of its list (a loop variable read after its loop): each must come last in its own call.
_SOUTH_POLE = frozenset({"tri_bipyr", "sq_bipyr", "pent_bipyr", "hex_bipyr", "oct_max", "sq_plan_max", "hex_plan_max",
                         "see_saw_rect"})
#: Order-parameter types whose value depends on the order of the neighbours (``bcc`` sums over pairs j < k only),
#: which differs between symmetry-equivalent sites: computed for every site, never copied.
_ORDER_DEPENDENT = frozenset({"bcc"})
#: Closest two sites (Å) may be: anything closer is overlapping atoms (split sites, a bad conversion), for which
#: neither a Voronoi tessellation nor a histogram means anything. H2 (0.74 Å) is the shortest real bond.
MIN_DISTANCE = 0.5
#: Angles (degrees) and distances (in bin widths) are rounded to this many decimals before binning, so that a
#: value on a bin edge by symmetry (90° with 5° bins) lands in one bin rather than in either by rounding noise.
_EDGE_DECIMALS = 6


class StructuralDescriptorError(XtalbaseError):
    """A structure cannot be described: no sites, a degenerate cell, or a local-environment search that failed."""


# --------------------------------------------------------------------------- input


def _name(labels: Sequence[Any] | None, i: int) -> str:
    return str(labels[i]) if labels is not None else f"#{i}"


def structure_arrays(item: Any, name: str = "#0") -> StructureArrays:
    """``(cell (3, 3) Å, numbers (n,), frac_coords (n, 3))`` of a ``StructureArrays`` or pymatgen ``Structure``,
    checked: at least one site, finite values, a cell of non-negligible volume, no two sites closer than
    :data:`MIN_DISTANCE`. ``name`` labels the errors."""
    if hasattr(item, "lattice") and hasattr(item, "frac_coords"):  # a pymatgen Structure
        cell, frac = item.lattice.matrix, item.frac_coords
        numbers = np.array([site.species.elements[0].Z if site.species.elements else 0 for site in item], dtype=np.int64)
    elif hasattr(item, "cell") and hasattr(item, "frac_coords"):
        cell, numbers, frac = item.cell, item.numbers, item.frac_coords
    else:
        raise StructuralDescriptorError(f"structure {name}: expected StructureArrays or a pymatgen Structure, got {type(item).__name__}")
    cell = np.asarray(cell, dtype=float)
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    frac = np.asarray(frac, dtype=float)
    if len(numbers) == 0:
        raise StructuralDescriptorError(f"structure {name} has no sites")
    if cell.shape != (3, 3) or frac.shape != (len(numbers), 3):
        raise StructuralDescriptorError(f"structure {name}: cell must be (3, 3) and frac_coords ({len(numbers)}, 3), "
                                        f"got {cell.shape} and {frac.shape}")
    if not (np.isfinite(cell).all() and np.isfinite(frac).all()):
        raise StructuralDescriptorError(f"structure {name}: cell or coordinates are not finite")
    lengths = np.linalg.norm(cell, axis=1)
    volume = abs(float(np.linalg.det(cell)))
    # relative to the box of the same edge lengths, so flat cells of any size are caught
    if lengths.min() <= 0 or volume < 1e-6 * float(np.prod(lengths)):
        raise StructuralDescriptorError(f"structure {name}: degenerate cell (volume {volume:.3g} Å³, edges "
                                        f"{', '.join(f'{x:.3g}' for x in lengths)} Å)")
    arrays = StructureArrays(cell, numbers, frac)
    i, j, vec = neighbour_pairs(arrays, MIN_DISTANCE)
    if len(i):
        k = int(np.argmin(np.linalg.norm(vec, axis=1)))
        raise StructuralDescriptorError(f"structure {name}: sites {i[k]} and {j[k]} are {np.linalg.norm(vec[k]):.3g} Å apart "
                                        f"(overlapping atoms; at least {MIN_DISTANCE} Å expected)")
    return arrays


def _pymatgen(item: Any, arrays: StructureArrays) -> "Structure":
    from pymatgen.core import IStructure, Lattice, Structure

    if isinstance(item, IStructure):
        return item
    # CrystalNN with these settings ignores species; Z outside the periodic table would only stop Structure()
    species = [int(z) if 1 <= z <= 118 else 1 for z in arrays.numbers]
    return Structure(Lattice(arrays.cell), species, arrays.frac_coords)


# --------------------------------------------------------------------------- CrystalNN fingerprint


def site_feature_names() -> list[str]:
    """The 61 per-site feature names, matminer's ``CrystalNNFingerprint`` labels (``wt CN_1``, ``sgl_bd CN_1``, ...)."""
    names = []
    for cn in range(1, CN_MAX + 1):
        names.append(f"wt CN_{cn}")
        names.extend(f"{motif} CN_{cn}" for motif in TARGET_MOTIFS.get(cn, ()))
    return names


def _plain(params: Mapping[Any, Any] | None) -> dict[Any, Any] | None:
    # pymatgen reads these from YAML as ruamel CommentedMaps, whose __getitem__ costs ~10% of the order-parameter
    # loops; a plain dict of the same numbers (ints kept ints) gives the same results
    if params is None:
        return None
    return {key: value if isinstance(value, int) else float(value) for key, value in params.items()}


def order_parameter_groups() -> dict[int, list[tuple[list[int], Any, bool]]]:
    """Per CN, ``(feature columns, LocalStructOrderParams, order_dependent)`` calls that together score every
    target motif of that CN.

    One call computes the shared neighbour geometry once for all its types. A type in :data:`_SOUTH_POLE` comes
    last in its call, at most one per call, which reproduces the one-type-per-call numbers exactly. A type in
    :data:`_ORDER_DEPENDENT` gets a call of its own (flagged), so it can be recomputed alone.
    """
    from pymatgen.analysis.local_env import LocalStructOrderParams

    try:
        from pymatgen.core.local_env import CN_OPT_PARAMS, DEFAULT_OP_PARAMS
    except ImportError:  # pymatgen <= 2025.10.7 kept them in analysis.local_env
        from pymatgen.analysis.local_env import CN_OPT_PARAMS, DEFAULT_OP_PARAMS  # type: ignore[attr-defined,no-redef]

    names = site_feature_names()
    groups: dict[int, list[tuple[list[int], Any, bool]]] = {}
    for cn, motifs in TARGET_MOTIFS.items():
        ops = []
        for motif in motifs:
            entry = CN_OPT_PARAMS.get(cn, {}).get(motif)
            kind = str(entry[0]) if entry else motif
            params = entry[1] if entry and len(entry) > 1 else DEFAULT_OP_PARAMS[kind]
            ops.append((names.index(f"{motif} CN_{cn}"), kind, _plain(params)))
        plain = [op for op in ops if op[1] not in _SOUTH_POLE | _ORDER_DEPENDENT]
        south = [op for op in ops if op[1] in _SOUTH_POLE]
        calls = [plain + south[:1]] + [[op] for op in south[1:]] + [[op] for op in ops if op[1] in _ORDER_DEPENDENT]
        groups[cn] = [([c for c, _, _ in call], LocalStructOrderParams([k for _, k, _ in call], parameters=[p for _, _, p in call]),
                       any(k in _ORDER_DEPENDENT for _, k, _ in call)) for call in calls if call]
    return groups


def _equivalent_sites(arrays: StructureArrays, symprec: float) -> np.ndarray:
    """spglib's representative index of each site, species ignored (the fingerprint is purely geometric);
    every site its own when spglib finds no symmetry."""
    import warnings

    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's notice about its old error handling
        try:
            dataset = spglib.get_symmetry_dataset((arrays.cell, arrays.frac_coords, np.ones(len(arrays.numbers), dtype=np.intc)),
                                                  symprec=symprec)
        except Exception:  # noqa: BLE001 - newer spglib raises SpglibError where older returned None
            dataset = None
    if dataset is None:
        return np.arange(len(arrays.numbers))
    return np.asarray(dataset.equivalent_atoms, dtype=np.int64)


def crystalnn_site_features(structure: "Structure", equivalent: Sequence[int] | None = None,
                            groups: dict[int, list[tuple[list[int], Any, bool]]] | None = None) -> np.ndarray:
    """``(n_sites, 61)`` CrystalNN fingerprints (matminer's ``CrystalNNFingerprint`` ``ops`` preset with
    ``distance_cutoffs=None, x_diff_weight=0``) of every site of a pymatgen ``Structure``.

    ``equivalent`` (e.g. spglib's ``equivalent_atoms``) maps each site to a symmetry-equivalent representative: a
    site whose CrystalNN weights equal its representative's copies the representative's order parameters,
    except the order-dependent ones, which are computed for every site. ``groups`` (from
    :func:`order_parameter_groups`) may be passed to reuse the order-parameter objects across structures. Raises
    whatever pymatgen raises for a cell it cannot tessellate.
    """
    from pymatgen.analysis.local_env import CrystalNN

    cnn = CrystalNN(distance_cutoffs=None, x_diff_weight=0)
    groups = order_parameter_groups() if groups is None else groups
    names = site_feature_names()
    wt_column = {cn: names.index(f"wt CN_{cn}") for cn in range(1, CN_MAX + 1)}
    n_sites = len(structure)
    rep = np.arange(n_sites) if equivalent is None else np.asarray(equivalent, dtype=np.int64)
    rows = np.zeros((n_sites, len(names)))
    weights: dict[int, dict[int, float]] = {}
    # representatives first, so that every copy finds its representative's values
    for n in sorted(range(n_sites), key=lambda k: rep[k] != k):
        data = cnn.get_nn_data(structure, n)
        weights[n] = dict(data.cn_weights)
        r = int(rep[n])
        # equal weights: the same CNs with the same neighbour counts (rounding noise could otherwise split them)
        copy = r != n and r in weights and weights[n] == weights[r]
        for cn, weight in data.cn_weights.items():
            if not 1 <= cn <= CN_MAX or weight == 0:
                continue
            rows[n, wt_column[cn]] = weight
            points = [structure[n], *(entry["site"] for entry in data.cn_nninfo[cn])]
            for columns, op, order_dependent in groups.get(cn, ()):
                if copy and not order_dependent:
                    rows[n, columns] = rows[r, columns]
                    continue
                values = op.get_order_parameters(points, 0, indices_neighs=list(range(1, len(points))))
                for column, value in zip(columns, values):
                    rows[n, column] = weight * (value or 0.0)  # None (undefined for this geometry) counts as 0
    return rows


def site_stats(rows: np.ndarray, stats: Sequence[str] = STATS) -> np.ndarray:
    """``(p * len(stats),)``: each statistic of each column of ``rows`` (n sites, p), feature-major as matminer."""
    funcs = {"mean": np.mean, "std_dev": np.std, "minimum": np.min, "maximum": np.max}
    return np.stack([funcs[s](rows, axis=0) for s in stats], axis=1).reshape(-1)


@dataclass(frozen=True)
class CrystalNNRecipe:
    """CSPML's structure fingerprint: statistics over sites of the 61-feature CrystalNN site fingerprint.

    ``stats`` are any of :data:`STATS` (all four give the 244 columns of CSPML). ``symprec`` (Å): sites that
    spglib finds equivalent within it (species ignored) copy their representative's order parameters; ``None``
    computes every site, as matminer does. Every site still gets its own CrystalNN tessellation, and the one
    order parameter that depends on the neighbours' order (``bcc``, see :data:`_ORDER_DEPENDENT`) is computed per
    site, so copies differ from matminer only through the displacements symprec tolerates. The default 1e-6 Å
    merges what the 8-decimal coordinates of MP CIFs leave exact: 1.8x matminer's speed and 7e-8 from its values
    on 50 MP structures; 1e-5 Å merges ~8% more sites but was 4e-6 off (``bench/descriptors.py``).
    """

    stats: tuple[str, ...] = STATS
    symprec: float | None = 1e-6
    input: ClassVar[str] = "structure"
    kind: ClassVar[str] = "crystalnn"
    #: Bumped when the definition changes, which makes every stored recipe of this kind a new one.
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        # "mean,maximum" as given on the command line (``--param stats=mean,maximum``) is a list
        object.__setattr__(self, "stats", tuple(self.stats.split(",") if isinstance(self.stats, str) else self.stats))
        if self.symprec is not None:  # 1 and 1.0 must hash alike
            object.__setattr__(self, "symprec", float(self.symprec))
        unknown = sorted(set(self.stats) - set(STATS))
        if unknown or not self.stats:
            raise StructuralDescriptorError(f"unknown or no statistic(s) {unknown}; choose from {', '.join(STATS)}")
        if self.symprec is not None and not (np.isfinite(self.symprec) and self.symprec > 0):
            raise StructuralDescriptorError(f"symprec must be a positive distance in Å or None, got {self.symprec!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON a stored recipe holds (its hash covers it and :attr:`version`)."""
        return {"stats": list(self.stats), "symprec": self.symprec}

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> "CrystalNNRecipe":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        _check_keys(cls.kind, params, {"stats", "symprec"})
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})

    def names(self) -> list[str]:
        """Column names, matminer's ``SiteStatsFingerprint`` labels (``mean wt CN_1``, ``std_dev wt CN_1``, ...)."""
        return [f"{s} {f}" for f in site_feature_names() for s in self.stats]

    def transform(self, structures: Sequence[Any], labels: Sequence[Any] | None = None) -> np.ndarray:
        """``(n, len(names()))`` float64 matrix, one row per structure."""
        out = np.zeros((len(structures), len(self.names())))
        groups = order_parameter_groups() if len(structures) else {}
        for i, item in enumerate(structures):
            name = _name(labels, i)
            arrays = structure_arrays(item, name)
            equivalent = None if self.symprec is None else _equivalent_sites(arrays, self.symprec)
            try:
                rows = crystalnn_site_features(_pymatgen(item, arrays), equivalent, groups)
            except MemoryError:
                raise  # the machine's trouble, not the structure's: never stored as the structure's failure
            except Exception as exc:  # noqa: BLE001 - pymatgen/qhull raise RuntimeError, ValueError, QhullError, ...
                raise StructuralDescriptorError(f"structure {name}: CrystalNN failed ({type(exc).__name__}: {exc})") from exc
            out[i] = site_stats(rows, self.stats)
        return out


# --------------------------------------------------------------------------- RDF / ADF


def neighbour_pairs(arrays: StructureArrays, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, vector (m, 3) Å)``: every ordered pair of sites (periodic images included, a site's own zero-shift
    pair excluded) closer than ``cutoff`` Å, from pymatgen's compiled cell-list search."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    cell = np.ascontiguousarray(arrays.cell, dtype=np.float64)
    pos = np.ascontiguousarray(arrays.frac_coords @ cell)
    i, j, shifts, dist = find_points_in_spheres(pos, pos, float(cutoff), np.ones(3, dtype=np.int64), cell, tol=1e-8)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    shifts = np.rint(np.asarray(shifts, dtype=np.float64).reshape(-1, 3))
    vec = pos[j] - pos[i] + shifts @ cell
    dist = np.linalg.norm(vec, axis=1)
    keep = (dist < cutoff) & ~((i == j) & ~shifts.any(axis=1))
    return i[keep], j[keep], vec[keep]


def _bin_index(values: np.ndarray, width: float, n_bins: int) -> np.ndarray:
    # the last edge is closed (180° goes into the last ADF bin); see _EDGE_DECIMALS for the rounding
    return np.minimum(np.floor(np.round(values / width, _EDGE_DECIMALS)).astype(np.int64), n_bins - 1)


def rdf_histogram(arrays: StructureArrays, r_max: float = 8.0, bin_width: float = 0.1) -> np.ndarray:
    """``(round(r_max / bin_width),)`` g(r) over bins ``[k w, (k + 1) w)`` Å of all sites, species ignored:
    ordered pairs per bin / (N ρ 4π/3 (r₂³ - r₁³)), ``ρ = N / V``; an ideal gas gives 1."""
    n_bins = int(round(r_max / bin_width))
    _, _, vec = neighbour_pairs(arrays, r_max)
    counts = np.bincount(_bin_index(np.linalg.norm(vec, axis=1), bin_width, n_bins), minlength=n_bins)[:n_bins]
    edges = np.arange(n_bins + 1) * bin_width
    n = len(arrays.numbers)
    volume = abs(float(np.linalg.det(arrays.cell)))
    shell = 4.0 / 3.0 * np.pi * np.diff(edges**3)
    return counts * volume / (n * n * shell)


def neighbour_pairs_of_centres(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(p, q)``, p < q, of every two pairs sharing a centre (``centres`` sorted or not; numpy only).

    Shared with the potentials' coverage analysis (:mod:`xtalbase.mlip.coverage`)."""
    order = np.argsort(centres, kind="stable")
    sorted_c = centres[order]
    counts = np.bincount(sorted_c) if len(sorted_c) else np.zeros(0, np.int64)
    starts = np.cumsum(counts) - counts
    position = np.arange(len(order)) - starts[sorted_c]
    partners = counts[sorted_c] - 1 - position
    first = np.repeat(np.arange(len(order)), partners)
    offsets = np.arange(len(first)) - np.repeat(np.cumsum(partners) - partners, partners)
    return order[first], order[first + 1 + offsets]


def bond_angles(arrays: StructureArrays, cutoff: float) -> np.ndarray:
    """Angles j-i-k (degrees) of every two neighbours j < k within ``cutoff`` Å of every site i."""
    i, _, vec = neighbour_pairs(arrays, cutoff)
    p, q = neighbour_pairs_of_centres(i)
    unit = vec / np.linalg.norm(vec, axis=1)[:, None]
    return np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", unit[p], unit[q]), -1.0, 1.0)))


def adf_histogram(arrays: StructureArrays, cutoff: float = 3.5, bins: int = 36) -> np.ndarray:
    """``(bins,)`` fractions of the :func:`bond_angles` in each of ``bins`` equal bins over 0-180° (the last one
    closed), summing to 1; all zeros when there are no angles."""
    angles = bond_angles(arrays, cutoff)
    counts = np.bincount(_bin_index(angles, 180.0 / bins, bins), minlength=bins)[:bins].astype(float)
    total = counts.sum()
    return counts / total if total else counts


@dataclass(frozen=True)
class RDFRecipe:
    """Element-agnostic radial distribution g(r), ``r_max`` Å in bins of ``bin_width`` Å (see :func:`rdf_histogram`)."""

    r_max: float = 8.0
    bin_width: float = 0.1
    input: ClassVar[str] = "structure"
    kind: ClassVar[str] = "rdf"
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "r_max", float(self.r_max))  # 8 and 8.0 must hash alike
        object.__setattr__(self, "bin_width", float(self.bin_width))
        if not (self.bin_width > 0 and self.r_max > 0):
            raise StructuralDescriptorError(f"r_max and bin_width must be positive, got {self.r_max!r}, {self.bin_width!r}")
        n = self.r_max / self.bin_width
        if abs(n - round(n)) > 1e-6:
            raise StructuralDescriptorError(f"r_max ({self.r_max} Å) must be a whole number of bins of {self.bin_width} Å")

    def to_dict(self) -> dict[str, Any]:
        """The JSON a stored recipe holds."""
        return {"r_max": self.r_max, "bin_width": self.bin_width}

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> "RDFRecipe":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        _check_keys(cls.kind, params, {"r_max", "bin_width"})
        return cls(**params)

    def names(self) -> list[str]:
        """``rdf_<lo>-<hi>`` per bin, in Å (``rdf_2.4-2.5``)."""
        n = int(round(self.r_max / self.bin_width))
        return [f"rdf_{round(k * self.bin_width, 6):g}-{round((k + 1) * self.bin_width, 6):g}" for k in range(n)]

    def transform(self, structures: Sequence[Any], labels: Sequence[Any] | None = None) -> np.ndarray:
        """``(n, len(names()))`` g(r) of each structure."""
        rows = [rdf_histogram(structure_arrays(item, _name(labels, i)), self.r_max, self.bin_width) for i, item in enumerate(structures)]
        return np.array(rows).reshape(len(structures), len(self.names()))


@dataclass(frozen=True)
class ADFRecipe:
    """Element-agnostic bond-angle distribution: angles between neighbours within ``cutoff`` Å, ``bins`` bins over
    0-180°, each row summing to 1 (see :func:`adf_histogram`)."""

    cutoff: float = 3.5
    bins: int = 36
    input: ClassVar[str] = "structure"
    kind: ClassVar[str] = "adf"
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if not self.cutoff > 0 or int(self.bins) != self.bins or self.bins < 1:
            raise StructuralDescriptorError(f"cutoff must be positive and bins a positive integer, got {self.cutoff!r}, {self.bins!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))  # 3 and 3.0 must hash alike
        object.__setattr__(self, "bins", int(self.bins))

    def to_dict(self) -> dict[str, Any]:
        """The JSON a stored recipe holds."""
        return {"cutoff": self.cutoff, "bins": int(self.bins)}

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> "ADFRecipe":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        _check_keys(cls.kind, params, {"cutoff", "bins"})
        return cls(**params)

    def names(self) -> list[str]:
        """``adf_<lo>-<hi>`` per bin, in degrees."""
        width = 180.0 / self.bins
        return [f"adf_{round(k * width, 6):g}-{round((k + 1) * width, 6):g}" for k in range(self.bins)]

    def transform(self, structures: Sequence[Any], labels: Sequence[Any] | None = None) -> np.ndarray:
        """``(n, bins)`` angle fractions of each structure."""
        rows = [adf_histogram(structure_arrays(item, _name(labels, i)), self.cutoff, int(self.bins)) for i, item in enumerate(structures)]
        return np.array(rows).reshape(len(structures), int(self.bins))


def _check_keys(kind: str, params: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise StructuralDescriptorError(f"unknown {kind} recipe option(s) {unknown}; accepted: {sorted(known)}")


#: Named recipes. ``adf`` uses 3.5 Å, the angle cutoff of :mod:`xtalbase.mlip.coverage`: the first neighbour shell
#: of metals, alloys and most ionic solids (M-O 1.8-2.5 Å, M-M 2.5-3.2 Å) and bcc's second shell, before the
#: counts of far neighbour pairs (growing as their number squared) swamp the first-shell angles.
PRESETS: dict[str, tuple[type, dict[str, Any]]] = {
    "crystalnn": (CrystalNNRecipe, {}),
    "rdf": (RDFRecipe, {"r_max": 8.0, "bin_width": 0.1}),
    "adf": (ADFRecipe, {"cutoff": 3.5, "bins": 36}),
}


def structural_preset(name: str) -> CrystalNNRecipe | RDFRecipe | ADFRecipe:
    """``crystalnn`` (CSPML's 244 features), ``rdf`` (0-8 Å in 0.1 Å bins, 80) or ``adf`` (3.5 Å, 5° bins, 36)."""
    if name not in PRESETS:
        raise StructuralDescriptorError(f"unknown structural preset {name!r}; choose one of {', '.join(PRESETS)}")
    cls, params = PRESETS[name]
    return cls(**params)
