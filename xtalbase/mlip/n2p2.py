"""Read an n2p2 potential (``input.nn``, ``scaling.data``, ``weights.NNN.data``) into the xtalbase network.

Lengths and energies are converted on read (``units``: ``bohr-hartree``, as the mlearn models were written,
or ``angstrom-ev``); η is taken as the file has it, in inverse squared file length units, and converted.
Symmetry functions are ordered as n2p2 orders them (see :mod:`xtalbase.mlip.recipe`), which is the order of
the ``scaling.data`` rows. The n2p2 scaling modes (``scale``, ``center``, scale-and-center, ``sigma``) become
the per-element affine scaling. Settings that change predictions and are not implemented (energy/length
normalisation, per-element network shapes, node normalisation) are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.mlip.recipe import ACTIVATIONS, CUTOFFS, NetworkSpec, PotentialRecipe, SymmetryFunction, atomic_number

BOHR = 0.529177210903  # Å (CODATA 2018, as ASE's units)
HARTREE = 27.211386245988  # eV
UNITS: dict[str, tuple[float, float]] = {"bohr-hartree": (BOHR, HARTREE), "angstrom-ev": (1.0, 1.0)}
#: Elements whose published mlearn n2p2 ``input.nn`` ships with xtalbase (``xtalbase/data/mlearn``).
VENDORED_MLEARN = ("Mo", "Si")
_UNSUPPORTED = ("normalize_nodes", "mean_energy", "conv_energy", "conv_length", "element_nodes_short",
                "element_activation_short", "nnp_type", "use_electrostatics")
_CUTOFF_NAMES = {v: k for k, v in CUTOFFS.items()}


class N2p2Error(XtalbaseError):
    """An n2p2 model folder is incomplete, malformed or uses a setting xtalbase does not implement."""


@dataclass
class N2p2Settings:
    """What ``input.nn`` says: elements, atom energies (file units), functions (converted), network, scaling mode."""

    recipe: PotentialRecipe
    atom_energy: dict[str, float]
    scaling_mode: str
    scale_min: float
    scale_max: float


def read_input_nn(path: Path, units: str = "bohr-hartree", name: str | None = None) -> N2p2Settings:
    """Parse ``input.nn``; lengths and η are converted to Å with ``units``."""
    if units not in UNITS:
        raise N2p2Error(f"units {units!r}: choose one of {', '.join(UNITS)}")
    length, _ = UNITS[units]
    keys: dict[str, list[list[str]]] = {}
    for lineno, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if text:
            parts = text.split()
            keys.setdefault(parts[0], []).append(parts[1:] + [f"@{lineno}"])
    bad = [k for k in _UNSUPPORTED if k in keys]
    if bad:
        raise N2p2Error(f"{path}: uses {', '.join(bad)}, which xtalbase's n2p2 reader does not implement")
    try:
        elements = keys["elements"][0][:-1]
        cutoff_fields = keys.get("cutoff_type", [["1", "@0"]])[0][:-1]
        cutoff = _CUTOFF_NAMES[int(cutoff_fields[0])]
        alpha = float(cutoff_fields[1]) if len(cutoff_fields) > 1 else 0.0
        functions = [_function(fields[:-1], cutoff, alpha, length, f"{path}:{fields[-1][1:]}")
                     for fields in keys.get("symfunction_short", [])]
        nodes = [int(x) for x in keys["global_nodes_short"][0][:-1]]
        acts = keys["global_activation_short"][0][:-1]
    except (KeyError, IndexError, ValueError) as exc:
        raise N2p2Error(f"{path}: missing or malformed setting ({type(exc).__name__}: {exc})") from exc
    if len(acts) != len(nodes) + 1 or acts[-1] != "l" or len(set(acts[:-1])) != 1 or acts[0] not in ACTIVATIONS:
        raise N2p2Error(f"{path}: activations {' '.join(acts)}: xtalbase needs one hidden activation of "
                        f"{', '.join(k for k in ACTIVATIONS if k != 'l')} and a linear output")
    atom_energy = {fields[0]: float(fields[1]) for fields in keys.get("atom_energy", [])}
    mode = _scaling_mode(keys)
    recipe = PotentialRecipe(elements=tuple(elements), functions=tuple(functions),
                             network=NetworkSpec(tuple(nodes), ACTIVATIONS[acts[0]]),
                             scaling="minmax" if mode in ("scale", "scalecenter") else "standard" if mode == "sigma" else "none",
                             training={"optimizer": "lbfgs"}, name=name)
    return N2p2Settings(recipe=recipe, atom_energy={e: atom_energy.get(e, 0.0) for e in recipe.elements}, scaling_mode=mode,
                        scale_min=float(keys.get("scale_min_short", [["0.0"]])[0][0]),
                        scale_max=float(keys.get("scale_max_short", [["1.0"]])[0][0]))


def _scaling_mode(keys: dict[str, Any]) -> str:
    if "scale_symmetry_functions_sigma" in keys:
        return "sigma"
    scale, center = "scale_symmetry_functions" in keys, "center_symmetry_functions" in keys
    return "scalecenter" if scale and center else "scale" if scale else "center" if center else "none"


def _function(fields: list[str], cutoff: str, alpha: float, length: float, where: str) -> SymmetryFunction:
    """One ``symfunction_short`` line: ``ec 2 e1 eta rs rc`` or ``ec 3|9 e1 e2 eta lambda zeta rc [rs]``."""
    center, kind = fields[0], int(fields[1])
    try:
        if kind == 2:
            eta, rs, rc = (float(x) for x in fields[3:6])
            return SymmetryFunction("radial", center, (fields[2],), eta=eta / length ** 2, rs=rs * length, rc=rc * length,
                                    cutoff=cutoff, alpha=alpha)
        if kind in (3, 9):
            eta, lam, zeta, rc = (float(x) for x in fields[4:8])
            rs = float(fields[8]) if len(fields) > 8 else 0.0
            return SymmetryFunction("angular" if kind == 3 else "angular_wide", center, (fields[2], fields[3]),
                                    eta=eta / length ** 2, lam=lam, zeta=zeta, rc=rc * length, rs=rs * length,
                                    cutoff=cutoff, alpha=alpha)
    except (ValueError, IndexError) as exc:
        raise N2p2Error(f"{where}: malformed symfunction_short line: {' '.join(fields)}") from exc
    raise N2p2Error(f"{where}: symmetry function type {kind} is not implemented (2, 3 and 9 are)")


def read_scaling(path: Path, recipe: PotentialRecipe) -> dict[str, np.ndarray]:
    """``{element: (n_f, 4) [min, max, mean, sigma]}`` from ``scaling.data`` (rows in n2p2's function order)."""
    rows: dict[int, dict[int, list[float]]] = {}
    for raw in path.read_text(errors="replace").splitlines():
        parts = raw.split()
        if len(parts) == 6 and not raw.lstrip().startswith("#"):
            try:
                rows.setdefault(int(parts[0]), {})[int(parts[1])] = [float(x) for x in parts[2:]]
            except ValueError as exc:
                raise N2p2Error(f"{path}: malformed line {raw.strip()!r}") from exc
    out = {}
    for index, element in enumerate(recipe.elements, 1):
        n_f = len(recipe.for_element(element))
        got = rows.get(index, {})
        if sorted(got) != list(range(1, n_f + 1)):
            raise N2p2Error(f"{path}: element {element} has {len(got)} scaling rows; input.nn defines {n_f} functions")
        out[element] = np.array([got[k] for k in range(1, n_f + 1)])
    return out


def read_weights(path: Path, n_inputs: int, hidden: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W (out, in), b (out,)) per layer]`` from an n2p2 ``weights.NNN.data`` file (entries placed by their indices)."""
    sizes = [n_inputs, *hidden, 1]
    layers = [(np.full((sizes[k + 1], sizes[k]), np.nan), np.full(sizes[k + 1], np.nan)) for k in range(len(sizes) - 1)]
    for lineno, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = raw.split()
        if not parts or raw.lstrip().startswith("#"):
            continue
        try:
            value, tag = float(parts[0]), parts[1]
            if tag == "a":
                l_from, n_from, l_to, n_to = (int(x) for x in parts[3:7])
                if l_to != l_from + 1:
                    raise ValueError("connection skips a layer")
                layers[l_to - 1][0][n_to - 1, n_from - 1] = value
            elif tag == "b":
                layer, neuron = int(parts[3]), int(parts[4])
                layers[layer - 1][1][neuron - 1] = value
            else:
                raise ValueError(f"tag {tag!r}")
        except (ValueError, IndexError) as exc:
            raise N2p2Error(f"{path}:{lineno}: malformed weight line ({exc})") from exc
    missing = sum(int(np.isnan(w).sum() + np.isnan(b).sum()) for w, b in layers)
    if missing:
        raise N2p2Error(f"{path}: {missing} weights missing for a network {'-'.join(map(str, sizes))}")
    return layers


def load_model(folder: Path, *, units: str = "bohr-hartree", name: str | None = None) -> Any:
    """An :class:`~xtalbase.mlip.model.HDNNP` carrying the n2p2 model in ``folder``, in Å and eV."""
    import torch

    from xtalbase.mlip.model import build, set_scaling

    folder = Path(folder)
    for needed in ("input.nn", "scaling.data"):
        if not (folder / needed).is_file():
            raise N2p2Error(f"{folder}: no {needed} (an n2p2 model folder holds input.nn, scaling.data, weights.NNN.data)")
    settings = read_input_nn(folder / "input.nn", units, name=name)
    recipe = settings.recipe
    scaling = read_scaling(folder / "scaling.data", recipe)
    model = build(recipe, seed=0)
    _, energy_unit = UNITS[units]
    for element in recipe.elements:
        weights_file = folder / f"weights.{atomic_number(element):03d}.data"
        if not weights_file.is_file():
            raise N2p2Error(f"{folder}: no {weights_file.name} for {element}")
        layers = read_weights(weights_file, len(recipe.for_element(element)), recipe.network.hidden)
        linears = [m for m in model.nets[element] if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for linear, (w, b) in zip(linears, layers):
                linear.weight.copy_(torch.as_tensor(w))
                linear.bias.copy_(torch.as_tensor(b))
        gmin, gmax, gmean, sigma = scaling[element].T
        mul, add = _affine(settings, gmin, gmax, gmean, sigma, f"{folder / 'scaling.data'} ({element})")
        set_scaling(model, element, mul, add, gmin, gmax)
    with torch.no_grad():
        model.energy_scale.fill_(energy_unit)
        model.reference.copy_(torch.tensor([settings.atom_energy[e] * energy_unit for e in recipe.elements]))
    return model


def _affine(settings: N2p2Settings, gmin: np.ndarray, gmax: np.ndarray, gmean: np.ndarray, sigma: np.ndarray,
            where: str) -> tuple[np.ndarray, np.ndarray]:
    """n2p2's scaling as ``G_s = mul·G + add``."""
    lo, hi, mode = settings.scale_min, settings.scale_max, settings.scaling_mode
    if mode == "none":
        return np.ones_like(gmin), np.zeros_like(gmin)
    if mode == "center":
        return np.ones_like(gmin), -gmean
    spread = sigma if mode == "sigma" else gmax - gmin
    if np.any(spread <= 0):
        raise N2p2Error(f"{where}: a symmetry function has zero spread in scaling.data; n2p2 would divide by zero")
    mul = (hi - lo) / spread
    origin = gmin if mode == "scale" else gmean
    return mul, lo - origin * mul


def vendored_mlearn_recipe(element: str) -> PotentialRecipe:
    """The symmetry functions and network of the published mlearn n2p2 potential for ``element`` (vendored input.nn)."""
    if element not in VENDORED_MLEARN:
        raise N2p2Error(f"no vendored mlearn n2p2 recipe for {element!r}; available: {', '.join(VENDORED_MLEARN)}")
    path = Path(__file__).resolve().parents[1] / "data" / "mlearn" / element / "input.nn"
    return read_input_nn(path, "bohr-hartree", name=f"mlearn-{element}").recipe
