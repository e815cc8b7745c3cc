"""Fit an HDNNP to configurations with energies and forces: reference energies, scaling, then Adam or L-BFGS.

Steps, each on the training configurations only:

1. symmetry functions and their Jacobians, computed once (:mod:`xtalbase.mlip.acsf`) and reused every epoch;
2. per-element reference energies by least squares on the element counts, in float64;
3. feature scaling per element (``minmax`` to [0, 1] or ``standard``); a channel seen on fewer than
   :data:`RARE_ATOMS` atoms, or with a spread below 1e-6 of the pooled one, takes the pooled statistics of its
   element so it is never divided by ~0;
4. loss ``w_E·MSE(E/atom) + w_F·MSE(F components) (+ w_S·MSE(stress))``; by default ``w_E = 1/Var(E/atom)``
   and ``w_F = 1/Var(F)`` over the training data, so both terms start near 1 (with unit weights on total
   energies the force term would dominate by ~1000×);
5. Adam (mini-batches in a seeded order) or L-BFGS (full batch, strong-Wolfe line search; a step that makes
   the loss or a weight non-finite is undone and training stops with that reason); the weights with the best
   validation loss are kept, and training stops after ``patience`` epochs without improvement.

Same data, recipe, options and seed give the same weights on the same CPU build (no global RNG is used).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.mlip.recipe import PotentialRecipe

if TYPE_CHECKING:
    pass

#: A channel non-zero on fewer training atoms than this takes its element's pooled scaling statistics.
RARE_ATOMS = 5
OPTIMIZERS = ("adam", "lbfgs")


class ConfigurationLike(Protocol):
    """What training needs of a configuration (:class:`xtalbase.mlip.configurations.Configuration` has it)."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: Any
    energy: float | None
    forces: np.ndarray | None
    stress: np.ndarray | None


@dataclass(frozen=True)
class TrainOptions:
    """Training settings; ``None`` weights mean "balanced by the training variances"."""

    optimizer: str = "lbfgs"
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    lbfgs_iterations: int = 20
    lbfgs_history: int = 100
    energy_weight: float | None = None
    force_weight: float | None = None
    stress_weight: float = 0.0
    patience: int = 20
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise XtalbaseError(f"optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.lbfgs_iterations < 1:
            raise XtalbaseError("epochs, batch_size, patience and lbfgs_iterations must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded as the model's hyperparameters)."""
        return asdict(self)


@dataclass
class Prepared:
    """Configurations with their descriptors (a :class:`~xtalbase.mlip.store.DescriptorStore`) and targets."""

    descriptors: Any
    volumes: np.ndarray
    n_atoms: np.ndarray
    energy: np.ndarray
    forces: list[np.ndarray]
    stress: list[np.ndarray | None]
    compositions: np.ndarray

    def __len__(self) -> int:
        return len(self.descriptors)


@dataclass
class FitResult:
    """A fitted model, its per-epoch history, why training stopped and what it cost."""

    model: Any
    history: list[dict[str, float]]
    best_epoch: int
    stop_reason: str
    weights: dict[str, float]
    descriptor_seconds: float
    fit_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def prepare(recipe: PotentialRecipe, configs: Sequence[ConfigurationLike], *, what: str = "training set",
            need_forces: bool = True, on_progress: Callable[[int], None] | None = None,
            memory_budget: int | None = None) -> Prepared:
    """Descriptors (with Jacobians) and targets of ``configs``; a configuration without energy (or forces) is an error.

    Descriptors beyond ``memory_budget`` bytes are spilled to disk (:mod:`xtalbase.mlip.store`).
    """
    from xtalbase.mlip import acsf
    from xtalbase.mlip.acsf import element_symbols
    from xtalbase.mlip.store import DescriptorStore

    store = DescriptorStore(memory_budget)
    vols, energies, forces, stresses, comps, natoms = [], [], [], [], [], []
    index = {e: k for k, e in enumerate(recipe.elements)}
    for n, cfg in enumerate(configs):
        where = f"{what}, configuration {getattr(cfg, 'structure_id', n)}"
        if cfg.energy is None or not np.isfinite(cfg.energy):
            raise XtalbaseError(f"{where}: no finite energy to train on")
        if need_forces and cfg.forces is None:
            raise XtalbaseError(f"{where}: no forces (train with force_weight=0 to use energies only)")
        desc = acsf.compute(recipe, cfg.numbers, cfg.positions, cfg.cell, cfg.pbc, what=where)
        acsf.finite_or_raise(desc, where)
        store.append(desc)
        vols.append(abs(float(np.linalg.det(np.asarray(cfg.cell, dtype=float)))))
        energies.append(float(cfg.energy))
        forces.append(np.zeros((len(cfg.numbers), 3)) if cfg.forces is None else np.asarray(cfg.forces, dtype=float))
        stresses.append(None if cfg.stress is None else np.asarray(cfg.stress, dtype=float))
        count = np.zeros(len(recipe.elements))
        for symbol in element_symbols(cfg.numbers):
            count[index[symbol]] += 1
        comps.append(count)
        natoms.append(len(cfg.numbers))
        if on_progress:
            on_progress(1)
    return Prepared(descriptors=store, volumes=np.array(vols), n_atoms=np.array(natoms), energy=np.array(energies),
                    forces=forces, stress=stresses, compositions=np.array(comps).reshape(len(store), len(recipe.elements)))



def fit_reference_energies(data: Prepared) -> np.ndarray:
    """Per-element reference energies (eV) minimising Σ (E - Σ_e n_e E_e)² in float64 (minimum-norm when degenerate)."""
    solution, *_ = np.linalg.lstsq(data.compositions.astype(np.float64), data.energy.astype(np.float64), rcond=None)
    return solution


def fit_scaling(recipe: PotentialRecipe, data: Prepared) -> dict[str, tuple[np.ndarray, ...]]:
    """``{element: (mul, add, min, max)}`` fitted on ``data``; rare or flat channels use pooled statistics."""
    out = {}
    for element in recipe.elements:
        n_f = len(recipe.for_element(element))
        rows = [d.blocks[element].values.detach().cpu().numpy() for d in data.descriptors if element in d.blocks]
        values = np.concatenate(rows) if rows else np.zeros((0, n_f))
        if len(values) == 0:
            out[element] = (np.ones(n_f), np.zeros(n_f), np.full(n_f, np.nan), np.full(n_f, np.nan))
            continue
        lo, hi = values.min(0), values.max(0)
        mean, std = values.mean(0), values.std(0)
        spread = hi - lo if recipe.scaling != "standard" else std
        seen = (np.abs(values) > 1e-12).sum(0)
        good = (seen >= RARE_ATOMS) & (spread > 0)
        pooled_spread = float(np.median(spread[good])) if good.any() else 1.0
        pooled_mean = float(np.median(mean[good])) if good.any() else 0.0
        weak = ~good | (spread < 1e-6 * pooled_spread)
        spread = np.where(weak, pooled_spread, spread)
        if recipe.scaling == "none":
            mul, add = np.ones(n_f), np.zeros(n_f)
        elif recipe.scaling == "standard":
            centre = np.where(weak, pooled_mean, mean)
            mul, add = 1.0 / spread, -centre / spread
        else:
            origin = np.where(weak, np.minimum(lo, 0.0), lo)
            mul, add = 1.0 / spread, -origin / spread
        out[element] = (mul, add, lo, hi)
    return out


def fit(recipe: PotentialRecipe, train: Prepared, val: Prepared | None, options: TrainOptions, *,
        on_epoch: Callable[[dict[str, float]], None] | None = None, descriptor_seconds: float = 0.0,
        init: Any = None) -> FitResult:
    """Train a potential on ``train``; ``val`` drives early stopping (else the training loss does).

    ``init`` (a model of the same recipe) starts from its weights, scaling and references instead of fresh ones
    (retraining on an extended set).
    """
    import torch

    if len(train) == 0:
        raise XtalbaseError("nothing to train on: the training set is empty")
    started = time.perf_counter()
    model = _initial_model(recipe, train, options, init)
    weights = loss_weights(train, options)
    objective = _Objective(model, train, weights, options)
    validation = _Objective(model, val, weights, options) if val is not None and len(val) else None
    params = list(model.parameters())
    history: list[dict[str, float]] = []
    best: tuple[float, int, Any] = (float("inf"), -1, None)
    stop = "epochs"
    rng = np.random.default_rng(options.seed)
    if options.optimizer == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=options.lbfgs_iterations, history_size=options.lbfgs_history,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14)
    else:
        opt = torch.optim.Adam(params, lr=options.learning_rate)
    for epoch in range(1, options.epochs + 1):
        saved = [p.detach().clone() for p in params]
        if options.optimizer == "lbfgs":
            opt.step(lambda: objective.backward(opt))
        else:
            for idx in np.array_split(rng.permutation(len(train)), max(1, -(-len(train) // options.batch_size))):
                objective.backward(opt, idx)
                opt.step()
        train_loss, train_parts = objective.value()
        if not np.isfinite(train_loss) or not all(bool(p.isfinite().all()) for p in params):
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)
            stop = "non-finite step undone"
            break
        row = {"epoch": epoch, "train_loss": train_loss, "train_energy_rmse_mev": 1000 * train_parts["energy_rmse"],
               "train_force_rmse": train_parts["force_rmse"]}
        val_loss = train_loss
        if validation is not None:
            val_loss, val_parts = validation.value()
            row.update(val_loss=val_loss, val_energy_rmse_mev=1000 * val_parts["energy_rmse"],
                       val_force_rmse=val_parts["force_rmse"])
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if val_loss < best[0]:
            best = (val_loss, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        elif epoch - best[1] >= options.patience:
            stop = f"no validation improvement for {options.patience} epochs"
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
    model.eval()
    return FitResult(model=model, history=history, best_epoch=best[1], stop_reason=stop, weights=weights,
                     descriptor_seconds=descriptor_seconds, fit_seconds=time.perf_counter() - started)


def _initial_model(recipe: PotentialRecipe, train: Prepared, options: TrainOptions, init: Any) -> Any:
    """A seeded network with reference energies, output scale and feature scaling fitted on ``train`` (or ``init``'s)."""
    import torch

    from xtalbase.mlip.model import build, set_scaling, training_range

    model = build(recipe, seed=options.seed, dtype=torch.float64, device=options.device)
    if init is not None:
        # keep the parent's scaling (its weights depend on it) but measure the extrapolation range on this data
        model.load_state_dict(init.state_dict())
        for element, (_, _, lo, hi) in fit_scaling(recipe, train).items():
            old_lo, old_hi = training_range(model, element)
            mul = getattr(model, f"scale_mul_{element}").detach().cpu().numpy()
            add = getattr(model, f"scale_add_{element}").detach().cpu().numpy()
            set_scaling(model, element, mul, add, np.fmin(lo, old_lo), np.fmax(hi, old_hi))
        return model
    reference = fit_reference_energies(train)
    residual = (train.energy - train.compositions @ reference) / train.n_atoms
    with torch.no_grad():
        model.reference.copy_(torch.as_tensor(reference, dtype=torch.float64))
        model.energy_scale.fill_(max(float(residual.std()), 1e-3))
    for element, (mul, add, lo, hi) in fit_scaling(recipe, train).items():
        set_scaling(model, element, mul, add, lo, hi)
    return model


class _Objective:
    """The loss over a set of configurations, evaluated in chunks whose gradients accumulate.

    Sums of squared errors are divided by the counts of the whole set (or of the Adam batch), so a chunked
    evaluation gives the same loss and gradient as one pass. A set held in memory is packed once.
    """

    def __init__(self, model: Any, data: Prepared, weights: dict[str, float], options: TrainOptions) -> None:
        import torch

        self.model, self.data, self.weights, self.options = model, data, weights, options
        self.dtype, self.device = torch.float64, options.device
        self.targets = _targets(data, self.dtype, self.device)
        spilled = getattr(data.descriptors, "spilled", 0)
        everything = np.arange(len(data))
        self.chunks = [everything] if not spilled else np.array_split(everything, max(1, -(-len(data) // options.batch_size)))
        self._packed = _pack(data, everything, self.dtype, self.device) if not spilled else None

    def _batch(self, idx: np.ndarray) -> Any:
        if self._packed is not None and len(idx) == len(self.data):
            return self._packed
        return _pack(self.data, idx, self.dtype, self.device)

    def _parts(self, idx: np.ndarray, graph: bool, totals: tuple[int, int, int]) -> tuple[Any, float, float]:
        """(loss share of ``idx``, squared energy error sum, squared force error sum).

        ``totals``: (configurations, force components, configurations with stress) of the set the loss averages over.
        """
        from xtalbase.mlip.model import predict

        energy, n_atoms, forces, stress, has_stress = _select(self.targets, idx)
        use_stress = self.weights["stress"] > 0 and bool(has_stress.any())
        out = predict(self.model, self._batch(idx), forces=self.weights["forces"] > 0, stress=use_stress, create_graph=graph)
        e_sq = (((out.energy - energy) / n_atoms) ** 2).sum()
        loss = self.weights["energy"] * e_sq / totals[0]
        f_sq = out.energy.new_zeros(())
        if out.forces is not None:
            f_sq = ((out.forces - forces) ** 2).sum()
            loss = loss + self.weights["forces"] * f_sq / max(1, totals[1])
        if use_stress:
            s_sq = ((out.stress - stress)[has_stress] ** 2).sum() / 9.0
            loss = loss + self.weights["stress"] * s_sq / max(1, totals[2])
        return loss, float(e_sq.detach()), float(f_sq.detach())

    def _totals(self, idx: np.ndarray) -> tuple[int, int, int]:
        return len(idx), 3 * int(self.data.n_atoms[idx].sum()), int(self.targets["has_stress"][idx].sum())

    def backward(self, opt: Any, idx: np.ndarray | None = None) -> Any:
        """Zero the gradients, accumulate ``d loss`` over the chunks of ``idx`` (default: all), return the loss."""
        opt.zero_grad()
        chunks = self.chunks if idx is None else [idx]
        totals = self._totals(np.arange(len(self.data)) if idx is None else idx)
        value = 0.0
        for chunk in chunks:
            loss, _, _ = self._parts(chunk, True, totals)
            loss.backward()
            value += float(loss.detach())
        return self.model.energy_scale.new_tensor(value)

    def value(self) -> tuple[float, dict[str, float]]:
        """The loss of the whole set and its energy (eV/atom) and force (eV/Å) RMSEs, without a graph."""
        totals = self._totals(np.arange(len(self.data)))
        loss = e_sq = f_sq = 0.0
        for chunk in self.chunks:
            part, e, f = self._parts(chunk, False, totals)
            loss, e_sq, f_sq = loss + float(part.detach()), e_sq + e, f_sq + f
        return loss, {"energy_rmse": (e_sq / totals[0]) ** 0.5, "force_rmse": (f_sq / max(1, totals[1])) ** 0.5}


def loss_weights(train: Prepared, options: TrainOptions) -> dict[str, float]:
    """``{"energy", "forces", "stress"}`` weights of the loss (balanced by variance unless given)."""
    per_atom = train.energy / train.n_atoms
    comps = np.concatenate([f.ravel() for f in train.forces]) if train.forces else np.zeros(1)
    var_e = float(np.var(per_atom - (train.compositions @ fit_reference_energies(train)) / train.n_atoms))
    var_f = float(np.var(comps))
    w_e = options.energy_weight if options.energy_weight is not None else (1.0 / var_e if var_e > 1e-12 else 1.0)
    w_f = options.force_weight if options.force_weight is not None else (1.0 / var_f if var_f > 1e-12 else 1.0)
    return {"energy": float(w_e), "forces": float(w_f), "stress": float(options.stress_weight)}


def _pack(data: Prepared, idx: Any, dtype: Any, device: Any) -> Any:
    from xtalbase.mlip.model import pack

    idx = list(idx)
    return pack([data.descriptors[i] for i in idx], data.volumes[idx], dtype=dtype, device=device)


def _targets(data: Prepared, dtype: Any, device: Any) -> dict[str, Any]:
    import torch

    offsets = np.concatenate([[0], np.cumsum(data.n_atoms)])
    has_stress = np.array([s is not None for s in data.stress])
    stress = np.stack([s if s is not None else np.zeros((3, 3)) for s in data.stress]) if len(data) else np.zeros((0, 3, 3))
    return {"energy": torch.as_tensor(data.energy, dtype=dtype, device=device),
            "n_atoms": torch.as_tensor(data.n_atoms, dtype=dtype, device=device),
            "forces": torch.as_tensor(np.concatenate(data.forces), dtype=dtype, device=device),
            "offsets": offsets, "stress": torch.as_tensor(stress, dtype=dtype, device=device),
            "has_stress": torch.as_tensor(has_stress, device=device)}


def _select(targets: dict[str, Any], idx: Any) -> tuple[Any, Any, Any, Any, Any]:
    import torch

    idx = np.asarray(list(idx), dtype=np.int64)
    offsets = targets["offsets"]
    rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in idx]) if len(idx) else np.zeros(0, np.int64)
    t = torch.as_tensor(idx)
    return (targets["energy"][t], targets["n_atoms"][t], targets["forces"][torch.as_tensor(rows)], targets["stress"][t],
            targets["has_stress"][t])
