"""The Behler–Parrinello network: one feed-forward network per element on scaled symmetry functions.

``E = Σ_i [ s · NN_e(i)(a_e ⊙ G_i + b_e) + E_ref,e(i) ]`` with per-element affine scaling ``(a, b)``, an
output scale ``s`` (eV) and per-element reference energies (eV). Forces are ``F_m = -Σ_i (∂E_i/∂G_i)
(∂G_i/∂R_m)`` from the precomputed Jacobian (:mod:`xtalbase.mlip.acsf`); the stress is
``(1/V) Σ_i (∂E_i/∂G_i) · Σ_p ∂G_i/∂D_p ⊗ D_p`` (ASE's sign: positive is tensile).

The artifact is a torch ``state_dict`` plus the recipe JSON, written by :func:`to_bytes` and read back
with ``torch.load(weights_only=True)`` (no pickle code runs) after its sha256 is checked.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.mlip.recipe import PotentialRecipe

if TYPE_CHECKING:
    import torch

    from xtalbase.mlip.acsf import Descriptors

ARTIFACT_FORMAT = "torch-state-dict"
FORMAT_TAG = "xtalbase-hdnnp/1"


def _activation(name: str) -> Any:
    import torch

    return {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "softplus": torch.nn.Softplus, "relu": torch.nn.ReLU,
            "silu": torch.nn.SiLU, "linear": torch.nn.Identity}[name]()


def build(recipe: PotentialRecipe, *, seed: int = 0, dtype: Any = None, device: Any = "cpu") -> "torch.nn.Module":
    """A fresh :class:`HDNNP` for ``recipe``; weights drawn from a generator seeded with ``seed`` (Glorot uniform)."""
    import torch

    model = _hdnnp_class()(recipe).to(dtype=dtype or torch.float64, device=device)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        for element in recipe.elements:
            for layer in model.nets[element]:
                if isinstance(layer, torch.nn.Linear):
                    fan_out, fan_in = layer.weight.shape
                    bound = (6.0 / (fan_in + fan_out)) ** 0.5
                    w = (torch.rand(layer.weight.shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * bound
                    layer.weight.copy_(w.to(layer.weight))
                    layer.bias.zero_()
    return model


_CLASS: Any = None


def _hdnnp_class() -> Any:
    """The module class, defined on first use so importing this file does not import torch."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import torch

    class HDNNP(torch.nn.Module):
        """Per-element networks with feature scaling, training ranges, reference energies and an output scale."""

        def __init__(self, recipe: PotentialRecipe) -> None:
            super().__init__()
            self.recipe = recipe
            self.elements = list(recipe.elements)
            nets = {}
            for element, n_f in recipe.n_features().items():
                layers: list[torch.nn.Module] = []
                width = n_f
                for hidden in recipe.network.hidden:
                    layers += [torch.nn.Linear(width, hidden), _activation(recipe.network.activation)]
                    width = hidden
                layers.append(torch.nn.Linear(width, 1))
                nets[element] = torch.nn.Sequential(*layers)
                self.register_buffer(f"scale_mul_{element}", torch.ones(n_f))
                self.register_buffer(f"scale_add_{element}", torch.zeros(n_f))
                self.register_buffer(f"train_min_{element}", torch.full((n_f,), float("nan")))
                self.register_buffer(f"train_max_{element}", torch.full((n_f,), float("nan")))
            self.nets = torch.nn.ModuleDict(nets)
            self.register_buffer("reference", torch.zeros(len(self.elements)))
            self.register_buffer("energy_scale", torch.ones(()))

        def atomic_energies(self, element: str, values: "torch.Tensor") -> "torch.Tensor":
            """Energies (eV) of atoms of ``element`` from their raw symmetry functions (n, n_f)."""
            scaled = values * getattr(self, f"scale_mul_{element}") + getattr(self, f"scale_add_{element}")
            out = self.nets[element](scaled).squeeze(-1)
            return out * self.energy_scale + self.reference[self.elements.index(element)]

    _CLASS = HDNNP
    return HDNNP


def set_scaling(model: Any, element: str, mul: np.ndarray, add: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Install the affine feature scaling and the training range of ``element``."""
    import torch

    for name, values in (("scale_mul", mul), ("scale_add", add), ("train_min", lo), ("train_max", hi)):
        buf = getattr(model, f"{name}_{element}")
        buf.copy_(torch.as_tensor(np.asarray(values, dtype=float), dtype=buf.dtype))


def training_range(model: Any, element: str) -> tuple[np.ndarray, np.ndarray]:
    """The (min, max) of each symmetry function of ``element`` over the training atoms (NaN when unknown)."""
    return (getattr(model, f"train_min_{element}").detach().cpu().numpy(),
            getattr(model, f"train_max_{element}").detach().cpu().numpy())


@dataclass
class Output:
    """Predictions for a batch: ``energy`` (B,) eV, ``forces`` (N, 3) eV/Å, ``stress`` (B, 3, 3) eV/Å³ (NaN for a
    configuration without a cell) or None."""

    energy: "torch.Tensor"
    forces: "torch.Tensor | None"
    stress: "torch.Tensor | None"


def predict(model: Any, batch: "Batch", *, forces: bool = True, stress: bool = False,
            create_graph: bool = False) -> Output:
    """Energies, forces (precomputed Jacobian) and stress (virial) of a packed batch.

    ``create_graph`` keeps the graph of the forces so a loss on them can be differentiated (training).
    """
    import torch

    ref = next(iter(model.parameters()))
    energy = torch.zeros(batch.n_structures, dtype=ref.dtype, device=ref.device)
    force = torch.zeros((batch.n_atoms, 3), dtype=ref.dtype, device=ref.device) if forces else None
    virial = torch.zeros((batch.n_structures, 3, 3), dtype=ref.dtype, device=ref.device) if stress else None
    for element, block in batch.blocks.items():
        values = block.values.detach().requires_grad_(forces or stress)
        e_atoms = model.atomic_energies(element, values)
        energy = energy.index_add(0, block.structure, e_atoms)
        if not (forces or stress):
            continue
        (de_dg,) = torch.autograd.grad(e_atoms.sum(), values, create_graph=create_graph)
        if forces:
            contrib = torch.einsum("kf,kfx->kx", de_dg[block.jac_center], block.jac)
            force = force.index_add(0, block.jac_atom, -contrib)
        if stress:
            virial = virial.index_add(0, block.structure, torch.einsum("nf,nfab->nab", de_dg, block.virial))
    out_stress = None
    if stress:
        # a configuration without a cell (volume 0) has no stress: NaN there, and no 0/0 in the others' gradient
        volume = batch.volume[:, None, None]
        out_stress = torch.where(volume > 0, virial / torch.where(volume > 0, volume, 1.0), torch.nan)
    if not create_graph:
        # results only: nothing downstream differentiates them
        energy = energy.detach()
        force = force.detach() if force is not None else None
        out_stress = out_stress.detach() if out_stress is not None else None
    return Output(energy=energy, forces=force, stress=out_stress)


@dataclass
class PackedBlock:
    """One element's rows of a batch: descriptors, the structure of each atom and the Jacobian blocks."""

    values: "torch.Tensor"
    structure: "torch.Tensor"
    jac_center: "torch.Tensor | None"
    jac_atom: "torch.Tensor | None"
    jac: "torch.Tensor | None"
    virial: "torch.Tensor | None"


@dataclass
class Batch:
    """Several configurations packed for one forward pass (atoms numbered consecutively across them)."""

    n_structures: int
    n_atoms: int
    atoms_per_structure: "torch.Tensor"
    volume: "torch.Tensor"
    blocks: dict[str, PackedBlock]


def pack(descriptors: Sequence["Descriptors"], volumes: Sequence[float], *, dtype: Any = None, device: Any = "cpu") -> Batch:
    """Concatenate per-configuration descriptors into one :class:`Batch`."""
    import torch

    dtype = dtype or torch.float64
    offsets = np.concatenate([[0], np.cumsum([d.n_atoms for d in descriptors])])
    parts: dict[str, dict[str, list]] = {}
    counts: dict[str, int] = {}
    for s, desc in enumerate(descriptors):
        for element, b in desc.blocks.items():
            p = parts.setdefault(element, {k: [] for k in ("values", "structure", "jac_center", "jac_atom", "jac", "virial")})
            n_e = len(b.atoms)
            p["values"].append(b.values)
            p["structure"].append(torch.full((n_e,), s, dtype=torch.long))
            if b.jac is not None:
                p["jac_center"].append(b.jac_center + counts.get(element, 0))
                p["jac_atom"].append(b.jac_atom + int(offsets[s]))
                p["jac"].append(b.jac)
                p["virial"].append(b.virial)
            counts[element] = counts.get(element, 0) + n_e
    def cat(p: dict[str, list], key: str, floating: bool) -> Any:
        if not p[key] or len(p[key]) != len(p["values"]):
            return None
        t = torch.cat(p[key])
        return t.to(device=device, dtype=dtype) if floating else t.to(device)

    blocks = {element: PackedBlock(cat(p, "values", True), cat(p, "structure", False), cat(p, "jac_center", False),
                                   cat(p, "jac_atom", False), cat(p, "jac", True), cat(p, "virial", True))
              for element, p in parts.items()}
    return Batch(n_structures=len(descriptors), n_atoms=int(offsets[-1]),
                 atoms_per_structure=torch.as_tensor([d.n_atoms for d in descriptors], device=device),
                 volume=torch.as_tensor(np.asarray(volumes, dtype=float), dtype=dtype, device=device), blocks=blocks)


def to_bytes(model: Any) -> bytes:
    """The artifact: ``{"format", "recipe" (JSON text), "state_dict"}`` as ``torch.save`` writes it (byte-stable)."""
    import torch

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"format": FORMAT_TAG, "recipe": json.dumps(model.recipe.to_dict(), sort_keys=True), "state_dict": state},
               buffer)
    return buffer.getvalue()


def from_bytes(blob: bytes, *, expected_sha256: str | None = None, device: Any = "cpu") -> Any:
    """The model of an artifact, loaded with ``weights_only=True`` after checking its sha256."""
    import torch

    from xtalbase.platform.hashing import sha256_bytes

    if expected_sha256 is not None and sha256_bytes(blob) != expected_sha256:
        raise XtalbaseError("potential artifact does not match its recorded sha256; refusing to load it")
    try:
        data = torch.load(io.BytesIO(blob), weights_only=True, map_location=device)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is refused with one message
        raise XtalbaseError(f"not a potential artifact ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_TAG:
        raise XtalbaseError(f"not a potential artifact (format tag {data.get('format') if isinstance(data, dict) else None!r})")
    recipe = PotentialRecipe.from_dict(json.loads(data["recipe"]))
    state = data["state_dict"]
    model = _hdnnp_class()(recipe).to(dtype=state["reference"].dtype, device=device)
    model.load_state_dict(state)
    model.eval()
    return model


def predict_autograd(model: Any, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: Any = True, *,
                     create_graph: bool = False) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Energy (eV), forces (N, 3) and stress (3, 3) by autograd through the descriptor (the reference path).

    Slower than :func:`predict` with the precomputed Jacobian; used to check it and as the bench's anchor.
    """
    import torch

    from xtalbase.mlip import acsf

    dtype = next(iter(model.parameters())).dtype
    pos = torch.as_tensor(np.array(positions, dtype=float), dtype=dtype).requires_grad_(True)
    strain = torch.zeros((3, 3), dtype=dtype, requires_grad=True)
    desc = acsf.compute(model.recipe, numbers, pos, np.asarray(cell, dtype=float), pbc, jacobian=False, dtype=dtype,
                        strain=strain)
    energy = sum(model.atomic_energies(e, b.values).sum() for e, b in desc.blocks.items())
    grad_pos, grad_strain = torch.autograd.grad(energy, (pos, strain), create_graph=create_graph)
    volume = abs(float(np.linalg.det(np.asarray(cell, dtype=float))))
    return energy, -grad_pos, grad_strain / volume
