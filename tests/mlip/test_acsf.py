"""Symmetry functions, their analytic Jacobian and virial, and the forces and stress of the network built on them.

Checked against: central finite differences (descriptors, energy, strain), autograd through the same
expressions (:func:`xtalbase.mlip.model.predict_autograd`), and an independent brute-force implementation
written here in plain Python (explicit periodic images, every j < k pair of neighbours, n2p2's formulas).
No database; runs once.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

from xtalbase.mlip import acsf
from xtalbase.mlip.model import build, pack, predict, predict_autograd
from xtalbase.mlip.recipe import PotentialRecipe, SymmetryFunction

NA, CL = 11, 17
#: Finite-difference steps: positions (Å) and strain components.
H = 1e-4
H_STRAIN = 1e-5


def _functions(cutoffs: dict[str, tuple[str, float]], rc: float = 5.0) -> list[SymmetryFunction]:
    """Radial, narrow and wide angular functions of Na and Cl; ``cutoffs`` maps a role to (cutoff name, alpha)."""
    out = []
    for center in ("Na", "Cl"):
        for k, neighbor in enumerate(("Na", "Cl")):
            name, alpha = cutoffs["radial"]
            out += [SymmetryFunction("radial", center, (neighbor,), eta=0.5, rs=2.8 + 1.2 * k, rc=rc, cutoff=name, alpha=alpha),
                    SymmetryFunction("radial", center, (neighbor,), eta=0.05, rc=rc - 0.3, cutoff=cutoffs["radial2"][0])]
        for pair in (("Na", "Na"), ("Cl", "Na"), ("Cl", "Cl")):
            name, alpha = cutoffs["angular"]
            out += [SymmetryFunction("angular", center, pair, eta=0.005, zeta=1.0, lam=-1.0, rc=rc, cutoff=name, alpha=alpha),
                    SymmetryFunction("angular", center, pair, eta=0.02, zeta=4.5, lam=1.0, rs=0.4, rc=rc - 0.4,
                                     cutoff=cutoffs["angular2"][0])]
            name, alpha = cutoffs["wide"]
            out += [SymmetryFunction("angular_wide", center, pair, eta=0.005, zeta=2.0, lam=1.0, rc=rc, cutoff=name,
                                     alpha=alpha),
                    SymmetryFunction("angular_wide", center, pair, eta=0.01, zeta=1.5, lam=-1.0, rs=0.3, rc=rc - 0.2,
                                     cutoff=cutoffs["wide2"][0])]
    return out


#: Smooth cutoffs only (finite differences); inner cutoffs on poly2 and cos.
SMOOTH = {"radial": ("cos", 0.2), "radial2": ("tanh", 0.0), "angular": ("poly2", 0.3), "angular2": ("exp", 0.0),
          "wide": ("tanhu", 0.0), "wide2": ("poly4", 0.0)}
#: Every other cutoff, the hard one included (autograd and brute force only).
OTHERS = {"radial": ("poly1", 0.1), "radial2": ("hard", 0.0), "angular": ("poly3", 0.0), "angular2": ("cos", 0.0),
          "wide": ("hard", 0.0), "wide2": ("exp", 0.25)}


def _recipe(cutoffs: dict) -> PotentialRecipe:
    return PotentialRecipe(elements=("Na", "Cl"), functions=tuple(_functions(cutoffs)), name="custom")


def _nacl(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rattled rock-salt NaCl (8 atoms) in a slightly sheared cell: numbers, positions (Å), cell (Å)."""
    rng = np.random.default_rng(seed)
    a = 5.64
    frac = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])
    cell = a * np.eye(3) + np.array([[0.0, 0.15, -0.1], [0.05, 0.0, 0.2], [-0.12, 0.1, 0.0]])
    positions = frac @ cell + rng.normal(scale=0.12, size=(8, 3))
    return np.array([NA] * 4 + [CL] * 4), positions, cell


def _cluster(seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A rattled Na4Cl4 cube (non-periodic): numbers and positions (Å)."""
    rng = np.random.default_rng(seed)
    corners = np.array(list(itertools.product((0.0, 2.8), repeat=3)))
    numbers = np.array([NA if sum(c) / 2.8 % 2 == 0 else CL for c in corners])
    return numbers, corners + rng.normal(scale=0.1, size=corners.shape)


def _model(recipe: PotentialRecipe, seed: int = 3):
    """A network with random weights and a feature scaling that keeps the tanh layers away from saturation."""
    model = build(recipe, seed=seed)
    for element in recipe.elements:
        getattr(model, f"scale_mul_{element}").fill_(0.3)
    model.energy_scale.fill_(10.0)
    return model


def _energy_of(model, desc) -> float:
    import torch

    with torch.no_grad():
        return sum(float(model.atomic_energies(e, b.values).sum()) for e, b in desc.blocks.items())


def _energy(model, numbers, positions, cell, pbc) -> float:
    return _energy_of(model, acsf.compute(model.recipe, numbers, positions, cell, pbc, jacobian=False))


def _analytic(model, numbers, positions, cell, pbc):
    desc = acsf.compute(model.recipe, numbers, positions, cell, pbc)
    volume = abs(np.linalg.det(cell)) if all(np.atleast_1d(pbc)) else 1.0
    out = predict(model, pack([desc], [volume]), forces=True, stress=bool(np.all(pbc)))
    return float(out.energy[0]), out.forces.numpy(), None if out.stress is None else out.stress[0].numpy()


@functools.cache
def _displaced(system: str) -> tuple:
    """``(numbers, positions, cell, pbc, {(atom, axis, ±1): descriptors})``: each coordinate moved by ±H."""
    if system == "periodic":
        numbers, positions, cell = _nacl(seed=6)
    else:
        (numbers, positions), cell = _cluster(seed=8), np.zeros((3, 3))
    pbc = system == "periodic"
    moved = {}
    for a, x, sign in itertools.product(range(len(numbers)), range(3), (1, -1)):
        shifted = positions.copy()
        shifted[a, x] += sign * H
        moved[a, x, sign] = acsf.compute(_recipe(SMOOTH), numbers, shifted, cell, pbc, jacobian=False)
    return numbers, positions, cell, pbc, moved


def _fd_forces(model, system: str) -> np.ndarray:
    numbers, positions, _, _, moved = _displaced(system)
    out = np.zeros_like(positions)
    for a, x in itertools.product(range(len(numbers)), range(3)):
        out[a, x] = -(_energy_of(model, moved[a, x, 1]) - _energy_of(model, moved[a, x, -1])) / (2 * H)
    return out


def test_forces_match_finite_differences_and_autograd_in_a_periodic_two_element_cell():
    model = _model(_recipe(SMOOTH))
    numbers, positions, cell, _, _ = _displaced("periodic")
    energy, forces, _ = _analytic(model, numbers, positions, cell, True)
    assert np.abs(forces).max() > 0.05  # the check is not trivially passed by vanishing forces
    assert np.abs(forces - _fd_forces(model, "periodic")).max() < 1e-6
    e_ag, f_ag, _ = predict_autograd(model, numbers, positions, cell, True)
    assert abs(float(e_ag.detach()) - energy) < 1e-10
    assert np.abs(f_ag.numpy() - forces).max() < 1e-10
    assert np.abs(forces.sum(axis=0)).max() < 1e-10  # translation invariance: no net force


def test_every_cutoff_including_hard_agrees_with_autograd():
    recipe = _recipe(OTHERS)
    assert {f.cutoff for f in recipe.functions} >= {"hard", "poly1", "poly3", "cos", "exp"}
    model = _model(recipe)
    numbers, positions, cell = _nacl(seed=5)
    energy, forces, stress = _analytic(model, numbers, positions, cell, True)
    e_ag, f_ag, s_ag = predict_autograd(model, numbers, positions, cell, True)
    assert abs(float(e_ag.detach()) - energy) < 1e-10
    assert np.abs(forces).max() > 0.05
    assert np.abs(f_ag.numpy() - forces).max() < 1e-10
    assert np.abs(s_ag.numpy() - stress).max() < 1e-10


def test_forces_of_a_molecule_without_periodicity():
    model = _model(_recipe(SMOOTH))
    numbers, positions, cell, pbc, _ = _displaced("molecule")
    energy, forces, stress = _analytic(model, numbers, positions, cell, pbc)
    assert stress is None and np.abs(forces).max() > 0.05
    assert np.abs(forces - _fd_forces(model, "molecule")).max() < 1e-6
    e_ag, f_ag, _ = predict_autograd(model, numbers, positions, cell, pbc)
    assert abs(float(e_ag.detach()) - energy) < 1e-10 and np.abs(f_ag.numpy() - forces).max() < 1e-10
    # a rigid rotation changes neither the energy nor the force magnitudes
    rot = np.linalg.qr(np.random.default_rng(7).normal(size=(3, 3)))[0]
    e_rot, f_rot, _ = _analytic(model, numbers, positions @ rot.T, cell, pbc)
    assert abs(e_rot - energy) < 1e-10 and np.abs(f_rot - forces @ rot.T).max() < 1e-10


def test_stress_from_the_virial_matches_finite_differences_of_a_strain():
    model = _model(_recipe(SMOOTH))
    numbers, positions, cell = _nacl(seed=4)
    _, _, stress = _analytic(model, numbers, positions, cell, True)
    volume = abs(np.linalg.det(cell))
    fd = np.zeros((3, 3))
    for a, b in itertools.product(range(3), range(3)):
        eps = np.zeros((3, 3))
        eps[a, b] = H_STRAIN
        e_plus = _energy(model, numbers, positions @ (np.eye(3) + eps), cell @ (np.eye(3) + eps), True)
        e_minus = _energy(model, numbers, positions @ (np.eye(3) - eps), cell @ (np.eye(3) - eps), True)
        fd[a, b] = (e_plus - e_minus) / (2 * H_STRAIN) / volume
    assert np.abs(stress).max() > 1e-3
    assert np.abs(stress - stress.T).max() < 1e-10  # rotation invariance makes it symmetric
    assert np.abs(stress - fd).max() < 1e-8
    _, _, s_ag = predict_autograd(model, numbers, positions, cell, True)
    assert np.abs(s_ag.numpy() - stress).max() < 1e-10


def _dense_jacobian(block, n_atoms: int) -> np.ndarray:
    """(n_e, n_f, n_atoms, 3) from the sparse (centre, atom) blocks."""
    n_e, n_f = block.values.shape
    dense = np.zeros((n_e, n_f, n_atoms, 3))
    keys = set()
    for c, m, jac in zip(block.jac_center.tolist(), block.jac_atom.tolist(), block.jac.numpy()):
        assert (c, m) not in keys  # one block per (centre, atom): periodic images summed into it
        keys.add((c, m))
        dense[c, :, m, :] = jac
    return dense


@pytest.mark.parametrize("system", ["periodic", "molecule"])
def test_descriptor_jacobian_matches_finite_differences(system):
    numbers, positions, cell, pbc, moved = _displaced(system)
    desc = acsf.compute(_recipe(SMOOTH), numbers, positions, cell, pbc)
    for e, block in desc.blocks.items():
        dense = _dense_jacobian(block, len(numbers))
        fd = np.zeros_like(dense)
        for a, x in itertools.product(range(len(numbers)), range(3)):
            fd[:, :, a, x] = (moved[a, x, 1].blocks[e].values.numpy() - moved[a, x, -1].blocks[e].values.numpy()) / (2 * H)
        assert np.abs(dense).max() > 0.1
        assert np.abs(dense - fd).max() < 1e-6 * max(1.0, np.abs(dense).max())


# --------------------------------------------------------------------------- n2p2 conventions, brute force


def _fc(name: str, r: float, rc: float, alpha: float) -> float:
    """n2p2's cutoff functions, written out again."""
    if r >= rc:
        return 0.0
    if name == "hard":
        return 1.0
    if name in ("tanhu", "tanh"):
        value = math.tanh(1.0 - r / rc) ** 3
        return value / math.tanh(1.0) ** 3 if name == "tanh" else value
    rci = alpha * rc
    if r <= rci:
        return 1.0
    x = (r - rci) / (rc - rci)
    return {"cos": lambda: 0.5 * (math.cos(math.pi * x) + 1.0),
            "exp": lambda: math.exp(1.0 - 1.0 / (1.0 - x * x)),
            "poly1": lambda: (2 * x - 3) * x * x + 1,
            "poly2": lambda: ((15 - 6 * x) * x - 10) * x ** 3 + 1,
            "poly3": lambda: x ** 4 * (x * (x * (20 * x - 70) + 84) - 35) + 1,
            "poly4": lambda: x ** 5 * (x * (x * ((315 - 70 * x) * x - 540) + 420) - 126) + 1}[name]()


def _neighbours(positions, cell, pbc, rc):
    """Per atom: every (j, vector) closer than ``rc``, from an explicit loop over periodic images."""
    pbc = (pbc,) * 3 if isinstance(pbc, bool) else pbc
    reach = []
    for axis in range(3):
        if not pbc[axis]:
            reach.append(0)
            continue
        others = [cell[k] for k in range(3) if k != axis]
        spacing = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(*others))
        reach.append(int(math.ceil(rc / spacing)) + 1)
    shifts = list(itertools.product(*(range(-n, n + 1) for n in reach)))
    out = []
    for i, ri in enumerate(positions):
        found = []
        for j, rj in enumerate(positions):
            for s in shifts:
                if i == j and s == (0, 0, 0):
                    continue
                v = rj + np.asarray(s, dtype=float) @ cell - ri
                if np.linalg.norm(v) < rc:
                    found.append((j, v))
        out.append(found)
    return out


def _brute_force(function: SymmetryFunction, center: int, numbers, neighbours) -> float:
    from ase.data import atomic_numbers

    f = function
    near = [(j, v, float(np.linalg.norm(v))) for j, v in neighbours[center] if np.linalg.norm(v) < f.rc]
    if f.kind == "radial":
        want = atomic_numbers[f.neighbors[0]]
        return sum(math.exp(-f.eta * (r - f.rs) ** 2) * _fc(f.cutoff, r, f.rc, f.alpha)
                   for j, _, r in near if numbers[j] == want)
    want = sorted(atomic_numbers[e] for e in f.neighbors)
    total = 0.0
    for a in range(len(near)):
        for b in range(a + 1, len(near)):  # each triplet once
            (j, vij, rij), (k, vik, rik) = near[a], near[b]
            if sorted((numbers[j], numbers[k])) != want:
                continue
            cos = float(vij @ vik) / (rij * rik)
            base = 1.0 + f.lam * cos
            if base <= 0.0:
                continue
            rjk = float(np.linalg.norm(vik - vij))
            squares = (rij - f.rs) ** 2 + (rik - f.rs) ** 2
            cut = _fc(f.cutoff, rij, f.rc, f.alpha) * _fc(f.cutoff, rik, f.rc, f.alpha)
            if f.kind == "angular":
                squares += (rjk - f.rs) ** 2
                cut *= _fc(f.cutoff, rjk, f.rc, f.alpha)
            total += 2.0 ** (1.0 - f.zeta) * base ** f.zeta * math.exp(-f.eta * squares) * cut
    return total


def _compare_with_brute_force(recipe, numbers, positions, cell, pbc) -> None:
    desc = acsf.compute(recipe, numbers, positions, cell, pbc, jacobian=False)
    neighbours = _neighbours(positions, cell, pbc, recipe.cutoff)
    for element, block in desc.blocks.items():
        functions = recipe.for_element(element)
        expected = np.array([[_brute_force(f, int(i), numbers, neighbours) for f in functions] for i in block.atoms])
        assert np.isfinite(expected).all() and np.abs(expected).max() > 0.1
        assert np.allclose(block.values.numpy(), expected, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("cutoffs", [SMOOTH, OTHERS], ids=["smooth-cutoffs", "other-cutoffs"])
def test_values_match_a_brute_force_implementation_of_the_n2p2_formulas(cutoffs):
    numbers, positions, cell = _nacl(seed=9)
    _compare_with_brute_force(_recipe(cutoffs), numbers, positions, cell, True)
    numbers, positions = _cluster(seed=10)
    _compare_with_brute_force(_recipe(cutoffs), numbers, positions, np.zeros((3, 3)), False)


def _small_cell() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaCl in a 2-atom cell narrower than R_c: each neighbour is seen through many images, each atom its own."""
    cell = np.array([[2.4, 0.0, 0.0], [0.3, 2.6, 0.0], [0.2, -0.1, 2.9]])
    return np.array([NA, CL]), np.array([[0.1, 0.05, 0.0], [1.3, 1.2, 1.5]]), cell


def test_a_small_cell_sees_many_images_of_the_same_neighbour():
    numbers, positions, cell = _small_cell()
    _compare_with_brute_force(_recipe(SMOOTH), numbers, positions, cell, True)
    # forces and stress: an atom's own images move with it and add nothing to its force
    model = _model(_recipe(SMOOTH))
    energy, forces, stress = _analytic(model, numbers, positions, cell, True)
    fd = np.zeros_like(positions)
    for a, x in itertools.product(range(2), range(3)):
        plus, minus = positions.copy(), positions.copy()
        plus[a, x] += H
        minus[a, x] -= H
        fd[a, x] = -(_energy(model, numbers, plus, cell, True) - _energy(model, numbers, minus, cell, True)) / (2 * H)
    assert np.abs(forces).max() > 0.05 and np.abs(forces - fd).max() < 1e-6
    e_ag, f_ag, s_ag = predict_autograd(model, numbers, positions, cell, True)
    assert abs(float(e_ag.detach()) - energy) < 1e-10 and np.abs(f_ag.numpy() - forces).max() < 1e-10
    assert np.abs(s_ag.numpy() - stress).max() < 1e-10 and np.abs(stress).max() > 1e-3


def test_a_batch_predicts_what_each_configuration_predicts_alone():
    # configurations of different sizes, with and without periodicity, one without any Cl: packing offsets the
    # rows of each element and the atom indices of each configuration
    model = _model(_recipe(SMOOTH))
    nacl, cluster, small = _nacl(seed=11), _cluster(seed=12), _small_cell()
    systems = [(*nacl, True), (*cluster, np.zeros((3, 3)), False), (np.array([NA] * 3), cluster[1][:3], np.zeros((3, 3)), False),
               (*small, True)]
    volumes = [abs(np.linalg.det(c)) for _, _, c, _ in systems]  # 0 without a cell
    descs = [acsf.compute(model.recipe, n, p, c, pbc) for n, p, c, pbc in systems]
    batch = predict(model, pack(descs, volumes), forces=True, stress=True)
    start = 0
    for k, (numbers, positions, cell, pbc) in enumerate(systems):
        energy, forces, stress = _analytic(model, numbers, positions, cell, pbc)
        assert float(batch.energy[k]) == pytest.approx(energy, abs=1e-12)
        assert np.abs(batch.forces[start:start + len(numbers)].numpy() - forces).max() < 1e-12
        if pbc:
            assert np.abs(batch.stress[k].numpy() - stress).max() < 1e-12
        else:
            assert np.isnan(batch.stress[k].numpy()).all()  # no cell, no stress
        start += len(numbers)
    assert start == batch.forces.shape[0]


def test_a_triplet_with_one_plus_lambda_cos_at_zero_adds_nothing():
    # three atoms on a line: for the end atoms the other two lie in the same direction (cos = 1), for the middle
    # atom in opposite ones (cos = -1). With lambda = -1 (+1) the factor 1 + lambda cos is 0 there, or rounds to
    # just below or above 0 once the line is rotated: the triplet must add (about) 0 and never NaN, also with a
    # fractional zeta, whose power of a negative number would be NaN
    functions = [SymmetryFunction(kind, "Na", ("Na", "Na"), eta=0.01, zeta=zeta, lam=lam, rc=6.0)
                 for kind in ("angular", "angular_wide") for zeta in (1.0, 1.5, 4.0) for lam in (-1.0, 1.0)]
    recipe = PotentialRecipe(elements=("Na",), functions=(*functions, SymmetryFunction("radial", "Na", ("Na",), 0.1, 6.0)))
    cols = {(f.kind, f.zeta, f.lam): k for k, f in enumerate(recipe.for_element("Na"))}
    line = np.array([[0.0, 0.0, 0.0], [1.7, 0.0, 0.0], [3.4, 0.0, 0.0]])
    rng = np.random.default_rng(0)
    rotations = [np.eye(3)] + [np.linalg.qr(rng.normal(size=(3, 3)))[0] for _ in range(12)]
    below_zero = 0
    for rot in rotations:
        positions = line @ rot.T
        d = positions[2] - positions[0], positions[1] - positions[0]
        below_zero += 1.0 - d[0] @ d[1] / (np.linalg.norm(d[0]) * np.linalg.norm(d[1])) < 0.0
        desc = acsf.compute(recipe, np.array([NA] * 3), positions, np.zeros((3, 3)), False)
        values = desc.blocks["Na"].values.numpy()
        assert np.isfinite(values).all() and np.isfinite(desc.blocks["Na"].jac.numpy()).all()
        for kind, zeta in itertools.product(("angular", "angular_wide"), (1.0, 1.5, 4.0)):
            minus, plus = values[:, cols[kind, zeta, -1.0]], values[:, cols[kind, zeta, 1.0]]
            assert abs(minus[0]) < 1e-14 and abs(minus[2]) < 1e-14 and minus[1] > 0.1  # ends: cos = 1
            assert abs(plus[1]) < 1e-14 and plus[0] > 0.1  # middle: cos = -1
            if rot is rotations[0]:
                assert minus[0] == minus[2] == plus[1] == 0.0  # exactly on the axis: exactly 0
    assert below_zero  # some rotation rounded 1 - cos below 0 (the case that would give NaN)
    _compare_with_brute_force(recipe, np.array([NA] * 3), line, np.zeros((3, 3)), False)


def test_a_triplet_is_counted_once_with_the_two_to_the_one_minus_zeta_prefactor():
    # an isolated Na-Cl-Cl triangle: G3 of Na is exactly one term, written out by hand
    eta, zeta, lam, rc = 0.03, 2.0, 1.0, 6.0
    f = SymmetryFunction("angular", "Na", ("Cl", "Cl"), eta=eta, zeta=zeta, lam=lam, rc=rc)
    recipe = PotentialRecipe(elements=("Na", "Cl"), functions=(f, SymmetryFunction("radial", "Cl", ("Na",), 0.1, rc)))
    positions = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [0.8, 2.2, 0.0]])
    value = float(acsf.compute(recipe, np.array([NA, CL, CL]), positions, np.zeros((3, 3)), False).blocks["Na"].values[0, 0])
    rij, rik = np.linalg.norm(positions[1]), np.linalg.norm(positions[2])
    rjk = np.linalg.norm(positions[2] - positions[1])
    cos = positions[1] @ positions[2] / (rij * rik)
    fc = [0.5 * (math.cos(math.pi * r / rc) + 1) for r in (rij, rik, rjk)]
    one = 2.0 ** (1 - zeta) * (1 + lam * cos) ** zeta * math.exp(-eta * (rij ** 2 + rik ** 2 + rjk ** 2)) * math.prod(fc)
    assert value == pytest.approx(one, rel=1e-13)


# --------------------------------------------------------------------------- n2p2 order


def _n2p2_less(a: SymmetryFunction, b: SymmetryFunction) -> bool:
    """n2p2's ``SymFnc*::operator<`` within one centre element, as its sources write it (type, cutoff type, alpha,
    rc, eta, rs, [zeta, lambda], e1, [e2]; elements by atomic number)."""
    from ase.data import atomic_numbers

    def fields(f: SymmetryFunction) -> list:
        head = [{"radial": 2, "angular": 3, "angular_wide": 9}[f.kind]]
        rest = [{"hard": 0, "cos": 1, "tanhu": 2, "tanh": 3, "exp": 4, "poly1": 5, "poly2": 6, "poly3": 7, "poly4": 8}[f.cutoff],
                f.alpha, f.rc, f.eta, f.rs]
        if f.kind != "radial":
            rest += [f.zeta, f.lam]
        return head + rest + [atomic_numbers[e] for e in f.neighbors]

    for x, y in zip(fields(a), fields(b)):
        if x != y:
            return x < y
    return False


def test_functions_are_ordered_as_n2p2_orders_them():
    functions = _functions(SMOOTH) + _functions(OTHERS, rc=4.0) + [
        SymmetryFunction("radial", "Na", ("Cl",), eta=0.05, rc=4.6, rs=rs) for rs in (0.5, 0.0, 1.0)] + [
        SymmetryFunction("angular", "Cl", pair, eta=0.05, zeta=zeta, lam=lam, rc=4.6)
        for pair in (("Na", "Cl"), ("Na", "Na")) for zeta in (4.0, 1.0) for lam in (1.0, -1.0)]
    shuffled = [functions[k] for k in np.random.default_rng(0).permutation(len(functions))]
    recipe = PotentialRecipe(elements=("Cl", "Na"), functions=tuple(shuffled))
    assert recipe.elements == ("Na", "Cl")  # by atomic number, as n2p2 numbers its elements
    for center in recipe.elements:
        ordered = recipe.for_element(center)
        assert len(ordered) == len({f for f in functions if f.center == center})
        for a, b in zip(ordered, ordered[1:]):
            assert not _n2p2_less(b, a), (a.label(), b.label())
        kinds = [f.kind for f in ordered]
        assert kinds == sorted(kinds, key=["radial", "angular", "angular_wide"].index)  # radial first
    # descriptor columns follow the same order
    assert [f for f in recipe.functions] == [f for e in recipe.elements for f in recipe.for_element(e)]
    # the angular neighbour pair is stored by atomic number, whichever way it was written
    assert SymmetryFunction("angular", "Na", ("Cl", "Na"), eta=0.1, rc=4.0).neighbors == ("Na", "Cl")


def test_order_within_equal_cutoffs_follows_rc_eta_rs_zeta_lambda():
    f = [SymmetryFunction("angular", "Na", ("Na", "Na"), eta=eta, zeta=zeta, lam=lam, rs=rs, rc=rc)
         for rc in (5.0, 4.0) for eta in (0.1, 0.01) for rs in (0.5, 0.0) for zeta in (2.0, 1.0) for lam in (1.0, -1.0)]
    ordered = PotentialRecipe(elements=("Na",), functions=(*f, SymmetryFunction("radial", "Na", ("Na",), 0.1, 5.0))).functions
    got = [(g.rc, g.eta, g.rs, g.zeta, g.lam) for g in ordered if g.kind == "angular"]
    assert got == sorted(got) and ordered[0].kind == "radial"
