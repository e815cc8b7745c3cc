"""Development benchmark for the DiffCSP model on Perov-5 (not imported by the package).

Split: the shared Perov-5 test CSV, grouped by formula (all unique, so a random split), 60/20/20 with seed 0.
Train on 60 %, choose on the 20 % val fold, report on the 20 % test fold: best-of-k match rate and mean RMS
with StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3).

    python bench/csp_diffcsp_dev.py --epochs 150 --save /tmp/diffcsp.pt --eval val --k 1 5
    python bench/csp_diffcsp_dev.py --load /tmp/diffcsp.pt --eval test --k 1 5 --timesteps 250
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import time
from pathlib import Path

import numpy as np

CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "perov5" / "test.csv"
CACHE = Path("/tmp/perov5_arrays.pkl")


def load_rows():
    """(formula, StructureArrays) for every CSV row, cached as a pickle after the first CIF parse."""
    from xtalbase.platform.convert import StructureArrays

    if CACHE.exists():
        return pickle.loads(CACHE.read_bytes())
    from pymatgen.core import Structure

    csv.field_size_limit(10**9)
    rows = []
    with open(CSV, newline="") as fh:
        for r in csv.DictReader(fh):
            s = Structure.from_str(r["cif"], fmt="cif")
            rows.append((r["formula"], StructureArrays(s.lattice.matrix.copy(), np.array(s.atomic_numbers, dtype=np.int64),
                                                       s.frac_coords.copy())))
    CACHE.write_bytes(pickle.dumps(rows))
    return rows


def split(rows, seed=0):
    formulas = sorted({f for f, _ in rows})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(formulas))
    n = len(formulas)
    fold = {}
    for rank, idx in enumerate(order):
        fold[formulas[idx]] = "train" if rank < 0.6 * n else ("val" if rank < 0.8 * n else "test")
    out = {"train": [], "val": [], "test": []}
    for f, s in rows:
        out[fold[f]].append(s)
    return out


def evaluate(preds, truth, ks):
    """Best-of-k match rate (over all rows) and mean RMS (over matched) for each k."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    matcher = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)

    def pmg(s):
        return Structure(Lattice(s.cell), [int(z) for z in s.numbers], s.frac_coords)

    rms = np.full((len(truth), max(ks)), np.nan)
    for i, (cands, gt) in enumerate(zip(preds, truth)):
        g = pmg(gt)
        for j, c in enumerate(cands[: max(ks)]):
            try:
                r = matcher.get_rms_dist(pmg(c), g)
            except Exception:  # noqa: BLE001 - a degenerate prediction counts as a miss
                r = None
            if r is not None:
                rms[i, j] = r[0]
    res = {}
    for k in ks:
        best = np.nanmin(np.where(np.isnan(rms[:, :k]), np.inf, rms[:, :k]), axis=1)
        ok = np.isfinite(best)
        res[k] = {"match": float(ok.mean()), "rms": float(best[ok].mean()) if ok.any() else float("nan")}
    return res


def main():
    import torch

    from xtalbase.csp.models.diffcsp import DiffCSP

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--timesteps", type=int, default=None, help="training timesteps (or, with --load, sampling timesteps)")
    ap.add_argument("--step-lr", type=float, default=None)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--load", type=Path)
    ap.add_argument("--eval", choices=["val", "test", "none"], default="val")
    ap.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows of the fold")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    folds = split(load_rows())
    print({k: len(v) for k, v in folds.items()}, flush=True)
    overrides = {k: v for k, v in {"epochs": a.epochs, "hidden": a.hidden, "layers": a.layers, "lr": a.lr,
                                   "batch_size": a.batch_size, "step_lr": a.step_lr}.items() if v is not None}
    report: dict = {"args": {k: str(v) for k, v in vars(a).items()}}
    if a.load:
        model = DiffCSP.from_bytes(a.load.read_bytes())
        for k, v in overrides.items():
            setattr(model, k, v)
        if a.timesteps:
            model.timesteps = a.timesteps
    else:
        if a.timesteps:
            overrides["timesteps"] = a.timesteps
        model = DiffCSP(verbose=True, **overrides)
        t0 = time.perf_counter()
        model.fit(folds["train"], folds["val"])
        report["train_s"] = time.perf_counter() - t0
        report["best_epoch"] = model.best_epoch_
        report["history"] = model.history_
        print(f"trained in {report['train_s']:.0f} s, best epoch {model.best_epoch_}, {model.n_parameters_} parameters", flush=True)
        if a.save:
            a.save.write_bytes(model.to_bytes())
    report["params"] = model.get_params()
    report["n_parameters"] = model.n_parameters_
    if a.eval != "none":
        truth = folds[a.eval][: a.limit]
        t0 = time.perf_counter()
        preds = model.sample([s.numbers for s in truth], k=max(a.k), seed=a.seed)
        report["sample_s"] = time.perf_counter() - t0
        print(f"sampled {len(truth)} x k={max(a.k)} in {report['sample_s']:.0f} s", flush=True)
        report["metrics"] = evaluate(preds, truth, a.k)
        print(a.eval, json.dumps(report["metrics"]), flush=True)
    if a.out:
        a.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
