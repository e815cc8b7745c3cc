"""Training on labels of a known "teacher" network: both optimisers learn and report their errors per epoch, a
stress loss works beside configurations without a cell, reference energies are exact. No database."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.mlip.test_acsf import SMOOTH, _analytic, _cluster, _model, _nacl, _recipe
from xtalbase.mlip import training


@pytest.fixture(scope="module")
def labelled():
    """Four rattled NaCl cells (with stress) and four Na4Cl4 clusters (no cell, no stress), labelled by a teacher."""
    recipe = _recipe(SMOOTH)
    teacher = _model(recipe, seed=1)
    configs = []
    for seed in range(4):
        numbers, positions, cell = _nacl(seed=seed)
        energy, forces, stress = _analytic(teacher, numbers, positions, cell, True)
        configs.append(SimpleNamespace(numbers=numbers, positions=positions, cell=cell, pbc=(True,) * 3, energy=energy,
                                       forces=forces, stress=stress))
        numbers, positions = _cluster(seed=seed)
        energy, forces, _ = _analytic(teacher, numbers, positions, np.zeros((3, 3)), False)
        configs.append(SimpleNamespace(numbers=numbers, positions=positions, cell=np.zeros((3, 3)), pbc=(False,) * 3,
                                       energy=energy, forces=forces, stress=None))
    return recipe, training.prepare(recipe, configs)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_each_optimizer_lowers_the_loss_and_reports_errors_per_epoch(labelled, optimizer):
    recipe, data = labelled
    options = training.TrainOptions(optimizer=optimizer, epochs=4, lbfgs_iterations=4, batch_size=3, learning_rate=1e-2)
    result = training.fit(recipe, data, None, options)
    assert result.stop_reason == "epochs" and [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    for row in result.history:
        assert {"train_loss", "train_energy_rmse_mev", "train_force_rmse"} <= set(row)
        assert np.isfinite([row["train_loss"], row["train_energy_rmse_mev"], row["train_force_rmse"]]).all()
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_a_stress_loss_trains_beside_configurations_without_a_cell(labelled):
    # the clusters have no volume: their stress is undefined and must stay out of the loss and its gradient
    recipe, data = labelled
    options = training.TrainOptions(epochs=3, lbfgs_iterations=4, stress_weight=10.0)
    result = training.fit(recipe, data, None, options)
    assert result.stop_reason == "epochs" and len(result.history) == 3
    assert all(bool(p.isfinite().all()) for p in result.model.parameters())
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_reference_energies_are_exact_for_energies_linear_in_the_composition():
    compositions = np.array([[4, 4], [3, 5], [8, 0], [1, 6]], dtype=float)
    reference = np.array([-1.25, -3.5])
    data = SimpleNamespace(compositions=compositions, energy=compositions @ reference)
    assert np.allclose(training.fit_reference_energies(data), reference, rtol=0, atol=1e-12)
