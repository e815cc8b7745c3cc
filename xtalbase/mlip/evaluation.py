"""Errors of a potential on configurations: energy (meV/atom), force components (eV/Å), extrapolating atoms.

An atom *extrapolates* when any of its symmetry functions lies outside the range its element had on the
training atoms (for an imported n2p2 model: the ``scaling.data`` min/max), beyond a relative tolerance of
1e-9 of that range. ``RMSE``/``MAE`` of energies are per atom over configurations; of forces over every
Cartesian component of every atom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from xtalbase.mlip.acsf import Descriptors

#: Configurations per forward pass when evaluating.
BATCH = 16
#: Forward-pass batches per task when configurations are predicted by workers: a task always starts at a batch
#: boundary, so every configuration is computed in the same batch, with the same numbers, wherever it runs.
TASK_BATCHES = 4
RANGE_TOLERANCE = 1e-9


@dataclass
class PredictedConfiguration:
    """One configuration's prediction: energy (eV), forces (N, 3) eV/Å, stress (3, 3) eV/Å³, extrapolating atoms."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    extrapolating_atoms: int


@dataclass
class Evaluation:
    """Summary numbers (``summary()`` is the ``--json`` shape), per-group numbers and each prediction."""

    n_structures: int
    n_atoms: int
    energy_rmse_mev: float | None
    energy_mae_mev: float | None
    force_rmse: float | None
    force_mae: float | None
    extrapolating_atoms: int
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: list[PredictedConfiguration] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Exactly the keys of ``xtalbase potential evaluate --json``."""
        return {"n_structures": self.n_structures, "n_atoms": self.n_atoms, "energy_rmse_mev": self.energy_rmse_mev,
                "energy_mae_mev": self.energy_mae_mev, "force_rmse": self.force_rmse, "force_mae": self.force_mae,
                "extrapolating_atoms": self.extrapolating_atoms}


def outlier_atoms(model: Any, desc: "Descriptors") -> np.ndarray:
    """Boolean (n_atoms,): atoms with a symmetry function outside their element's training range."""
    from xtalbase.mlip.model import training_range

    out = np.zeros(desc.n_atoms, dtype=bool)
    for element, block in desc.blocks.items():
        lo, hi = training_range(model, element)
        if np.isnan(lo).all():
            continue
        values = block.values.detach().cpu().numpy()
        slack = RANGE_TOLERANCE * np.maximum(np.nan_to_num(hi - lo), 1e-12)
        bad = ((values < lo - slack) | (values > hi + slack)).any(axis=1)
        out[block.atoms.cpu().numpy()[bad]] = True
    return out


def predict_configurations(model: Any, configs: Sequence[Any], *, stress: bool = True,
                           on_progress: Callable[[int], None] | None = None) -> list[PredictedConfiguration]:
    """Energy, forces, stress (periodic cells) and the extrapolation count of each configuration."""
    from xtalbase.mlip import acsf
    from xtalbase.mlip.model import pack, predict

    dtype = next(iter(model.parameters())).dtype
    out: list[PredictedConfiguration] = []
    for start in range(0, len(configs), BATCH):
        chunk = configs[start:start + BATCH]
        descs = [acsf.compute(model.recipe, c.numbers, c.positions, c.cell, c.pbc, dtype=dtype,
                              what=f"structure {getattr(c, 'structure_id', start + k)}") for k, c in enumerate(chunk)]
        volumes = [abs(float(np.linalg.det(np.asarray(c.cell, dtype=float)))) for c in chunk]
        result = predict(model, pack(descs, volumes, dtype=dtype), forces=True, stress=stress)
        forces = result.forces.detach().cpu().numpy()
        offset = 0
        for k, (c, d) in enumerate(zip(chunk, descs)):
            n = d.n_atoms
            periodic = bool(np.all(np.asarray(c.pbc)))
            out.append(PredictedConfiguration(
                energy=float(result.energy[k]), forces=forces[offset:offset + n],
                stress=result.stress[k].detach().cpu().numpy() if stress and periodic else None,
                extrapolating_atoms=int(outlier_atoms(model, d).sum())))
            offset += n
        if on_progress:
            on_progress(len(chunk))
    return out


def predict_on_workers(artifact: bytes, sha256: str, configs: Sequence[Any], *, workers: int = 1,
                       scheduler: str | None = None, stress: bool = True,
                       on_progress: Callable[[int], None] | None = None) -> list[PredictedConfiguration]:
    """:func:`predict_configurations` of a stored potential, in tasks of :data:`TASK_BATCHES` batches computed by
    ``workers`` local processes or the workers of a Dask ``scheduler`` (default ``$XTALBASE_DASK_SCHEDULER``).

    The artifact (the stored bytes: 20 kB for the mlearn n2p2 Mo potential) travels with each task and is loaded
    once per worker process; workers run torch on one thread. With one local worker everything runs here, on this
    process's torch threads.
    """
    from xtalbase.platform.config import resolve_scheduler
    from xtalbase.platform.runner import Runner

    scheduler = resolve_scheduler(scheduler)
    threads = None if workers <= 1 and scheduler is None else 1
    size = BATCH * TASK_BATCHES
    tasks = ((lo, (artifact, sha256, list(configs[lo:lo + size]), stress, threads)) for lo in range(0, len(configs), size))
    out: list[PredictedConfiguration] = []
    with Runner(_predict_task, workers=workers, scheduler=scheduler, name="potential") as runner:
        for _, preds in runner.map(tasks):
            out.extend(preds)
            if on_progress:
                on_progress(len(preds))
    return out


def _predict_task(artifact: bytes, sha256: str, configs: list[Any], stress: bool,
                  threads: int | None) -> list[PredictedConfiguration]:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    model = _MODELS.get(sha256)
    if model is None:
        from xtalbase.mlip.model import from_bytes

        _MODELS.clear()  # one potential per evaluation: keep only the latest in a long-lived worker
        model = _MODELS[sha256] = from_bytes(artifact, expected_sha256=sha256)
    return predict_configurations(model, configs, stress=stress)


#: Potentials loaded in this (worker) process, by artifact sha256.
_MODELS: dict[str, Any] = {}


def evaluate(model: Any, configs: Sequence[Any], *, on_progress: Callable[[int], None] | None = None) -> Evaluation:
    """Predict every configuration and compare with its stored energy and forces (overall and per group)."""
    return score(configs, predict_configurations(model, configs, on_progress=on_progress))


def score(configs: Sequence[Any], preds: Sequence[PredictedConfiguration]) -> Evaluation:
    """Predictions compared with the stored energies and forces of ``configs`` (overall and per group)."""
    result = _metrics(configs, preds)
    groups: dict[str, list[int]] = {}
    for k, c in enumerate(configs):
        label = getattr(c, "group", None)
        if label:
            groups.setdefault(str(label), []).append(k)
    if len(groups) > 1 or (groups and sum(map(len, groups.values())) < len(configs)):
        result.groups = {g: _metrics([configs[k] for k in ks], [preds[k] for k in ks]).summary()
                         for g, ks in sorted(groups.items())}
    result.predictions = list(preds)
    return result


def _metrics(configs: Sequence[Any], preds: Sequence[PredictedConfiguration]) -> Evaluation:
    e_err = [(p.energy - c.energy) / len(c.numbers) for c, p in zip(configs, preds) if c.energy is not None]
    f_err = [(p.forces - np.asarray(c.forces)).ravel() for c, p in zip(configs, preds) if c.forces is not None]
    e = np.array(e_err) * 1000.0
    f = np.concatenate(f_err) if f_err else np.zeros(0)
    return Evaluation(
        n_structures=len(configs), n_atoms=int(sum(len(c.numbers) for c in configs)),
        energy_rmse_mev=float(np.sqrt(np.mean(e ** 2))) if len(e) else None,
        energy_mae_mev=float(np.mean(np.abs(e))) if len(e) else None,
        force_rmse=float(np.sqrt(np.mean(f ** 2))) if len(f) else None,
        force_mae=float(np.mean(np.abs(f))) if len(f) else None,
        extrapolating_atoms=int(sum(p.extrapolating_atoms for p in preds)))


def baseline(train_configs: Sequence[Any], configs: Sequence[Any]) -> dict[str, float | None]:
    """The mean-energy baseline: per-element references fitted on ``train_configs``, zero forces (meV/atom, eV/Å)."""
    elements = sorted({int(z) for c in train_configs for z in c.numbers})
    def counts(c: Any) -> np.ndarray:
        return np.array([np.sum(np.asarray(c.numbers) == z) for z in elements], dtype=float)
    a = np.array([counts(c) for c in train_configs])
    ref, *_ = np.linalg.lstsq(a, np.array([c.energy for c in train_configs], dtype=float), rcond=None)
    known = [c for c in configs if set(int(z) for z in c.numbers) <= set(elements)]
    e = np.array([(c.energy - counts(c) @ ref) / len(c.numbers) for c in known]) * 1000.0
    f = np.concatenate([np.asarray(c.forces).ravel() for c in known if c.forces is not None] or [np.zeros(0)])
    return {"energy_rmse_mev": float(np.sqrt(np.mean(e ** 2))) if len(e) else None,
            "energy_mae_mev": float(np.mean(np.abs(e))) if len(e) else None,
            "force_rmse": float(np.sqrt(np.mean(f ** 2))) if len(f) else None,
            "force_mae": float(np.mean(np.abs(f))) if len(f) else None}
