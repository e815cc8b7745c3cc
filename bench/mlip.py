"""Speed of the HDNNP potentials (``xtalbase.mlip``) against their anchors, side by side in one run.

Data: the SNAP NbMoTaW training files ``../shared/data/mlip/snap_NbMoTaW/training/*.json`` (pymatgen
``Structure.from_dict(entry["structure"])``, energies in eV, forces in eV/Å). Sample rule: every entry of every
file, files in sorted name order and entries in file order, pooled (5,658 cells); ``random.Random(0).sample`` of
``--cells`` indices, kept in pooled order. Recipe: ``preset("default", ["Nb", "Mo", "Ta", "W"])`` (R_c 5 Å, 112
functions per element) unless said otherwise.

1. Descriptors. Values per atom: ours (``acsf.compute`` without the Jacobian) against dscribe's ``ACSF.create``
   on the same functions; derivatives: ours (values, analytic Jacobian blocks and virial) against dscribe's
   ``ACSF.derivatives(method="numerical")`` (central differences, h = 1e-4 Å: 6N evaluations of the values), on
   a 16-atom NbW, a 54-atom Mo and a 128-atom NbMoTaW cell, and the 54-atom Mo cell with mlearn-Mo's recipe.
   dscribe always emits G1 = Σ f_c per neighbour element, so our recipe gets those columns too (radial η = 0).
   Conventions, from dscribe 2.1.2's ``dscribe/ext/acsf.cpp``: one cosine cutoff ``r_cut`` for all functions;
   G2 ``exp(-η (r - R_s)²) f_c`` as ours; G4 ``2 (½(1 + λ cos θ))^ζ = 2^(1-ζ) (1 + λ cos θ)^ζ`` times
   ``exp(-η (r_ij² + r_ik² + r_jk²)) f_c f_c f_c`` over each unordered neighbour pair once, as our narrow angular
   with R_s = 0 (dscribe has no R_s in G4/G5); G5 is our wide form; species and columns ordered by atomic number,
   pairs by dscribe's triangular index. The values are compared column by column before timing.
   Without dscribe the run says so and why, and times a stand-in instead: the method dscribe uses (central
   differences, 6N evaluations of the values) with our value code, labelled as such; no dscribe ratio is printed.
2. Energy + forces (+ stress) inference, one cell at a time (as a calculator runs): the Jacobian path
   (``acsf.compute`` with the Jacobian, ``pack``, ``predict``) against autograd through the descriptor
   (``predict_autograd``), on cells of the sample; atoms/s. The two paths' forces and stresses are compared.
3. One Adam epoch (batch 32, lr 1e-3, energy + force loss with the variance-balanced weights of
   ``training.loss_weights``) on the sample: the Jacobian path (descriptors and Jacobians precomputed once by
   ``training.prepare``, timed apart; the epoch is ``training.fit``'s Adam loop body: ``_pack``, ``_loss``,
   backward, step) against autograd through the descriptor (each step recomputes the descriptors in the graph
   and takes forces with ``create_graph=True``), on the whole sample by default (about 20 s an epoch at 1,000
   cells here); ``--anchor-cells N`` times its first N cells of the same order and extrapolates by atom count
   (said in the output). Both start
   from the same weights; their first-batch losses are compared. The Jacobian memory of the sample is reported.
4. Key-motif candidate scoring (issue 20): ``surrogates.score_candidates`` on the first 10,000 candidates of the
   Al-Fe-Pt enumeration (13 prototypes, lattice scan 2.5-7.0 Å, four strains, two displacements) against a gap of
   Pt-doped fcc Al / B2 FeAl cells, against the same formula evaluated structure by structure (build,
   ``local_environments``, bin look-up, distance penalty) on a seeded sample of 300 and scaled per candidate;
   the two agree to 1e-9. ``--keymotif-only`` runs just this section. The time of one replica cycle (analyse,
   design, select, label with CHGNet, retrain) is measured by ``bench/keymotif.py``.

Timing: every contender is run ``--rounds`` times, ours and the anchor interleaved (order alternating by round),
and the median is reported; torch runs on ``--threads`` threads (default 1; dscribe is single-threaded).
Results: ``bench/results/mlip.json`` and ``mlip.md`` (``--quick``: ``mlip-quick.*``, a < 1 min smoke run).
Run: ``python bench/mlip.py [--quick] [--cells 1000] [--rounds 3] [--anchor-cells N] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "mlip" / "snap_NbMoTaW" / "training").resolve()
RESULTS = ROOT / "bench" / "results"
ELEMENTS = ["Nb", "Mo", "Ta", "W"]
BATCH = 32


@dataclass
class Cell:
    """One configuration (Å, eV, eV/Å), shaped as ``training.prepare`` wants it."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    energy: float
    forces: np.ndarray
    source: str
    pbc: Any = True
    stress: Any = None


def load_cells() -> list[Cell]:
    """Every entry of every training file, files in sorted order, entries in file order."""
    from pymatgen.core import Structure

    cells = []
    for path in sorted(DATA.glob("*.json")):
        for k, entry in enumerate(json.loads(path.read_text())):
            s = Structure.from_dict(entry["structure"])
            out = entry["outputs"]
            cells.append(Cell(np.array(s.atomic_numbers), s.cart_coords, s.lattice.matrix, float(out["energy"]),
                              np.asarray(out["forces"], dtype=float), f"{path.name}#{k}"))
    return cells


def sample(cells: list[Cell], n: int, seed: int = 0) -> list[Cell]:
    """``n`` cells drawn with ``random.Random(seed)``, in pooled order."""
    return [cells[i] for i in sorted(random.Random(seed).sample(range(len(cells)), min(n, len(cells))))]


def interleaved(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each contender over ``rounds`` rounds, run in turn (order reversed every other round)."""
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(rounds):
        for key in (list(contenders) if r % 2 == 0 else list(reversed(contenders))):
            start = time.perf_counter()
            contenders[key]()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def dscribe_or_reason() -> tuple[Any, str]:
    """``(dscribe module, "")`` or ``(None, why it is unavailable)``; the module gets ``version`` set."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import dscribe
        from dscribe.descriptors import ACSF  # noqa: F401 - the class the bench needs
    except ImportError as exc:
        return None, f"dscribe is not importable ({exc}); install it (`pip install dscribe`) to measure the anchor"
    try:
        dscribe.version = version("dscribe")
    except PackageNotFoundError:
        dscribe.version = "unknown version"
    return dscribe, ""


def with_g1(recipe: Any) -> Any:
    """The recipe plus dscribe's G1 (Σ f_c, a radial function with η = 0) for every centre and neighbour element."""
    from xtalbase.mlip.recipe import PotentialRecipe, SymmetryFunction

    g1 = tuple(SymmetryFunction("radial", c, (n,), eta=0.0, rc=recipe.cutoff) for c in recipe.elements for n in recipe.elements)
    return PotentialRecipe(elements=recipe.elements, functions=recipe.functions + g1, network=recipe.network,
                           name=f"{recipe.name}+G1")


def dscribe_for(recipe: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """dscribe's ACSF on the same functions, and per centre element the dscribe column of each of our columns."""
    from dscribe.descriptors import ACSF

    from xtalbase.mlip.recipe import atomic_number

    funcs = recipe.functions
    if {f.cutoff for f in funcs} != {"cos"} or len({f.rc for f in funcs}) != 1 or any(
            f.kind != "radial" and f.rs != 0.0 for f in funcs):
        raise ValueError("dscribe needs one cosine cutoff radius and R_s = 0 in the angular functions")
    g2 = sorted({(f.eta, f.rs) for f in funcs if f.kind == "radial" and f.eta > 0})
    g4 = sorted({(f.eta, f.zeta, f.lam) for f in funcs if f.kind == "angular"})
    g5 = sorted({(f.eta, f.zeta, f.lam) for f in funcs if f.kind == "angular_wide"})
    species = sorted(recipe.elements, key=atomic_number)
    acsf = ACSF(r_cut=funcs[0].rc, g2_params=[list(p) for p in g2] or None, g4_params=[list(p) for p in g4] or None,
                g5_params=[list(p) for p in g5] or None, species=species, periodic=True)
    index = {e: k for k, e in enumerate(species)}
    n_radial = 1 + len(g2)
    columns = {}
    for element in recipe.elements:
        cols = []
        for f in recipe.for_element(element):
            if f.kind == "radial":
                cols.append(index[f.neighbors[0]] * n_radial + (0 if f.eta == 0 else 1 + g2.index((f.eta, f.rs))))
                continue
            a, b = sorted((index[f.neighbors[0]], index[f.neighbors[1]]), reverse=True)
            start = len(species) * n_radial + (a * (a + 1) // 2 + b) * (len(g4) + len(g5))
            params = (f.eta, f.zeta, f.lam)
            cols.append(start + (g4.index(params) if f.kind == "angular" else len(g4) + g5.index(params)))
        columns[element] = np.array(cols)
    if acsf.get_number_of_features() != len(recipe.for_element(recipe.elements[0])):
        raise ValueError("dscribe's columns do not match the recipe's")
    return acsf, columns


def ase_atoms(cell: Cell) -> Any:
    from ase import Atoms

    return Atoms(numbers=cell.numbers, positions=cell.positions, cell=cell.cell, pbc=True)


def central_differences(recipe: Any, cell: Cell, h: float = 1e-4) -> np.ndarray:
    """∂G/∂R by central differences with our value code: (n, n, 3, n_f) from 6N evaluations (dscribe's method)."""
    from xtalbase.mlip import acsf

    n = len(cell.numbers)
    out = None
    for m in range(n):
        for x in range(3):
            rows = []
            for sign in (1.0, -1.0):
                pos = cell.positions.copy()
                pos[m, x] += sign * h
                desc = acsf.compute(recipe, cell.numbers, pos, cell.cell, True, jacobian=False)
                rows.append(np.concatenate([b.values.numpy() for b in desc.blocks.values()]))
            if out is None:
                out = np.zeros((n, n, 3, rows[0].shape[1]))
            out[:, m, x] = (rows[0] - rows[1]) / (2 * h)
    return out


def dense_jacobian(desc: Any, element: str, n_atoms: int) -> np.ndarray:
    """Our sparse blocks of one element as a dense (n_e, n_atoms, 3, n_f) array."""
    b = desc.blocks[element]
    out = np.zeros((len(b.atoms), n_atoms, 3, b.values.shape[1]))
    np.add.at(out, (b.jac_center.numpy(), b.jac_atom.numpy()), b.jac.numpy().transpose(0, 2, 1))
    return out


def bench_descriptors(cells: dict[str, Cell], rounds: int, quick: bool, dscribe: Any, why: str) -> list[dict]:
    """Section 1: values and derivatives per atom, ours against dscribe (or the labelled stand-in)."""
    from xtalbase.mlip import acsf
    from xtalbase.mlip.recipe import preset

    cases = [("default NbMoTaW", with_g1(preset("default", ELEMENTS)), name) for name in cells]
    cases.append(("mlearn-Mo", with_g1(preset("mlearn-Mo")), "Mo54"))
    if quick:
        cases = cases[:1]
    rows = []
    print(f"\n## 1. Descriptors ({'dscribe ' + dscribe.version if dscribe else 'dscribe unavailable: ' + why})")
    print(f"{'recipe':<17}{'cell':<10}{'atoms':>6}{'n_f':>5}  {'what':<12}{'ours ms/atom':>13}{'anchor ms/atom':>16}{'ratio':>9}"
          f"  anchor")
    for label, recipe, name in cases:
        cell = cells[name]
        n = len(cell.numbers)
        n_f = len(recipe.for_element(recipe.elements[0]))
        ours_values = lambda: acsf.compute(recipe, cell.numbers, cell.positions, cell.cell, True, jacobian=False)  # noqa: E731
        ours_jac = lambda: acsf.compute(recipe, cell.numbers, cell.positions, cell.cell, True)  # noqa: E731
        check = ""
        if dscribe:
            d, columns = dscribe_for(recipe)
            atoms = ase_atoms(cell)
            ref = d.create(atoms)
            desc = ours_values()
            err = max(float(np.abs(b.values.numpy() - ref[b.atoms.numpy()][:, columns[e]]).max()) for e, b in desc.blocks.items())
            check = f"values vs dscribe: max |Δ| {err:.1e}"
            t = interleaved({"ours": ours_values, "anchor": lambda: d.create(atoms)}, rounds)
            rows.append(_row(label, name, n, n_f, "values", t, "dscribe ACSF.create", check))
            # dscribe's numerical derivatives cost 6N value evaluations: the 128-atom cell takes ~40 s a call
            if n <= 64:
                deriv_rounds = rounds if n <= 20 else max(1, min(rounds, 2))
                num, _ = d.derivatives(atoms, method="numerical", attach=True)
                ours = ours_jac()
                err = max(float(np.abs(dense_jacobian(ours, e, n) - num[b.atoms.numpy()][..., columns[e]]).max())
                          for e, b in ours.blocks.items())
                t = interleaved({"ours": ours_jac, "anchor": lambda: d.derivatives(atoms, method="numerical", attach=True)},
                                deriv_rounds)
                rows.append(_row(label, name, n, n_f, "derivatives", t, "dscribe numerical", f"Jacobian vs dscribe's "
                                 f"central differences: max |Δ| {err:.1e} (h = 1e-4 Å)"))
        else:
            t = interleaved({"ours": ours_values}, rounds)
            rows.append(_row(label, name, n, n_f, "values", {"ours": t["ours"], "anchor": None}, "dscribe unavailable", why))
            if n <= 20 or not quick:
                t = interleaved({"ours": ours_jac, "anchor": lambda: central_differences(recipe, cell)}, max(1, rounds - 1))
                rows.append(_row(label, name, n, n_f, "derivatives", t,
                                 "STAND-IN: our values, central differences (6N evaluations), not dscribe", ""))
    return rows


def _row(recipe: str, cell: str, n: int, n_f: int, what: str, t: dict[str, float | None], anchor: str, note: str) -> dict:
    ratio = None if t["anchor"] is None else t["anchor"] / t["ours"]
    row = {"recipe": recipe, "cell": cell, "atoms": n, "n_features": n_f, "what": what, "ours_s": t["ours"],
           "anchor_s": t["anchor"], "ratio": ratio, "anchor": anchor, "note": note}
    anchor_ms = "-" if t["anchor"] is None else f"{1e3 * t['anchor'] / n:.3f}"
    print(f"{recipe:<17}{cell:<10}{n:>6}{n_f:>5}  {what:<12}{1e3 * t['ours'] / n:>13.3f}{anchor_ms:>16}"
          f"{'-' if ratio is None else f'{ratio:.2f}x':>9}  {anchor}" + (f"; {note}" if note else ""))
    return row


def bench_inference(cells: list[Cell], rounds: int) -> dict:
    """Section 2: energy + forces + stress one cell at a time, Jacobian path against autograd."""
    import torch

    from xtalbase.mlip import acsf
    from xtalbase.mlip.model import build, pack, predict, predict_autograd
    from xtalbase.mlip.recipe import preset

    recipe = preset("default", ELEMENTS)
    model = build(recipe, seed=0)
    volumes = [abs(float(np.linalg.det(c.cell))) for c in cells]

    def ours() -> list:
        out = []
        for c, v in zip(cells, volumes):
            desc = acsf.compute(recipe, c.numbers, c.positions, c.cell, True)
            out.append(predict(model, pack([desc], [v]), forces=True, stress=True))
        return out

    def anchor() -> list:
        return [predict_autograd(model, c.numbers, c.positions, c.cell, True) for c in cells]

    a, b = ours(), anchor()
    d_e = max(abs(float(x.energy[0]) - float(y[0])) for x, y in zip(a, b))
    d_f = max(float((x.forces - y[1].detach()).abs().max()) for x, y in zip(a, b))
    d_s = max(float((x.stress[0] - y[2].detach()).abs().max()) for x, y in zip(a, b))
    t = interleaved({"ours": ours, "anchor": anchor}, rounds)
    n_atoms = sum(len(c.numbers) for c in cells)
    # the forward pass alone on precomputed Jacobians, the whole set as one batch (what training repeats)
    descs = [acsf.compute(recipe, c.numbers, c.positions, c.cell, True) for c in cells]
    batch = pack(descs, volumes)
    t_pred = interleaved({"ours": lambda: predict(model, batch, forces=True, stress=True)}, rounds)["ours"]
    res = {"cells": len(cells), "atoms": n_atoms, "ours_s": t["ours"], "anchor_s": t["anchor"],
           "ours_atoms_per_s": n_atoms / t["ours"], "anchor_atoms_per_s": n_atoms / t["anchor"],
           "ratio": t["anchor"] / t["ours"], "predict_only_atoms_per_s": n_atoms / t_pred,
           "max_abs_diff": {"energy_eV": d_e, "forces_eV_per_A": d_f, "stress_eV_per_A3": d_s},
           "threads": torch.get_num_threads()}
    print(f"\n## 2. Inference, energy + forces + stress, one cell at a time ({len(cells)} cells, {n_atoms} atoms)")
    print(f"Jacobian path (descriptors + Jacobian + predict): {res['ours_atoms_per_s']:>9.0f} atoms/s")
    print(f"autograd through the descriptor (anchor):        {res['anchor_atoms_per_s']:>9.0f} atoms/s")
    print(f"ratio {res['ratio']:.2f}x; predict alone on precomputed Jacobians (one batch): "
          f"{res['predict_only_atoms_per_s']:.0f} atoms/s")
    print(f"paths agree: max |ΔE| {d_e:.1e} eV, |ΔF| {d_f:.1e} eV/Å, |Δσ| {d_s:.1e} eV/Å³")
    print("(one cell at a time the Jacobian path computes every (centre, atom) block ∂G/∂R, K × n_f × 3 numbers, "
          "before contracting with ∂E/∂G; autograd contracts first. The Jacobian pays off when it is reused: training.)")
    return res


def autograd_loss(model: Any, recipe: Any, cells: list[Cell], weights: dict[str, float]) -> Any:
    """The training loss of ``training._loss`` (energy per atom and force MSE), by autograd through the descriptor."""
    import torch

    from xtalbase.mlip import acsf

    e_err, f_err = [], []
    for c in cells:
        pos = torch.as_tensor(c.positions, dtype=torch.float64).requires_grad_(True)
        desc = acsf.compute(recipe, c.numbers, pos, c.cell, True, jacobian=False)
        energy = sum(model.atomic_energies(e, b.values).sum() for e, b in desc.blocks.items())
        (grad,) = torch.autograd.grad(energy, pos, create_graph=True)
        e_err.append((energy - c.energy) / len(c.numbers))
        f_err.append((-grad - torch.as_tensor(c.forces)).reshape(-1))
    return weights["energy"] * (torch.stack(e_err) ** 2).mean() + weights["forces"] * (torch.cat(f_err) ** 2).mean()


def bench_training(cells: list[Cell], anchor_cells: int, rounds: int) -> dict:
    """Section 3: one Adam epoch, Jacobian path (after a one-off precompute) against autograd through the descriptor."""
    import torch

    from xtalbase.mlip import training
    from xtalbase.mlip.model import build, set_scaling
    from xtalbase.mlip.recipe import preset

    recipe = preset("default", ELEMENTS)
    start = time.perf_counter()
    data = training.prepare(recipe, cells)
    precompute = time.perf_counter() - start
    jac_bytes = sum(b.jac.element_size() * b.jac.nelement() for d in data.descriptors for b in d.blocks.values())
    all_bytes = sum(d.nbytes() for d in data.descriptors)
    options = training.TrainOptions(optimizer="adam", batch_size=BATCH, learning_rate=1e-3)
    weights = training.loss_weights(data, options)
    model0 = build(recipe, seed=0)
    reference = training.fit_reference_energies(data)
    with torch.no_grad():
        model0.reference.copy_(torch.as_tensor(reference))
        residual = (data.energy - data.compositions @ reference) / data.n_atoms
        model0.energy_scale.fill_(max(float(residual.std()), 1e-3))
    for element, (mul, add, lo, hi) in training.fit_scaling(recipe, data).items():
        set_scaling(model0, element, mul, add, lo, hi)
    targets = training._targets(data, torch.float64, "cpu")
    order = np.random.default_rng(0).permutation(len(cells))
    batches = [order[s:s + BATCH] for s in range(0, len(order), BATCH)]
    n_anchor = len(batches) if anchor_cells >= len(cells) else max(1, math.ceil(anchor_cells / BATCH))
    anchor_batches = batches[:n_anchor]

    models = {"ours": copy.deepcopy(model0), "anchor": copy.deepcopy(model0)}

    def fresh(key: str) -> tuple[Any, Any]:
        """The contender's model reset to the common start, and a new Adam on it."""
        model = models[key]
        model.load_state_dict(model0.state_dict())
        return model, torch.optim.Adam(model.parameters(), lr=options.learning_rate)

    def ours(steps: list = batches) -> None:
        model, opt = fresh("ours")
        for idx in steps:
            batch = training._pack(data, idx, torch.float64, "cpu")
            opt.zero_grad()
            loss, _ = training._loss(model, batch, targets, weights, idx)
            loss.backward()
            opt.step()

    def anchor(steps: list = anchor_batches) -> None:
        model, opt = fresh("anchor")
        for idx in steps:
            opt.zero_grad()
            loss = autograd_loss(model, recipe, [cells[i] for i in idx], weights)
            loss.backward()
            opt.step()

    first = batches[0]
    loss_ours = float(training._loss(model0, training._pack(data, first, torch.float64, "cpu"), targets, weights,
                                     first)[0].detach())
    loss_anchor = float(autograd_loss(model0, recipe, [cells[i] for i in first], weights).detach())
    ours(batches[:1])  # warm-up: the first step allocates (about 1 s at 64 cells), the rest reuse
    anchor(batches[:1])
    t = interleaved({"ours": ours, "anchor": anchor}, rounds)
    atoms_all = int(data.n_atoms.sum())
    atoms_anchor = int(sum(data.n_atoms[i] for idx in anchor_batches for i in idx))
    anchor_epoch = t["anchor"] * atoms_all / atoms_anchor
    res = {"cells": len(cells), "atoms": atoms_all, "batch_size": BATCH, "batches": len(batches),
           "precompute_s": precompute, "ours_epoch_s": t["ours"], "anchor_timed_s": t["anchor"],
           "anchor_timed_batches": n_anchor, "anchor_timed_atoms": atoms_anchor, "anchor_epoch_s": anchor_epoch,
           "anchor_extrapolated": n_anchor < len(batches), "ratio": anchor_epoch / t["ours"],
           "jacobian_bytes": jac_bytes, "descriptor_bytes": all_bytes,
           "first_batch_loss": {"ours": loss_ours, "anchor": loss_anchor}}
    print(f"\n## 3. One Adam epoch, batch {BATCH}, {len(cells)} cells ({atoms_all} atoms, {len(batches)} steps)")
    print(f"Jacobian path: precompute (once) {precompute:.1f} s, epoch {t['ours']:.2f} s")
    how = (f"timed on its first {n_anchor} of {len(batches)} steps ({atoms_anchor} atoms): {t['anchor']:.1f} s, "
           f"extrapolated by atoms to" if res["anchor_extrapolated"] else "epoch")
    print(f"autograd through the descriptor (anchor): {how} {anchor_epoch:.1f} s")
    print(f"ratio (epoch) {res['ratio']:.1f}x; with the precompute counted once: {anchor_epoch / (t['ours'] + precompute):.2f}x")
    print(f"memory: Jacobian blocks {jac_bytes / 2**20:.0f} MiB (all descriptor tensors {all_bytes / 2**20:.0f} MiB, "
          f"{all_bytes / atoms_all / 1024:.1f} KiB/atom)")
    print(f"first-batch loss: Jacobian path {loss_ours:.12g}, autograd {loss_anchor:.12g}")
    return res


def machine(dscribe: Any, why: str) -> dict:
    import ase
    import pymatgen.core
    import torch

    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
            "python": platform.python_version(), "platform": platform.platform(), "cpu": model, "cpus": os.cpu_count(),
            "load_1min": os.getloadavg()[0], "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "numpy": np.__version__, "ase": ase.__version__, "pymatgen": getattr(pymatgen.core, "__version__", ""),
            "dscribe": dscribe.version if dscribe else None,
            "dscribe_path": str(Path(dscribe.__file__).parent) if dscribe else None, "dscribe_unavailable": why or None}


def summary(desc_rows: list[dict], inf: dict, train: dict) -> list[tuple[str, str, str, str]]:
    """``(measure, ours, anchor, ratio)`` lines of the final table (targets in brackets)."""
    out = []
    for r in desc_rows:
        if r["ratio"] is None:
            continue
        target = " (target >= 1x)" if r["what"] == "values" else " (target >= 1000x)"
        anchor = r["anchor"] if "STAND-IN" not in r["anchor"] else "stand-in FD (not dscribe)"
        out.append((f"{r['what']} {r['recipe']} {r['cell']} ({r['atoms']} atoms) vs {anchor}",
                    f"{1e3 * r['ours_s'] / r['atoms']:.3f} ms/atom", f"{1e3 * r['anchor_s'] / r['atoms']:.3f} ms/atom",
                    f"{r['ratio']:.2f}x{target if 'STAND-IN' not in r['anchor'] else ''}"))
    out.append((f"inference E+F+S, {inf['cells']} cells, vs autograd", f"{inf['ours_atoms_per_s']:.0f} atoms/s",
                f"{inf['anchor_atoms_per_s']:.0f} atoms/s", f"{inf['ratio']:.2f}x"))
    extra = " (anchor extrapolated)" if train["anchor_extrapolated"] else ""
    out.append((f"training epoch, {train['cells']} cells, vs autograd{extra}", f"{train['ours_epoch_s']:.2f} s",
                f"{train['anchor_epoch_s']:.1f} s", f"{train['ratio']:.1f}x"))
    out.append(("  same, our one-off precompute added", f"{train['ours_epoch_s'] + train['precompute_s']:.1f} s",
                f"{train['anchor_epoch_s']:.1f} s", f"{train['anchor_epoch_s'] / (train['ours_epoch_s'] + train['precompute_s']):.2f}x"))
    return out


def write_results(name: str, info: dict, args: argparse.Namespace, desc_rows: list[dict], inf: dict, train: dict,
                  table: list[tuple[str, str, str, str]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": info, "args": vars(args), "descriptors": desc_rows, "inference": inf, "training": train,
            "summary": [dict(zip(("measure", "ours", "anchor", "ratio"), row)) for row in table]}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [f"# bench/mlip.py results ({'quick smoke run' if args.quick else 'full run'})", "",
             f"- date {info['date']}, commit {info['commit']}; {info['cpu']}, {info['cpus']} CPUs (shared; 1-min load "
             f"{info['load_1min']:.1f} at the start); {info['platform']}",
             f"- python {info['python']}, torch {info['torch']} ({info['torch_threads']} thread(s)), numpy {info['numpy']}, "
             f"ase {info['ase']}, pymatgen {info['pymatgen']}",
             f"- dscribe: {info['dscribe'] + ' from ' + info['dscribe_path'] if info['dscribe'] else info['dscribe_unavailable']}",
             f"- sample: {train['cells']} cells ({train['atoms']} atoms), random.Random(0) over all entries of "
             f"snap_NbMoTaW/training/*.json pooled in sorted file order; medians of {args.rounds} interleaved rounds",
             "", "| measure | ours | anchor | ratio |", "| --- | --- | --- | --- |"]
    lines += [f"| {m} | {o} | {a} | {r} |" for m, o, a, r in table]
    lines += ["", "Checks: " + "; ".join(f"{r['recipe']} {r['cell']} {r['note']}" for r in desc_rows
                                       if r["note"] and r["ratio"] is not None) +
              f"; inference paths max |ΔF| {inf['max_abs_diff']['forces_eV_per_A']:.1e} eV/Å, |Δσ| "
              f"{inf['max_abs_diff']['stress_eV_per_A3']:.1e} eV/Å³; first-batch loss {train['first_batch_loss']['ours']:.12g} "
              f"(Jacobian) vs {train['first_batch_loss']['anchor']:.12g} (autograd).",
              f"Jacobian memory of the {train['cells']} cells: {train['jacobian_bytes'] / 2**20:.0f} MiB "
              f"(all descriptor tensors {train['descriptor_bytes'] / 2**20:.0f} MiB).", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(lines))


def keymotif_gap() -> tuple[dict, dict, float]:
    """A gap to score against: fcc Al + B2 FeAl training cells vs the same with one Pt (gap strategy: no model)."""
    from ase.build import bulk

    from xtalbase.mlip.coverage import coverage_gap, local_environments, motif_scores

    rc = 5.0
    train_cells = [bulk("Al", "fcc", a=4.05, cubic=True).repeat(2), bulk("FeAl", "cesiumchloride", a=2.9).repeat(3)]
    target_cells = [c.copy() for c in train_cells]
    for c in target_cells:
        c[0].symbol = "Pt"
        c.rattle(0.03, seed=1)

    def pooled(cells: list) -> Any:
        from xtalbase.mlip.coverage import Environments

        out = Environments()
        for c in cells:
            env = local_environments(c.numbers, c.positions, c.cell, True, rc)
            for key in env.values:
                out.add(key, env.atoms[key], env.values[key])
        return out
    target = pooled(target_cells)
    gap = coverage_gap(pooled(train_cells), target)
    return gap, motif_scores(gap, [target], [np.ones(sum(len(c) for c in target_cells), bool)], "gap"), rc


def bench_keymotif(n_candidates: int, anchor_candidates: int) -> dict:
    """4. Key-motif candidate scoring: ours (``score_candidates``) against the formula evaluated structure by
    structure (build, ``local_environments``, bin look-up, distance penalty), on the first ``n_candidates`` of the
    Al-Fe-Pt enumeration; the anchor is timed on a seeded sample of ``anchor_candidates`` and scaled per candidate."""
    from xtalbase.mlip.acsf import neighbor_pairs
    from xtalbase.mlip.coverage import local_environments
    from xtalbase.mlip.surrogates import d_min, enumerate_candidates, score_candidates

    gap, scores, rc = keymotif_gap()
    cands = enumerate_candidates(["Al", "Fe", "Pt"])[:n_candidates]
    t0 = time.perf_counter()
    got = score_candidates(cands, scores, gap, rc)
    ours = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    sample_ids = sorted(rng.choice(len(cands), size=min(anchor_candidates, len(cands)), replace=False))
    t0 = time.perf_counter()
    worst = 0.0
    for k in sample_ids:
        atoms = cands[k].build()
        env = local_environments(atoms.numbers, atoms.positions, atoms.cell, True, rc)
        motif = 0.0
        for key, values in env.values.items():
            if key in gap:
                bins = np.searchsorted(gap[key].edges, values, side="right") - 1
                ok = (bins >= 0) & (bins < len(scores[key]))
                motif += scores[key][bins[ok]].sum()
        i, j, sh = neighbor_pairs(atoms.numbers, atoms.positions, np.asarray(atoms.cell), True, rc)
        d = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + sh @ np.asarray(atoms.cell), axis=1)
        dm = d_min(atoms.numbers[i], atoms.numbers[j])
        value = motif / len(atoms) - 25.0 * np.sum(np.maximum(0.0, dm - d) ** 2)
        if np.isfinite(got[k]):
            worst = max(worst, abs(value - got[k]))
    anchor = (time.perf_counter() - t0) / len(sample_ids) * len(cands)
    row = {"candidates": len(cands), "ours_s": ours, "anchor_s_scaled": anchor, "anchor_sampled": len(sample_ids),
           "ratio": anchor / ours, "max_abs_difference": worst}
    print(f"\n## 4. Key-motif scoring of {len(cands):,} Al-Fe-Pt candidates: ours {ours:.2f} s (target < 10 s), "
          f"per-structure formula {anchor:.1f} s (from {len(sample_ids)}), ratio {anchor / ours:.1f}x, "
          f"largest score difference {worst:.2e}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a < 1 min smoke run (small sample, 2 rounds)")
    parser.add_argument("--cells", type=int, default=1000, help="training sample size (default 1000)")
    parser.add_argument("--inference-cells", type=int, default=40, help="cells of the sample timed one at a time (default 40)")
    parser.add_argument("--anchor-cells", type=int, default=None,
                        help="time the autograd training epoch on its first N cells and extrapolate by atoms "
                             "(default: the whole sample, ~20 s an epoch at 1,000 cells)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--keymotif-only", action="store_true", help="only section 4 (key-motif candidate scoring)")
    args = parser.parse_args()
    if args.keymotif_only:
        row = bench_keymotif(10_000, 300)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "mlip_keymotif.json").write_text(json.dumps(row, indent=1))
        return
    if args.quick:
        args.cells, args.inference_cells, args.anchor_cells, args.rounds = 64, 6, 32, 2
    if not DATA.exists():
        sys.exit(f"data not found at {DATA}")
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    dscribe, why = dscribe_or_reason()
    info = machine(dscribe, why)
    print(f"# bench/mlip.py  {info['date']}  python {info['python']}  torch {info['torch']} ({args.threads} thread(s))  "
          f"cpus={info['cpus']}  load={info['load_1min']:.1f}  dscribe={info['dscribe'] or 'unavailable'}")
    if not dscribe:
        print(f"dscribe anchor unavailable: {why}. Section 1 times a labelled stand-in instead and prints no dscribe ratio.")
    pool = load_cells()
    chosen = sample(pool, args.cells)
    by_source = {c.source: c for c in pool}
    cells = {"NbW16": by_source["NbW_SS.json#3"], "Mo54": by_source["Mo_AIMD.json#0"],
             "NbMoTaW128": by_source["Multinary_Test.json#0"]}
    desc_rows = bench_descriptors(cells, args.rounds, args.quick, dscribe, why)
    inf = bench_inference(sample(chosen, args.inference_cells, seed=1), args.rounds)
    train = bench_training(chosen, args.anchor_cells or len(chosen), args.rounds)
    keymotif = bench_keymotif(2_000 if args.quick else 10_000, 100 if args.quick else 300)
    table = summary(desc_rows, inf, train)
    table.append((f"key-motif scoring, {keymotif['candidates']:,} candidates", f"{keymotif['ours_s']:.2f} s",
                  f"{keymotif['anchor_s_scaled']:.1f} s", f"{keymotif['ratio']:.1f}x"))
    width = max(len(m) for m, *_ in table)
    print(f"\n## Summary (medians of {args.rounds} interleaved rounds; ratio = anchor time / ours)")
    print(f"{'measure':<{width}}  {'ours':>16}  {'anchor':>16}  ratio")
    for m, o, a, r in table:
        print(f"{m:<{width}}  {o:>16}  {a:>16}  {r}")
    name = "mlip-quick" if args.quick else "mlip"
    write_results(name, info, args, desc_rows, inf, train, table)
    print(f"\nwrote {RESULTS / (name + '.json')} and {name}.md")


if __name__ == "__main__":
    main()
