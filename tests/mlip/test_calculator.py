"""The ASE calculator with the published mlearn Mo potential: NVE dynamics conserve energy, a cell relaxation
finds the Mo lattice constant, stress and forces are the derivatives of the energy, and ``from_model`` loads
a registered potential (both backends).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from tests.mlip.conftest import mlearn
from xtalbase.errors import XtalbaseError


@pytest.fixture(scope="module")
def mo_model():
    from xtalbase.mlip.n2p2 import load_model

    return load_model(mlearn("Mo", "nnp"))


def _calc(model):
    from xtalbase.mlip import Calculator

    return Calculator(model)


def test_nve_dynamics_conserve_the_total_energy(mo_model):
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Mo", "bcc", a=3.16, cubic=True) * (2, 2, 2)  # 16 atoms: the cell (6.3 Å) is wider than R_c (5.2 Å)
    atoms.rattle(0.02, seed=3)
    atoms.calc = _calc(mo_model)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    start = atoms.get_positions()
    total, kinetic = [], []

    def record() -> None:
        total.append(atoms.get_total_energy() / len(atoms))
        kinetic.append(atoms.get_kinetic_energy() / len(atoms))

    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.attach(record, interval=1)
    dyn.run(40)
    total = np.array(total)
    assert len(total) == 41
    assert np.abs(total - total[0]).max() < 1e-4  # eV/atom over 40 fs
    # the run is not trivial: kinetic and potential energy exchanged, the atoms moved
    assert np.ptp(kinetic) > 5e-3 and np.linalg.norm(atoms.get_positions() - start, axis=1).max() > 0.02


def test_a_cell_relaxation_finds_the_mo_lattice_constant(mo_model):
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = bulk("Mo", "bcc", a=3.05, cubic=True)
    strain = np.array([[0.0, 0.01, 0.0], [0.01, 0.0, -0.01], [0.0, -0.01, 0.02]])
    atoms.set_cell(atoms.cell @ (np.eye(3) + strain), scale_atoms=True)
    atoms.positions[1] += [0.05, -0.03, 0.02]
    atoms.calc = _calc(mo_model)
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    assert opt.run(fmax=1e-3, steps=100)
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    assert a == pytest.approx(3.16, abs=0.02) and b == pytest.approx(a, abs=1e-3) and c == pytest.approx(a, abs=1e-3)
    assert np.allclose([alpha, beta, gamma], 90.0, atol=0.1)
    assert np.abs(atoms.get_stress()).max() < 1e-3 and np.abs(atoms.get_forces()).max() < 1e-3


def test_stress_and_forces_are_derivatives_of_the_energy(mo_model):
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    atoms.set_cell(atoms.cell @ (np.eye(3) + 0.01 * np.random.default_rng(2).normal(size=(3, 3))), scale_atoms=True)
    atoms.calc = _calc(mo_model)
    stress, forces = atoms.get_stress(), atoms.get_forces()
    assert np.abs(stress).max() > 1e-3 and np.abs(forces).max() > 0.1
    assert np.abs(stress - calculate_numerical_stress(atoms, eps=1e-5)).max() < 1e-8  # eV/Å³, ASE's sign and order
    assert np.abs(forces - calculate_numerical_forces(atoms, eps=1e-4)).max() < 1e-6
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-9)


def test_a_cluster_has_forces_but_no_stress(mo_model):
    from ase.calculators.calculator import PropertyNotImplementedError

    atoms = Atoms("Mo5", positions=[[0, 0, 0], [2.7, 0, 0], [0, 2.8, 0], [0, 0, 2.6], [1.5, 1.4, 1.6]])
    atoms.calc = _calc(mo_model)
    assert np.abs(atoms.get_forces() - calculate_numerical_forces(atoms, eps=1e-4)).max() < 1e-6
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_an_element_the_potential_does_not_know_is_named(mo_model):
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.calc = _calc(mo_model)
    with pytest.raises(XtalbaseError, match=r"ASE atoms: element\(s\) \['Si'\] are not in the potential's \['Mo'\]"):
        atoms.get_potential_energy()


def test_from_model_loads_a_registered_potential(db, mo_model):
    import xtalbase.mlip
    from xtalbase.mlip.calculator import Calculator
    from xtalbase.mlip.potentials import import_n2p2

    report = import_n2p2(db, mlearn("Mo", "nnp"), name="mlearn-Mo")
    assert xtalbase.mlip.Calculator is Calculator
    atoms = bulk("Mo", "bcc", a=3.1, cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=5)
    expected = atoms.copy()
    expected.calc = _calc(mo_model)
    for key in (report.model_id, "mlearn-Mo"):
        calc = Calculator.from_model(db, key)
        assert calc.model_id == report.model_id
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(expected.get_potential_energy(), abs=1e-10)
        assert np.abs(atoms.get_forces() - expected.get_forces()).max() < 1e-10
        assert np.abs(atoms.get_stress() - expected.get_stress()).max() < 1e-12
