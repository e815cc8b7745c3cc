"""Atom-centred symmetry functions of one configuration, with their exact Jacobian and virial.

:func:`compute` returns, per centre element, the descriptor values ``G`` (n_e, n_f), the sparse Jacobian
``∂G[c, f]/∂R[m]`` stored as one (n_f, 3) block per (centre c, atom m) pair that interacts (the centre
itself and its neighbours, periodic images summed), and ``Σ ∂G/∂D ⊗ D`` over the centre's pair vectors
(its virial, which gives the stress). The derivatives are analytic (the n2p2 expressions), so a training
set's Jacobian is computed once and reused every epoch. Values are also differentiable by autograd through
the positions and a strain, which :mod:`xtalbase.mlip.model` uses as the reference path.

The neighbour list is pymatgen's compiled cell-list search (the pair set of ASE's ``neighbor_list``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.mlip.cutoffs import cutoff
from xtalbase.mlip.recipe import PotentialRecipe, SymmetryFunction

if TYPE_CHECKING:
    import torch

#: Triplet rows × functions evaluated at once; bounds the transient memory of the angular terms (~40 bytes each).
TRIPLET_CHUNK = 2_000_000


@dataclass
class ElementBlock:
    """Descriptors of the atoms of one element.

    ``atoms`` (n_e,) atom indices; ``values`` (n_e, n_f); ``jac_center`` (K,) row in ``values``,
    ``jac_atom`` (K,) atom index and ``jac`` (K, n_f, 3) the blocks ∂G/∂R (Å⁻¹); ``virial`` (n_e, n_f, 3, 3)
    ``Σ_p ∂G/∂D_p ⊗ D_p``. The derivative fields are ``None`` when not requested.
    """

    atoms: "torch.Tensor"
    values: "torch.Tensor"
    jac_center: "torch.Tensor | None" = None
    jac_atom: "torch.Tensor | None" = None
    jac: "torch.Tensor | None" = None
    virial: "torch.Tensor | None" = None

    def to(self, dtype: Any = None, device: Any = None) -> "ElementBlock":
        """A copy with floating tensors cast to ``dtype`` and everything moved to ``device``."""
        def cast(t: Any, floating: bool) -> Any:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if floating and dtype is not None else t.dtype)

        return ElementBlock(cast(self.atoms, False), cast(self.values, True), cast(self.jac_center, False),
                            cast(self.jac_atom, False), cast(self.jac, True), cast(self.virial, True))


@dataclass
class Descriptors:
    """The symmetry functions of one configuration: ``n_atoms`` and one :class:`ElementBlock` per element present."""

    n_atoms: int
    blocks: dict[str, ElementBlock]

    def nbytes(self) -> int:
        """Memory held by the tensors (bytes)."""
        total = 0
        for b in self.blocks.values():
            for t in (b.atoms, b.values, b.jac_center, b.jac_atom, b.jac, b.virial):
                total += 0 if t is None else t.element_size() * t.nelement()
        return total


def neighbor_pairs(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: Any, rc: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, S)``: every ordered pair closer than ``rc`` (Å) with its integer cell shift.

    pymatgen's compiled cell-list search (``find_points_in_spheres``; ~0.2 ms for 54 atoms at 5.2 Å, where ASE's
    ``neighbor_list`` takes ~45 ms), then the pairs are cut to ``|R_j - R_i + S·cell| < rc`` and the atom's own
    zero-shift pair is dropped: the same set as ASE's ``neighbor_list("ijS", atoms, rc, self_interaction=False)``
    (distinct atoms on one spot included). ASE's list serves a periodic direction with a singular cell.
    """
    pbc3 = np.array([bool(p) for p in (pbc if np.ndim(pbc) else (pbc,) * 3)])
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    lattice = np.ascontiguousarray(cell, dtype=np.float64)
    singular = abs(np.linalg.det(lattice)) < 1e-9
    if singular and pbc3.any():
        from ase import Atoms
        from ase.neighborlist import neighbor_list

        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc3)
        i, j, shifts = neighbor_list("ijS", atoms, rc, self_interaction=False)
        return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.float64)
    from pymatgen.optimization.neighbors import find_points_in_spheres

    if singular:  # no periodic direction: the lattice only frames the search
        lattice = np.eye(3)
    i, j, shifts, _ = find_points_in_spheres(pos, pos, float(rc), pbc3.astype(np.int64), lattice, tol=1e-8)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    shifts = np.rint(np.asarray(shifts, dtype=np.float64).reshape(-1, 3))
    r = np.linalg.norm(pos[j] - pos[i] + shifts @ lattice, axis=1)
    keep = (r < rc) & ~((i == j) & ~shifts.any(axis=1))
    return i[keep], j[keep], shifts[keep]


def compute(recipe: PotentialRecipe, numbers: np.ndarray, positions: Any, cell: Any, pbc: Any = True, *,
            jacobian: bool = True, dtype: Any = None, device: Any = "cpu", strain: Any = None,
            what: str = "configuration") -> Descriptors:
    """Symmetry functions of one configuration (positions and cell in Å).

    ``positions`` and ``strain`` may be torch tensors that require grad (the autograd path): pair vectors
    are ``(R_j - R_i + S·cell)(1 + strain)``. ``jacobian`` adds the analytic derivatives (not differentiable
    themselves). Atoms of an element the recipe does not know raise :class:`XtalbaseError` naming ``what``.
    """
    import torch

    dtype = dtype or torch.float64
    numbers = np.asarray(numbers, dtype=np.int64)
    symbols = _symbols(numbers)
    unknown = sorted(set(symbols) - set(recipe.elements))
    if unknown:
        raise XtalbaseError(f"{what}: element(s) {unknown} are not in the potential's {list(recipe.elements)}")
    cell_np = np.array(cell.detach().cpu().numpy() if torch.is_tensor(cell) else cell, dtype=float)
    pos_np = np.array(positions.detach().cpu().numpy() if torch.is_tensor(positions) else positions, dtype=float)
    pbc = pbc if not isinstance(pbc, bool) else (pbc,) * 3
    i_np, j_np, s_np = neighbor_pairs(numbers, pos_np, cell_np, pbc, recipe.cutoff)
    pos_t = positions if torch.is_tensor(positions) else torch.as_tensor(pos_np, dtype=dtype, device=device)
    cell_t = cell if torch.is_tensor(cell) else torch.as_tensor(cell_np, dtype=dtype, device=device)
    i_t = torch.as_tensor(i_np, device=device)
    j_t = torch.as_tensor(j_np, device=device)
    vectors = pos_t[j_t] - pos_t[i_t] + torch.as_tensor(s_np, dtype=dtype, device=device) @ cell_t
    if strain is not None:
        vectors = vectors @ (torch.eye(3, dtype=dtype, device=device) + strain)
    z_t = torch.as_tensor(numbers, device=device)
    blocks = {}
    for element in recipe.elements:
        atoms = np.flatnonzero(np.array(symbols) == element)
        if len(atoms) == 0:
            continue
        blocks[element] = _element_block(recipe.for_element(element), len(numbers), torch.as_tensor(atoms, device=device),
                                         i_t, j_t, vectors, z_t, jacobian)
    return Descriptors(n_atoms=len(numbers), blocks=blocks)


def _symbols(numbers: np.ndarray) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in numbers]


def _z(symbol: str) -> int:
    from ase.data import atomic_numbers

    return atomic_numbers[symbol]


def _element_block(functions: tuple[SymmetryFunction, ...], n_atoms: int, atoms: "torch.Tensor", i_all: "torch.Tensor",
                   j_all: "torch.Tensor", vectors: "torch.Tensor", z: "torch.Tensor", jacobian: bool) -> ElementBlock:
    import torch

    dtype, device = vectors.dtype, vectors.device
    n_e, n_f = len(atoms), len(functions)
    local = torch.full((n_atoms,), -1, dtype=torch.long, device=device)
    local[atoms] = torch.arange(n_e, device=device)
    mine = local[i_all] >= 0
    i, j, d = i_all[mine], j_all[mine], vectors[mine]
    r = torch.linalg.vector_norm(d, dim=1)
    rmax = max(f.rc for f in functions)
    keep = r < rmax
    i, j, d, r = i[keep], j[keep], d[keep], r[keep]
    c = local[i]
    values = torch.zeros((n_e, n_f), dtype=dtype, device=device)
    acc = _Accumulator(n_e, n_f, n_atoms, c, j, atoms, dtype, device) if jacobian else None

    radial = [(k, f) for k, f in enumerate(functions) if f.kind == "radial"]
    for neighbor in sorted({f.neighbors[0] for _, f in radial}):
        group = [(k, f) for k, f in radial if f.neighbors[0] == neighbor]
        sel = torch.nonzero(z[j] == _z(neighbor)).flatten()
        if len(sel):
            _radial(group, sel, c, d, r, values, acc)

    angular = [(k, f) for k, f in enumerate(functions) if f.kind != "radial"]
    if angular:
        p, q = _triplets(c, r, max(f.rc for _, f in angular), n_e)
        zj, zk = z[j[p]], z[j[q]]
        for pair in sorted({f.neighbors for _, f in angular}):
            group = [(k, f) for k, f in angular if f.neighbors == pair]
            a, b = _z(pair[0]), _z(pair[1])
            sel = torch.nonzero(((zj == a) & (zk == b)) | ((zj == b) & (zk == a))).flatten()
            step = max(1, TRIPLET_CHUNK // max(1, len(group)))
            for start in range(0, len(sel), step):
                chunk = sel[start:start + step]
                _angular(group, p[chunk], q[chunk], c, d, r, values, acc)
    if acc is None:
        return ElementBlock(atoms=atoms, values=values)
    return ElementBlock(atoms=atoms, values=values, jac_center=acc.key_center, jac_atom=acc.key_atom, jac=acc.jac,
                        virial=acc.virial)


class _Accumulator:
    """Collects ∂G/∂D of pair vectors into (centre, atom) Jacobian blocks and the per-centre virial."""

    def __init__(self, n_e: int, n_f: int, n_atoms: int, c: "torch.Tensor", j: "torch.Tensor", atoms: "torch.Tensor",
                 dtype: Any, device: Any) -> None:
        import torch

        self_keys = torch.arange(n_e, device=device) * n_atoms + atoms
        keys, inverse = torch.unique(torch.cat([c * n_atoms + j, self_keys]), return_inverse=True)
        self.pair_key = inverse[:len(c)]
        self.self_key = inverse[len(c):]
        self.key_center = keys // n_atoms
        self.key_atom = keys % n_atoms
        self.jac = torch.zeros((len(keys), n_f, 3), dtype=dtype, device=device)
        self.virial = torch.zeros((n_e, n_f, 3, 3), dtype=dtype, device=device)

    def add(self, pair: "torch.Tensor", centre: "torch.Tensor", cols: "torch.Tensor", grad: "torch.Tensor",
            vec: "torch.Tensor") -> None:
        """Add ``grad`` = ∂G[:, cols]/∂D (rows, n_cols, 3) of pair vectors ``vec`` (rows, 3) indexed ``pair``."""
        grad = grad.detach()
        rows = pair[:, None].expand(-1, len(cols))
        colx = cols[None, :].expand(len(pair), -1)
        self.jac.index_put_((self.pair_key[rows], colx), grad, accumulate=True)
        self.jac.index_put_((self.self_key[centre][:, None].expand(-1, len(cols)), colx), -grad, accumulate=True)
        crow = centre[:, None].expand(-1, len(cols))
        self.virial.index_put_((crow, colx), grad[..., :, None] * vec.detach()[:, None, None, :], accumulate=True)


def _cutoff_columns(functions: list[SymmetryFunction], r: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """(rows, n_functions) cutoff values and derivatives, each distinct (cutoff, R_c, α) computed once."""
    import torch

    cache: dict[tuple, tuple] = {}
    fs, dfs = [], []
    for f in functions:
        key = (f.cutoff, f.rc, f.alpha)
        if key not in cache:
            cache[key] = cutoff(f.cutoff, r, f.rc, f.alpha)
        fs.append(cache[key][0])
        dfs.append(cache[key][1])
    return torch.stack(fs, dim=1), torch.stack(dfs, dim=1)


def _params(functions: list[SymmetryFunction], name: str, like: "torch.Tensor") -> "torch.Tensor":
    import torch

    return torch.tensor([getattr(f, name) for f in functions], dtype=like.dtype, device=like.device)


def _radial(group: list[tuple[int, SymmetryFunction]], sel: "torch.Tensor", c: "torch.Tensor", d: "torch.Tensor",
            r: "torch.Tensor", values: "torch.Tensor", acc: _Accumulator | None) -> None:
    import torch

    cols = torch.tensor([k for k, _ in group], device=values.device)
    funcs = [f for _, f in group]
    rr = r[sel][:, None]
    eta, rs = _params(funcs, "eta", values), _params(funcs, "rs", values)
    fc, dfc = _cutoff_columns(funcs, r[sel])
    gauss = torch.exp(-eta * (rr - rs) ** 2)
    term = gauss * fc
    cc = c[sel]
    values.index_put_((cc[:, None].expand(-1, len(cols)), cols[None, :].expand(len(sel), -1)), term, accumulate=True)
    if acc is not None:
        dterm_dr = gauss * (dfc - 2.0 * eta * (rr - rs) * fc)
        unit = d[sel] / r[sel][:, None]
        acc.add(sel, cc, cols, dterm_dr[..., None] * unit[:, None, :], d[sel])


def _triplets(c: "torch.Tensor", r: "torch.Tensor", rc: float, n_e: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Pair indices ``(p, q)`` of every triplet j < k around the same centre, both pairs shorter than ``rc``."""
    import torch

    near = torch.nonzero(r < rc).flatten()
    order = near[torch.argsort(c[near], stable=True)]
    counts = torch.bincount(c[order], minlength=n_e)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(order), device=c.device) - starts[c[order]]
    partners = counts[c[order]] - 1 - position
    first = torch.repeat_interleave(torch.arange(len(order), device=c.device), partners)
    offsets = torch.arange(len(first), device=c.device) - torch.repeat_interleave(torch.cumsum(partners, 0) - partners, partners)
    return order[first], order[first + 1 + offsets]


def _angular(group: list[tuple[int, SymmetryFunction]], p: "torch.Tensor", q: "torch.Tensor", c: "torch.Tensor",
             d: "torch.Tensor", r: "torch.Tensor", values: "torch.Tensor", acc: _Accumulator | None) -> None:
    import torch

    cols = torch.tensor([k for k, _ in group], device=values.device)
    funcs = [f for _, f in group]
    wide = torch.tensor([f.kind == "angular_wide" for f in funcs], device=values.device)
    eta, rs = _params(funcs, "eta", values), _params(funcs, "rs", values)
    zeta, lam = _params(funcs, "zeta", values), _params(funcs, "lam", values)
    dij, dik = d[p], d[q]
    rij, rik = r[p][:, None], r[q][:, None]
    djk = dik - dij
    rjk_flat = torch.linalg.vector_norm(djk, dim=1)
    rjk = rjk_flat[:, None]
    cos = ((dij * dik).sum(1)[:, None] / (rij * rik))
    fij, dfij = _cutoff_columns(funcs, r[p])
    fik, dfik = _cutoff_columns(funcs, r[q])
    fjk, dfjk = _cutoff_columns(funcs, rjk_flat)
    fjk = torch.where(wide, 1.0, fjk)
    dfjk = torch.where(wide, 0.0, dfjk)
    base = 1.0 + lam * cos
    positive = base > 0
    safe = torch.where(positive, base, 1.0)
    norm = torch.pow(2.0, 1.0 - zeta)
    ang = torch.where(positive, norm * safe ** zeta, 0.0)
    sq = (rij - rs) ** 2 + (rik - rs) ** 2 + torch.where(wide, 0.0, (rjk - rs) ** 2)
    gauss = torch.exp(-eta * sq)
    fc = fij * fik * fjk
    term = ang * gauss * fc
    cc = c[p]
    values.index_put_((cc[:, None].expand(-1, len(cols)), cols[None, :].expand(len(p), -1)), term, accumulate=True)
    if acc is None:
        return
    ag = ang * gauss
    g_ij = ag * (fik * fjk) * (dfij - 2.0 * eta * (rij - rs) * fij)
    g_ik = ag * (fij * fjk) * (dfik - 2.0 * eta * (rik - rs) * fik)
    g_jk = torch.where(wide, 0.0, ag * (fij * fik) * (dfjk - 2.0 * eta * (rjk - rs) * fjk))
    g_cos = torch.where(positive, norm * zeta * lam * safe ** (zeta - 1.0), 0.0) * gauss * fc
    inv = 1.0 / (rij * rik)
    ujk = djk / rjk
    # ∂/∂D_ij and ∂/∂D_ik of the term; r_jk depends on both through D_jk = D_ik - D_ij
    grad_p = (g_ij / rij - g_cos * cos / rij ** 2)[..., None] * dij[:, None, :] + (g_cos * inv)[..., None] * dik[:, None, :] \
        - g_jk[..., None] * ujk[:, None, :]
    grad_q = (g_ik / rik - g_cos * cos / rik ** 2)[..., None] * dik[:, None, :] + (g_cos * inv)[..., None] * dij[:, None, :] \
        + g_jk[..., None] * ujk[:, None, :]
    acc.add(p, cc, cols, grad_p, dij)
    acc.add(q, cc, cols, grad_q, dik)


def descriptor_matrix(desc: Descriptors, element: str) -> np.ndarray:
    """The (n_e, n_f) values of one element as a float64 numpy array (empty when the element is absent)."""
    block = desc.blocks.get(element)
    return np.zeros((0, 0)) if block is None else block.values.detach().cpu().numpy().astype(np.float64)


def finite_or_raise(desc: Descriptors, what: str) -> None:
    """Raise when any descriptor value is not finite (a broken cell or overlapping atoms)."""
    for element, block in desc.blocks.items():
        if not bool(block.values.isfinite().all()):
            raise XtalbaseError(f"{what}: non-finite symmetry function values for {element} (overlapping atoms?)")


__all__ = ["Descriptors", "ElementBlock", "TRIPLET_CHUNK", "compute", "descriptor_matrix", "finite_or_raise",
           "neighbor_pairs"]
