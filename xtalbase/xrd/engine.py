"""Batched kinematic powder-XRD engine: pure numpy, many structures per call.

The physics and every convention follow pymatgen's ``XRDCalculator`` so the peaks agree
with it (positions to 1e-10°, scaled intensities to ~1e-9):

* reciprocal-lattice points ``g = h a* + k b* + l c*`` with ``|g| <= 2 sin(θ_max)/λ``
  (Å⁻¹, crystallographic convention without 2π), and ``|g| >= 2 sin(θ_min)/λ`` when θ_min > 0;
* atomic scattering factors ``f(s) = Z - 41.78214 s² Σ a_i exp(-b_i s²)``, ``s = |g|/2``,
  optionally times an isotropic Debye–Waller factor ``exp(-B s²)`` per element;
* ``I = |F|² (1 + cos² 2θ) / (sin² θ cos θ)`` (Lorentz–polarisation);
* reflections whose ``round(2θ / merge_tol)`` agree merge into one peak (intensities summed,
  2θ and d of the lowest-|g| member), peaks with scaled intensity <= ``scaled_tol`` are dropped,
  and intensities are scaled to a maximum of 100.

How it is fast: Friedel's law halves the reflections (``h > 0`` half-space, intensities
doubled); the structure factor ``F(hkl) = Σ_e f_e(|g|) Σ_{j∈e} w_j e^{2πi h x_j} e^{2πi k y_j}
e^{2πi l z_j}`` is separable, so per structure only ``N (H + 2K + 2L)`` complex exponentials are
evaluated and the sum over atoms becomes one complex matrix product over the (h, k) × l box;
structures of similar size are padded into groups and computed with one batched ``matmul``.
Every step is plain array code (exp, matmul, gather, sort) that maps one to one onto torch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.xrd.constants import MAX_Z, scattering_table

#: pymatgen's ``AbstractDiffractionPatternCalculator.TWO_THETA_TOL`` (degrees) and ``SCALED_INTENSITY_TOL``.
TWO_THETA_TOL = 1e-5
SCALED_INTENSITY_TOL = 1e-3
#: Points within this distance (Å⁻¹) outside the limiting sphere still count (pymatgen's neighbour search tolerance).
SPHERE_TOL = 1e-8
#: Upper bound on complex entries of one group's largest intermediate (2^21 complex128 = 32 MiB).
GROUP_ENTRIES = 1 << 21
#: A group of padded structures may cost at most this many times the unpadded work.
GROUP_WASTE = 1.6
#: s² step (Å⁻²) of the scattering-factor table (see :class:`FormFactorTable`).
FF_STEP = 1e-5


@dataclass
class Pattern:
    """One powder pattern: peaks in ascending 2θ.

    ``two_theta`` (npeaks,) degrees, ``intensity`` (npeaks,) scaled to a maximum of 100,
    ``d_spacing`` (npeaks,) Å; ``hkl_families`` (when requested) one list per peak of
    ``[h, k, l, multiplicity]`` (``[h, k, i, l, multiplicity]`` for hexagonal cells).
    """

    two_theta: np.ndarray
    intensity: np.ndarray
    d_spacing: np.ndarray
    hkl_families: list[list[list[int]]] | None = None
    wavelength: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.two_theta)

    def __repr__(self) -> str:
        return f"Pattern(npeaks={len(self)}, two_theta=[{self.two_theta[:1]}..{self.two_theta[-1:]}])"


@dataclass
class SiteBatch:
    """Many structures as ragged arrays, one entry per (site, species) so partial occupancy fits.

    ``cells`` (B, 3, 3) Å, rows are lattice vectors; ``offsets`` (B + 1,) start of each
    structure's sites in the flat arrays; ``frac_coords`` (n, 3) fractional coordinates;
    ``numbers`` (n,) atomic numbers; ``occupancy`` (n,) site occupancy of that species
    (a disordered site appears once per species, at the same position).
    """

    cells: np.ndarray
    offsets: np.ndarray
    frac_coords: np.ndarray
    numbers: np.ndarray
    occupancy: np.ndarray

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def nsites(self) -> np.ndarray:
        """(B,) number of site entries per structure."""
        return np.diff(self.offsets)


@functools.cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def two_theta_to_g(two_theta: float, wavelength: float) -> float:
    """|g| in Å⁻¹ of a reflection at ``two_theta`` degrees (Bragg: |g| = 2 sin θ / λ)."""
    return 2 * math.sin(math.radians(two_theta / 2)) / wavelength


def compute_batch(
    batch: SiteBatch,
    wavelength: float,
    two_theta: tuple[float, float] | None = (0.0, 90.0),
    *,
    merge_tol: float = TWO_THETA_TOL,
    scaled_tol: float = SCALED_INTENSITY_TOL,
    debye_waller: dict[int, float] | None = None,
    hkl: bool = False,
    scaled: bool = True,
    single_precision: bool = False,
) -> list[Pattern]:
    """Powder patterns of every structure in ``batch``; see the module docstring for the physics.

    ``wavelength`` in Å; ``two_theta`` (min, max) degrees or ``None`` for the whole limiting
    sphere; ``debye_waller`` maps atomic number to B in Å²; ``single_precision`` evaluates
    the structure-factor products in complex64 (2θ, |g| and the merge stay float64).
    Raises :class:`XtalbaseError` naming the structure when an element has no tabulated
    scattering factors.
    """
    nstruct = len(batch)
    if nstruct == 0:
        return []
    coeffs, known = scattering_table()
    bad = ~known[np.clip(batch.numbers, 0, MAX_Z)] | (batch.numbers > MAX_Z) | (batch.numbers < 1)
    if bad.any():
        site = int(np.argmax(bad))
        which = int(np.searchsorted(batch.offsets, site, side="right") - 1)
        raise XtalbaseError(f"structure {which}: no X-ray scattering factors for atomic number {int(batch.numbers[site])}")
    dw = np.zeros(MAX_Z + 1)
    for z, b_factor in (debye_waller or {}).items():
        dw[int(z)] = float(b_factor)

    min_r, max_r = (0.0, 2 / wavelength) if two_theta is None else (two_theta_to_g(two_theta[0], wavelength), two_theta_to_g(two_theta[1], wavelength))
    cells = np.asarray(batch.cells, dtype=float)
    volume = np.abs(np.linalg.det(cells))
    if (volume < 1e-6).any() or not np.isfinite(cells).all():
        raise XtalbaseError(f"structure {int(np.argmax((volume < 1e-6) | ~np.isfinite(volume)))}: degenerate or non-finite cell")
    recip = np.linalg.inv(cells).transpose(0, 2, 1)  # rows a*, b*, c* (Å⁻¹, no 2π)
    metric = recip @ recip.transpose(0, 2, 1)  # (B, 3, 3) reciprocal metric tensor
    # |h| = |g · a| <= |g| |a|: the box of Miller indices that holds the limiting sphere.
    bounds = np.floor((max_r + SPHERE_TOL) * np.linalg.norm(cells, axis=2) + 1e-9).astype(np.int64)  # (B, 3)

    slot, zslots = _element_slots(batch)
    rank = _rank_within_slot(batch, slot)
    ff_table = FormFactorTable(np.unique(batch.numbers), (max_r + SPHERE_TOL) ** 2 / 4, coeffs, dw)
    # The matrices are small: one BLAS thread is fastest, and multi-threaded BLAS collapses on a busy machine.
    with _blas_controller().limit(limits=1, user_api="blas"):
        refl = [_group_reflections(batch, members, bounds, metric, slot, rank, zslots, ff_table, min_r, max_r, single_precision, hkl)
                for members in _groups(batch.nsites, zslots, bounds)]
    refl = [r for r in refl if r is not None]
    struct = np.concatenate([r[0] for r in refl]) if refl else np.zeros(0, np.int64)
    g = np.concatenate([r[1] for r in refl]) if refl else np.zeros(0)
    intensity = np.concatenate([r[2] for r in refl]) if refl else np.zeros(0)
    hkls = np.concatenate([r[3] for r in refl]) if refl and hkl else None
    # sin θ = λ|g|/2 exactly, so only 2θ itself needs an arcsin
    sin_t = np.clip(wavelength * g / 2, -1, 1)
    sin2 = sin_t * sin_t
    cos_2t = 1 - 2 * sin2
    lorentz = (1 + cos_2t * cos_2t) / (sin2 * np.sqrt(1 - sin2))
    intensity = 2 * intensity * lorentz  # factor 2: the -g half-space (Friedel pairs)
    tth = np.degrees(2 * np.arcsin(sin_t))
    return _merge(struct, hkls, g, tth, intensity, nstruct, cells if hkl else None, merge_tol, scaled_tol, scaled, wavelength)


class FormFactorTable:
    """Atomic scattering factors tabulated on a fixed fine s² grid, shared by every call in a process.

    ``f_Z(s²)`` is smooth, so linear interpolation with step ``FF_STEP`` (Å⁻²) reproduces the
    formula to ~1e-6 electrons (relative 1e-7; intensities to ~1e-6 on the 0-100 scale), while
    four exponentials per reflection and element would dominate the engine's run time.
    Rows are built per element on first use and grown when a larger s² is needed.
    """

    _rows: dict[int, np.ndarray] = {}
    _assembled: dict[tuple, np.ndarray] = {}

    def __init__(self, numbers: np.ndarray, s2_max: float, coeffs: np.ndarray, dw: np.ndarray) -> None:
        npts = int(s2_max / FF_STEP) + 3
        numbers = np.asarray(numbers, dtype=np.int64)
        self.col = np.zeros(MAX_Z + 1, dtype=np.int64)
        self.col[numbers] = np.arange(1, len(numbers) + 1)
        self.dw = dw if dw.any() else None
        key = (tuple(numbers.tolist()), npts)
        cached = self._assembled.get(key)
        if cached is not None:
            self.values = cached
            return
        for z in numbers.tolist():
            row = self._rows.get(z)
            if row is None or len(row) < npts:
                s2 = np.arange(max(npts, 2 * len(row) if row is not None else npts)) * FF_STEP
                self._rows[z] = z - 41.78214 * s2 * np.sum(coeffs[z, :, 0, None] * np.exp(-coeffs[z, :, 1, None] * s2), axis=0)
        # (s² point, element) layout: the E factors a reflection needs sit in one or two cache lines
        self.values = np.zeros((npts, len(numbers) + 1))  # column 0: padding slots, f = 0
        for col, z in enumerate(numbers.tolist(), start=1):
            self.values[:, col] = self._rows[z][:npts]
        if len(self._assembled) >= 8:  # a few recent element sets; a batch of a new set rebuilds in milliseconds
            self._assembled.pop(next(iter(self._assembled)))
        self._assembled[key] = self.values

    def lookup(self, z: np.ndarray, s2: np.ndarray) -> np.ndarray:
        """f for atomic numbers ``z`` (M, E) at ``s2`` (M,) Å⁻²; padding slots (z = 0) give 0."""
        ncol = self.values.shape[1]
        pos = s2 / FF_STEP
        i = np.minimum(pos.astype(np.int64), self.values.shape[0] - 2)
        t = (pos - i)[:, None]
        flat = self.values.ravel()
        base = i[:, None] * ncol + self.col[z]
        lower = flat[base]
        f = lower + (flat[base + ncol] - lower) * t
        if self.dw is not None:
            f = f * np.exp(-self.dw[z] * s2[:, None])
        return f


def _element_slots(batch: SiteBatch) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per site the index of its element among its structure's distinct elements, and those elements."""
    owner = np.repeat(np.arange(len(batch)), batch.nsites)
    key = owner * (MAX_Z + 1) + batch.numbers
    uniq, inverse = np.unique(key, return_inverse=True)
    uniq_owner = uniq // (MAX_Z + 1)
    first = np.searchsorted(uniq_owner, np.arange(len(batch)))
    slot = inverse - first[owner]
    zs = uniq % (MAX_Z + 1)
    cuts = [*first.tolist(), len(zs)]
    zslots = [zs[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    return slot, zslots


def _rank_within_slot(batch: SiteBatch, slot: np.ndarray) -> np.ndarray:
    """Per site its index among the sites of the same element in the same structure."""
    owner = np.repeat(np.arange(len(batch)), batch.nsites)
    key = owner * (int(slot.max(initial=0)) + 1) + slot
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    run_start = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    run_id = np.cumsum(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) - 1
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = np.arange(len(key)) - run_start[run_id]
    return rank


def _groups(nsites: np.ndarray, zslots: list[np.ndarray], bounds: np.ndarray) -> list[np.ndarray]:
    """Structures of similar padded size, so one batched matmul serves a whole group."""
    nel = np.array([len(z) for z in zslots])
    order = np.lexsort((bounds[:, 2], bounds[:, 1], bounds[:, 0], nel, nsites))
    box_hk = (bounds[:, 0] + 1) * (2 * bounds[:, 1] + 1)
    box_l = 2 * bounds[:, 2] + 1
    work = (nsites * box_hk * (1 + box_l) + box_hk * nel * box_l).astype(float)
    dims = np.column_stack([nsites, nel, bounds]).tolist()
    work_list = work.tolist()
    groups, current = [], []
    pad = (0, 0, 0, 0, 0)
    total = 0.0
    for i in order.tolist():
        row = dims[i]
        n, e, h, k, l_ = (max(p, r) for p, r in zip(pad, row)) if current else row
        hk, ll = (h + 1) * (2 * k + 1), 2 * l_ + 1
        per = n * hk * (1 + ll) + hk * e * ll
        size = len(current) + 1
        if current and (per * size > GROUP_WASTE * (total + work_list[i]) or per * size > GROUP_ENTRIES):
            groups.append(np.array(current))
            current, total = [], 0.0
            n, e, h, k, l_ = row
        current.append(i)
        total += work_list[i]
        pad = (n, e, h, k, l_)
    if current:
        groups.append(np.array(current))
    return groups


def _phase_powers(x: np.ndarray, n: int, symmetric: bool = True) -> np.ndarray:
    """``exp(2πi m x)`` for m = -n..n (or 0..n), shape (G, m, N), from one exponential per site.

    Powers by repeated multiplication of unit complex numbers: the error grows like m·1e-16,
    and it is several times cheaper than an exponential per (m, site).
    """
    base = np.exp(2j * np.pi * x)  # (G, N)
    out = np.empty((x.shape[0], n + 1, x.shape[1]), dtype=np.complex128)
    out[:, 0] = 1.0
    if n >= 1:
        out[:, 1] = base
    for m in range(2, n + 1):
        np.multiply(out[:, m - 1], base, out=out[:, m])
    if not symmetric:
        return out
    return np.concatenate([np.conj(out[:, :0:-1]), out], axis=1)


def _group_reflections(batch, members, bounds, metric, slot, rank, zslots, ff_table, min_r, max_r, single_precision, with_hkl):
    """Structure factors of one padded group: (struct index, |g|, |F|², hkl or None) of its half-space reflections.

    Sites are laid out element by element (block ``e`` holds up to ``count_e`` sites of each
    structure's e-th element), so ``S_e(hkl) = Σ_{j∈e} w_j e^{2πi(hx+ky+lz)}`` is one batched
    matmul per element block and ``F = Σ_e f_e(|g|) S_e``.
    """
    size = len(members)
    emax = max(len(zslots[i]) for i in members)
    hmax, kmax, lmax = (int(v) for v in bounds[members].max(axis=0))
    ctype = np.complex64 if single_precision else np.complex128

    lo = batch.offsets[members]
    counts = batch.nsites[members]
    sites = np.concatenate([np.arange(a, a + n) for a, n in zip(lo.tolist(), counts.tolist())])
    rows = np.repeat(np.arange(size), counts)
    per_slot = np.zeros((size, emax), dtype=np.int64)
    np.add.at(per_slot, (rows, slot[sites]), 1)
    block = per_slot.max(axis=0)  # padded sites per element slot
    start = np.concatenate([[0], np.cumsum(block)])
    npad = int(start[-1])
    col = start[slot[sites]] + rank[sites]
    frac = np.zeros((size, npad, 3))
    weight = np.zeros((size, npad))
    frac[rows, col] = batch.frac_coords[sites]
    weight[rows, col] = batch.occupancy[sites]
    zs = np.zeros((size, emax), dtype=np.int64)
    for r, i in enumerate(members.tolist()):
        zs[r, : len(zslots[i])] = zslots[i]

    hr = np.arange(0, hmax + 1)
    kr = np.arange(-kmax, kmax + 1)
    lr = np.arange(-lmax, lmax + 1)
    ex = _phase_powers(frac[:, :, 0], hmax, symmetric=False).astype(ctype, copy=False)  # (G, H+1, N)
    ey = _phase_powers(frac[:, :, 1], kmax).astype(ctype, copy=False)  # (G, 2K+1, N)
    ez = (_phase_powers(frac[:, :, 2], lmax).transpose(0, 2, 1) * weight[:, :, None]).astype(ctype, copy=False)  # (G, N, 2L+1)
    a = (ex[:, :, None, :] * ey[:, None, :, :]).reshape(size, -1, npad)  # (G, HK, N)

    # |g|² over the box; keep the Friedel half-space inside the spherical shell.
    h = hr[None, :, None, None]
    k = kr[None, None, :, None]
    l_ = lr[None, None, None, :]
    m = metric[members][:, :, :, None, None, None]
    g2 = (m[:, 0, 0] * (h * h) + m[:, 1, 1] * (k * k) + m[:, 2, 2] * (l_ * l_)
          + 2 * (m[:, 0, 1] * (h * k) + m[:, 0, 2] * (h * l_) + m[:, 1, 2] * (k * l_)))
    half = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l_ > 0))
    r_hi = max_r + SPHERE_TOL
    keep = half & (g2 <= r_hi * r_hi)
    if min_r > 0:
        keep &= g2 >= min_r * min_r
    gi, ih, ik, il = np.nonzero(keep)
    if len(gi) == 0:
        return None
    g2k = g2[gi, ih, ik, il]
    g = np.sqrt(g2k)
    f = ff_table.lookup(zs[gi], g2k / 4)  # (M, E), s² = (|g|/2)²
    hk_index = ih * (2 * kmax + 1) + ik
    fsum = np.zeros(len(gi), dtype=ctype)
    for e in range(emax):
        blk = slice(start[e], start[e + 1])
        s_e = np.matmul(a[:, :, blk], ez[:, blk, :])  # (G, HK, 2L+1)
        fsum += f[:, e].astype(ctype, copy=False) * s_e[gi, hk_index, il]
    intensity = fsum.real.astype(float) ** 2 + fsum.imag.astype(float) ** 2
    hkls = np.stack([hr[ih], kr[ik], lr[il]], axis=1) if with_hkl else None
    return members[gi], g, intensity, hkls


def _merge(struct, hkls, g, tth, intensity, nstruct, cells, merge_tol, scaled_tol, scaled, wavelength) -> list[Pattern]:
    """Bin reflections by ``round(2θ / merge_tol)`` per structure, drop negligible peaks, scale to 100."""
    keys = np.round(tth / merge_tol).astype(np.int64)
    combined = struct * (int(keys.max(initial=0)) + 1) + keys
    if cells is not None:
        # pymatgen's order inside a bin (|g|, then -h, -k, -l) fixes the order of the hkl families; |g| is
        # rounded to 1e-12 Å⁻¹ so symmetry-equivalent reflections tie exactly and order by -h, -k, -l.
        order = np.lexsort((-hkls[:, 2], -hkls[:, 1], -hkls[:, 0], np.round(g, 12), combined))
        hkls = hkls[order]
    else:
        order = np.argsort(combined, kind="stable")
    combined, struct, g, intensity = combined[order], struct[order], g[order], intensity[order]
    new = np.ones(len(combined), dtype=bool)
    new[1:] = combined[1:] != combined[:-1]
    starts = np.flatnonzero(new)
    if len(starts):
        peak_int = np.add.reduceat(intensity, starts)
        # a bin reports its lowest-|g| member, as pymatgen does
        peak_g = np.minimum.reduceat(g, starts)
    else:
        peak_int = peak_g = np.zeros(0)
    peak_struct = struct[starts]
    peak_tth = np.degrees(2 * np.arcsin(np.clip(wavelength * peak_g / 2, -1, 1)))
    peak_d = 1.0 / peak_g
    bounds = np.searchsorted(peak_struct, np.arange(nstruct + 1))
    peak_max = np.zeros(nstruct)
    nonempty = bounds[1:] > bounds[:-1]
    peak_max[nonempty] = np.maximum.reduceat(peak_int, bounds[:-1][nonempty])
    rel = peak_int / np.where(peak_max[peak_struct] > 0, peak_max[peak_struct], 1.0)
    kept = rel * 100 > scaled_tol
    out_int = rel * 100 if scaled else peak_int
    kept_idx = np.flatnonzero(kept)
    cuts = [0, *np.searchsorted(kept_idx, bounds[1:-1]).tolist(), len(kept_idx)]
    spans = list(zip(cuts[:-1], cuts[1:]))
    kept_tth, kept_int, kept_d = peak_tth[kept_idx], out_int[kept_idx], peak_d[kept_idx]
    tth_parts = [kept_tth[a:b] for a, b in spans]
    int_parts = [kept_int[a:b] for a, b in spans]
    d_parts = [kept_d[a:b] for a, b in spans]
    if cells is None:
        return [Pattern(t, y, d, None, wavelength) for t, y, d in zip(tth_parts, int_parts, d_parts)]
    ends = np.append(starts[1:], len(combined))
    patterns = []
    for i, (a, b) in enumerate(spans):
        sel = kept_idx[a:b]
        hexagonal = _is_hexagonal(cells[i])
        families = [_families(hkls[starts[p]:ends[p]], hexagonal) for p in sel.tolist()]
        patterns.append(Pattern(tth_parts[i], int_parts[i], d_parts[i], families, wavelength))
    return patterns


def _families(hkls: np.ndarray, hexagonal: bool) -> list[list[int]]:
    """pymatgen's ``get_unique_families`` on the reflections of one peak and their Friedel mates."""
    groups: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for row in hkls.tolist():
        for h, k, l_ in (row, [-v for v in row]):
            idx = (h, k, -h - k, l_) if hexagonal else (h, k, l_)
            groups.setdefault(tuple(sorted(abs(v) for v in idx)), []).append(idx)
    return [[*max(members), len(members)] for members in groups.values()]


def _is_hexagonal(cell: np.ndarray, angle_tol: float = 5.0, length_tol: float = 0.01) -> bool:
    """pymatgen's ``Lattice.is_hexagonal``: two right angles, one 60°/120°, equal lengths beside it."""
    lengths = np.linalg.norm(cell, axis=1)
    angles = []
    for i, j in ((1, 2), (0, 2), (0, 1)):
        cos = np.dot(cell[i], cell[j]) / (lengths[i] * lengths[j])
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    right = [i for i in range(3) if abs(angles[i] - 90) <= angle_tol]
    hexa = [i for i in range(3) if abs(angles[i] - 60) <= angle_tol or abs(angles[i] - 120) <= angle_tol]
    return len(right) == 2 and len(hexa) == 1 and abs(lengths[right[0]] - lengths[right[1]]) <= length_tol


def batch_from_arrays(items: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]) -> SiteBatch:
    """Stack ``(cell (3,3), numbers (n,), frac (n,3), occupancy (n,) or None)`` tuples into a batch."""
    cells = np.array([it[0] for it in items], dtype=float).reshape(-1, 3, 3)
    counts = np.array([len(it[1]) for it in items], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if len(items) == 0:
        return SiteBatch(cells, offsets, np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0))
    frac = np.concatenate([np.asarray(it[2], dtype=float).reshape(-1, 3) for it in items])
    numbers = np.concatenate([np.asarray(it[1], dtype=np.int64).reshape(-1) for it in items])
    occ = np.concatenate([np.ones(len(it[1])) if it[3] is None else np.asarray(it[3], dtype=float) for it in items])
    return SiteBatch(cells, offsets, frac, numbers, occ)
