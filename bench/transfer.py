"""Transfer learning for property models: pretrain on Materials Project formation energy, reuse on Perov-5.

Source task: formation energy per atom (eV/atom) of the 29,389 MP structures of ``../shared/data/mp_cgcnn``,
from composition only (Magpie descriptors, 132 columns, of each CIF's ``_chemical_formula_sum``), split
80/10/10 by reduced formula (seeded; polymorphs of one formula stay together). An MLP (132-256-128-64-1) is
pretrained with early stopping on the MP val part; its MP test MAE is printed beside XGBoost on the same
features, the mean predictor, and published numbers.

Target tasks, on the 3,785 rows of ``../shared/data/perov5/test.csv`` (the Perov-5 part shared here):
``dir_gap`` (direct band gap, eV) and ``heat_ref`` (Perov-5's heat of formation, eV). A fixed 20 % of the
formulas (seeded) is the held-out test set; from the rest, each seed draws nested training sets of
n = 50, 100, 250, 500, 1000 rows. On exactly those n rows (the networks early-stop on a seeded 20 % of them,
so no model sees more labels than n) it fits:

(a) ``scratch``: the same MLP from random weights;
(b) ``finetune``: the pretrained MLP, all layers trained, new head;
(c) ``frozen``: the pretrained body fixed, a new head trained; ``frozen_ridge``: ridge (alpha by leave-one-out
    on the n rows) on the frozen body's 64 features;
(d) ``xgboost``: XGBoost on the Magpie features (the registry's default hyperparameters, not tuned);
(e) ``mean``: the training rows' mean; ``median`` is shown too (the constant with least MAE: for a target that is
    mostly 0, as the gap is, it is the baseline to beat).

Every hyperparameter is fixed before looking at any test number; nothing is tuned on the test rows.

Usage::

    python bench/transfer.py [--seeds 5] [--sizes 50,100,250,500,1000] [--targets dir_gap,heat_ref] [--quick]

Writes ``bench/results/transfer_curves.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MP = (ROOT / ".." / "shared" / "data" / "mp_cgcnn").resolve()
PEROV5 = (ROOT / ".." / "shared" / "data" / "perov5" / "test.csv").resolve()
OUT = ROOT / "bench" / "results"
DESCRIPTOR = "magpie"
METHODS = ("mean", "median", "xgboost", "scratch", "finetune", "frozen", "frozen_ridge")
#: Published source-task numbers (different data, splits and sizes: context, not a like-for-like comparison).
PUBLISHED = [
    ("CGCNN (Xie & Grossman, PRL 120, 145301, 2018)", 0.039,
     "structure-based graph network, MP formation energy, 46,744 materials, random 60/20/20 split"),
    ("ElemNet (Jha et al., Sci. Rep. 8, 17593, 2018)", 0.050,
     "composition-only deep network, OQMD (~275k entries), not MP"),
]
_ELEMENT = re.compile(r"([A-Z][a-z]?)([0-9.]*)")


# ----------------------------------------------------------------------------------------- data
def parse_formula(text: str) -> dict[str, float]:
    """``"Nb8 Co2 Si2"`` -> ``{"Nb": 8.0, "Co": 2.0, "Si": 2.0}``."""
    out: dict[str, float] = {}
    for element, amount in _ELEMENT.findall(text):
        out[element] = out.get(element, 0.0) + float(amount or 1)
    return out


def reduced_key(comp: dict[str, float]) -> str:
    """A reduced-formula key (integer amounts divided by their gcd), element order fixed."""
    amounts = list(comp.values())
    if all(float(a).is_integer() for a in amounts):
        g = 0
        for a in amounts:
            g = gcd(g, int(a))
        amounts = [a / g for a in amounts]
    return "".join(f"{e}{a:g}" for e, a in sorted(zip(comp, amounts)))


def load_mp() -> dict[str, Any]:
    """Compositions (from each CIF's ``_chemical_formula_sum``) and formation energies (eV/atom) of the MP set."""
    import pandas as pd

    props = pd.read_csv(MP / "properties.csv").set_index("material_id")["formation_energy_per_atom"]
    ids, comps = [], []
    for path in sorted((MP / "cifs").glob("*.cif")):
        with open(path) as fh:
            for line in fh:
                if line.startswith("_chemical_formula_sum"):
                    ids.append(path.stem)
                    comps.append(parse_formula(line.split(None, 1)[1].strip().strip("'\"")))
                    break
    y = props.loc[ids].to_numpy(dtype=float)
    return {"ids": ids, "comps": comps, "keys": [reduced_key(c) for c in comps], "y": y}


def load_perov5() -> dict[str, Any]:
    import pandas as pd

    frame = pd.read_csv(PEROV5, usecols=["material_id", "formula", "heat_ref", "dir_gap", "ind_gap"])
    comps = [parse_formula(f) for f in frame["formula"]]
    return {"ids": frame["material_id"].tolist(), "comps": comps, "keys": [reduced_key(c) for c in comps],
            "dir_gap": frame["dir_gap"].to_numpy(float), "ind_gap": frame["ind_gap"].to_numpy(float),
            "heat_ref": frame["heat_ref"].to_numpy(float)}


def group_split(keys: list[str], fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Row indices per part, whole groups (equal keys) in one part, groups drawn in a seeded order."""
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    cuts = np.cumsum([0, *[int(round(f * len(groups))) for f in fractions[:-1]]])
    part_of = {}
    for rank, g in enumerate(order):
        part_of[groups[g]] = int(np.searchsorted(cuts, rank, side="right") - 1)
    parts = np.array([part_of[k] for k in keys])
    return [np.flatnonzero(parts == p) for p in range(len(fractions))]


def features(comps: list[dict[str, float]]) -> np.ndarray:
    """The Magpie matrix (n, 132); the same recipe ``train property --descriptor magpie`` uses."""
    from xtalbase.descriptors.compositional import composition_preset

    return composition_preset(DESCRIPTOR).transform(comps)


# ----------------------------------------------------------------------------------------- models
def mlp(seed: int, max_epochs: int, **extra: Any) -> Any:
    from xtalbase.ml.property_net import MLPPropertyRegressor

    settings = dict(hidden_layer_sizes=(256, 128, 64), batch_size=32, learning_rate=1e-3, weight_decay=1e-5,
                    max_epochs=max_epochs, patience=30, validation_fraction=0.2, random_state=seed)
    return MLPPropertyRegressor(**{**settings, **extra})


def pretrain(X: np.ndarray, y: np.ndarray, parts: list[np.ndarray], epochs: int, log: Any) -> tuple[Any, dict[str, Any]]:
    """The source network (early-stopped on the MP val part) and the MP test errors of it and its baselines."""
    from xtalbase.ml.estimators import XGBoostModel
    from xtalbase.ml.property import regression_report
    from xtalbase.ml.property_net import MLPPropertyRegressor

    train, val, test = parts
    out: dict[str, Any] = {"n": {"train": len(train), "val": len(val), "test": len(test)}}
    start = time.perf_counter()
    net = MLPPropertyRegressor(hidden_layer_sizes=(256, 128, 64), batch_size=256, learning_rate=1e-3, weight_decay=1e-5,
                               max_epochs=epochs, patience=40, random_state=0)

    def progress(row: dict[str, float]) -> None:
        if row["epoch"] % 10 == 0:
            log(f"  pretrain epoch {row['epoch']}: train {row['train_loss']:.4f}, val {row['val_loss']:.4f} (standardised MSE)")

    net.fit(X[train], y[train], eval_set=(X[val], y[val]), on_epoch=progress)
    out["mlp_seconds"] = time.perf_counter() - start
    out["mlp"] = regression_report(y[test], net.predict(X[test]), y[train])
    out["mlp_val"] = regression_report(y[val], net.predict(X[val]), y[train])
    out["mlp_epochs"], out["mlp_best_epoch"], out["mlp_stop"] = net.n_iter_, net.best_epoch_, net.stop_reason_
    start = time.perf_counter()
    xgb = XGBoostModel(task="regression", random_state=0).fit(X[train], y[train])
    out["xgboost_seconds"] = time.perf_counter() - start
    out["xgboost"] = regression_report(y[test], xgb.predict(X[test]), y[train])
    return net, out


def fit_predict(method: str, seed: int, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, source: bytes, E_train: np.ndarray,
                E_test: np.ndarray, max_epochs: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Test predictions of ``method`` trained on (X, y) and what to record about the fit."""
    if method == "mean":
        return np.full(len(X_test), float(np.mean(y))), {}
    if method == "median":
        return np.full(len(X_test), float(np.median(y))), {}
    if method == "xgboost":
        from xtalbase.ml.estimators import XGBoostModel

        return XGBoostModel(task="regression", random_state=seed).fit(X, y).predict(X_test), {}
    if method == "frozen_ridge":
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15))).fit(E_train, y)
        return model.predict(E_test), {"alpha": float(model[-1].alpha_)}
    extra = {"scratch": {}, "finetune": {"init_from": source}, "frozen": {"init_from": source, "freeze": "body"}}[method]
    net = mlp(seed, max_epochs, **extra).fit(X, y)
    return net.predict(X_test), {"epochs": net.n_iter_, "best_epoch": net.best_epoch_}


def learning_curves(data: dict[str, Any], X: np.ndarray, E: np.ndarray, source: bytes, targets: list[str], sizes: list[int],
                    seeds: list[int], max_epochs: int, log: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from xtalbase.ml.property import regression_report

    pool, test = group_split(data["keys"], (0.8, 0.2), seed=0)
    info = {"n_pool": len(pool), "n_test": len(test), "n_formulas": len(set(data["keys"]))}
    runs = []
    for target in targets:
        y_all = data[target]
        y_test = y_all[test]
        nonzero = y_test > 0
        info[target] = {"test_mean": float(y_test.mean()), "test_share_zero": float(np.mean(y_test == 0)),
                        "test_nonzero": int(nonzero.sum())}
        for seed in seeds:
            order = pool[np.random.default_rng(1000 + seed).permutation(len(pool))]
            for n in sizes:
                rows = order[:n]  # nested: each seed's n=100 rows contain its n=50 rows
                for method in METHODS:
                    start = time.perf_counter()
                    pred, extra = fit_predict(method, seed, X[rows], y_all[rows], X[test], source, E[rows], E[test], max_epochs)
                    seconds = time.perf_counter() - start
                    rec = {"target": target, "method": method, "n": n, "seed": seed, "fit_seconds": round(seconds, 3),
                           "train_nonzero": int(np.sum(y_all[rows] > 0)), **extra}
                    m = regression_report(y_test, pred, y_all[rows])
                    rec.update({k: m[k] for k in ("mae", "rmse", "r2")})
                    if target.endswith("gap") and nonzero.any():
                        rec["mae_gap_positive"] = float(np.mean(np.abs(pred[nonzero] - y_test[nonzero])))
                    runs.append(rec)
                log(f"  {target} seed {seed} n {n}: " + ", ".join(f"{r['method']} {r['mae']:.4f}" for r in runs[-len(METHODS):]))
    return runs, info


# ----------------------------------------------------------------------------------------- summaries
def summarise(runs: list[dict[str, Any]], key: str = "mae") -> dict[str, dict[str, dict[int, tuple[float, float]]]]:
    """{target: {method: {n: (mean, std over seeds)}}} of ``key``."""
    out: dict[str, dict[str, dict[int, tuple[float, float]]]] = {}
    for r in runs:
        if key in r:
            out.setdefault(r["target"], {}).setdefault(r["method"], {}).setdefault(r["n"], []).append(r[key])  # type: ignore[arg-type]
    return {t: {m: {n: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0) for n, v in sorted(by_n.items())}
                for m, by_n in ms.items()} for t, ms in out.items()}


def verdict(diff: float, se: float) -> str:
    """``helps`` / ``hurts`` when the paired mean difference is more than two standard errors from 0."""
    return "helps" if diff + 2 * se < 0 else "hurts" if diff - 2 * se > 0 else "—"


def paired(runs: list[dict[str, Any]], target: str, a: str, b: str, n: int) -> tuple[float, float, int, int]:
    """Mean and standard error over seeds of MAE(a) - MAE(b), and in how many seeds a is lower."""
    by = {(r["method"], r["seed"]): r["mae"] for r in runs if r["target"] == target and r["n"] == n}
    seeds = sorted({s for (_, s) in by})
    diff = np.array([by[(a, s)] - by[(b, s)] for s in seeds])
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()), se, int(np.sum(diff < 0)), len(diff)


def plot(summary: dict[str, Any], path: Path, info: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(summary)
    fig, axes = plt.subplots(1, len(targets), figsize=(6.2 * len(targets), 4.6), squeeze=False)
    styles = {"mean": ("0.55", "--"), "median": ("0.3", ":"), "xgboost": ("tab:green", "-"), "scratch": ("tab:blue", "-"),
              "finetune": ("tab:red", "-"), "frozen": ("tab:orange", "-"), "frozen_ridge": ("tab:purple", "-.")}
    for ax, target in zip(axes[0], targets):
        for method, by_n in summary[target].items():
            ns = np.array(list(by_n))
            mean = np.array([v[0] for v in by_n.values()])
            std = np.array([v[1] for v in by_n.values()])
            color, line = styles[method]
            ax.errorbar(ns, mean, yerr=std, label=method, color=color, linestyle=line, marker="o", markersize=3, capsize=2)
        ax.set_xscale("log")
        ax.set_xlabel("training rows n")
        ax.set_ylabel("test MAE (eV)")
        ax.set_title(f"Perov-5 {target} (test n={info['n_test']}), mean ± std over seeds")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_markdown(path: Path, summary: dict[str, Any], gap_summary: dict[str, Any], runs: list[dict[str, Any]],
                   source: dict[str, Any], info: dict[str, Any], meta: dict[str, Any]) -> None:
    lines = ["# Transfer learning: MP formation energy → Perov-5 (composition only, Magpie descriptors)", "",
             f"Generated by `bench/transfer.py` on {meta['date']}; {meta['hardware']}; total {meta['seconds']['total']:.0f} s "
             f"(MP features {meta['seconds']['mp_load']:.0f} s, pretraining {source['mlp_seconds']:.0f} s, MP XGBoost "
             f"{source['xgboost_seconds']:.0f} s, learning curves {meta['seconds']['curves']:.0f} s).", "",
             "## Source task: MP formation energy per atom (eV/atom)", "",
             f"29,389 MP structures, split 80/10/10 by reduced formula (seed 0): {source['n']['train']} / {source['n']['val']} / "
             f"{source['n']['test']} rows. MLP 132-256-128-64-1, batch 256, AdamW 1e-3, early stopping on val "
             f"(best epoch {source['mlp_best_epoch']} of {source['mlp_epochs']}).", "",
             "| model | test MAE | test RMSE | test R² |", "|---|---|---|---|"]
    for name, key in (("MLP (the pretrained network)", "mlp"), ("XGBoost, same features", "xgboost")):
        m = source[key]
        lines.append(f"| {name} | {m['mae']:.4f} | {m['rmse']:.4f} | {m['r2']:.3f} |")
    m = source["mlp"]
    lines.append(f"| mean predictor | {m['baseline_mean_mae']:.4f} | {m['baseline_mean_rmse']:.4f} | {m['baseline_mean_r2']:.3f} |")
    lines += ["", "Published (other data and splits: context only):", ""]
    lines += [f"- {name}: MAE {mae:.3f} eV/atom ({note})." for name, mae, note in PUBLISHED]
    lines += ["- Composition-only models (Magpie, ElemNet, Roost...) on 85,014 MP compositions with 5-fold CV: Bartel et al., "
              "npj Comput. Mater. 6, 97 (2020), Fig. 2 (values not reproduced here: not re-checked).", ""]
    lines += ["## Target tasks: Perov-5 (3,785 rows of the shared test part)", "",
              f"Fixed held-out test set: 20 % of the formulas (seed 0), {info['n_test']} rows; training rows are drawn from the other "
              f"{info['n_pool']} (nested per seed). Every formula is unique here, so the grouped split is a random split.", ""]
    for target in summary:
        t = info[target]
        lines.append(f"- `{target}`: test mean {t['test_mean']:.3f} eV, {100 * t['test_share_zero']:.1f} % of test rows are 0 "
                     f"({t['test_nonzero']} non-zero); correlation of the pretrained network's formation-energy prediction with it "
                     f"over all rows: {info['pretrained_prediction_correlation'][target]:+.2f}.")
    lines += ["", "`dir_gap` rather than `ind_gap`: the direct gap is the screening quantity of the source study (light absorption "
              "for water splitting); here ind_gap <= dir_gap on every row, the two correlate at 0.99 and are zero on the same 96 % of "
              "rows, so the choice changes little. With 96 % zeros the median (0) predictor is the baseline to beat for MAE.",
              f"{info['mp_overlap_formulas']} Perov-5 reduced formulas also occur in the MP set (a different property there).", ""]
    n_seeds = len({r['seed'] for r in runs})
    for target, by_method in summary.items():
        lines += [f"### {target}: test MAE (eV), mean ± std over {n_seeds} seeds", "",
                  "| n | " + " | ".join(by_method) + " |", "|---" * (len(by_method) + 1) + "|"]
        sizes = sorted({n for by_n in by_method.values() for n in by_n})
        for n in sizes:
            best = min((v[n][0], m) for m, v in by_method.items() if n in v)[1]
            cells = [(f"**{v[n][0]:.4f} ± {v[n][1]:.4f}**" if m == best else f"{v[n][0]:.4f} ± {v[n][1]:.4f}") for m, v in by_method.items()]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines += ["", f"Paired over seeds, {target}: MAE difference (mean ± standard error; wins = seeds where the first is lower; "
                  "helps/hurts = more than 2 standard errors below/above 0):", "",
                  "| n | finetune − scratch | frozen − scratch | frozen_ridge − scratch | finetune − xgboost |", "|---|---|---|---|---|"]
        for n in sizes:
            cells = []
            for a, b in (("finetune", "scratch"), ("frozen", "scratch"), ("frozen_ridge", "scratch"), ("finetune", "xgboost")):
                d, se, wins, k = paired(runs, target, a, b, n)
                cells.append(f"{d:+.4f} ± {se:.4f} ({wins}/{k}) {verdict(d, se)}")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
        if target in gap_summary:
            lines += [f"{target}, MAE on the {info[target]['test_nonzero']} test rows with a non-zero gap (eV):", "",
                      "| n | " + " | ".join(gap_summary[target]) + " |", "|---" * (len(gap_summary[target]) + 1) + "|"]
            for n in sizes:
                lines.append(f"| {n} | " + " | ".join(f"{v[n][0]:.3f} ± {v[n][1]:.3f}" for v in gap_summary[target].values()) + " |")
            lines.append("")
    lines += [f"![learning curves]({path.with_suffix('.png').name})", "", "## Settings", "",
              f"- MLPs on the target: 132-256-128-64-1, batch 32, AdamW lr 1e-3, weight decay 1e-5, at most {meta['max_epochs']} epochs, "
              "early stopping (patience 30) on a seeded 20 % of the n training rows, best weights kept; fine-tune and frozen start from "
              "the pretrained weights and input scaling with a new head and target scaling.",
              "- XGBoost: the registry defaults (300 trees, depth 8, eta 0.1, subsample 0.8), seeded.",
              "- frozen_ridge: standardised 64 body features, RidgeCV (alpha 1e-3..1e4, leave-one-out on the n rows).",
              f"- Seeds {sorted({r['seed'] for r in runs})}; the seed sets the training rows, the weights and the batch order.",
              f"- Versions: {meta['versions']}.", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sizes", default="50,100,250,500,1000")
    parser.add_argument("--targets", default="dir_gap,heat_ref")
    parser.add_argument("--max-epochs", type=int, default=300, help="Epoch cap of the target networks.")
    parser.add_argument("--pretrain-epochs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="2 seeds, sizes 50,250, 30 pretraining epochs (a smoke run).")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.sizes, args.pretrain_epochs, args.max_epochs = 2, "50,250", 30, 100
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    targets = args.targets.split(",")
    seeds = list(range(args.seeds))
    t0 = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {text}", flush=True)

    mp = load_mp()
    X_mp = features(mp["comps"])
    parts = group_split(mp["keys"], (0.8, 0.1, 0.1), seed=0)
    mp_seconds = time.perf_counter() - t0
    log(f"MP: {len(mp['y'])} rows, {len(set(mp['keys']))} reduced formulas, features {X_mp.shape}")
    net, source = pretrain(X_mp, mp["y"], parts, args.pretrain_epochs, log)
    log(f"source MLP test MAE {source['mlp']['mae']:.4f} eV/atom, XGBoost {source['xgboost']['mae']:.4f}, "
        f"mean {source['mlp']['baseline_mean_mae']:.4f}")

    from xtalbase.ml.property_net import to_bytes

    blob = to_bytes(net)
    perov = load_perov5()
    X = features(perov["comps"])
    E = net.embed(X)
    overlap = len(set(perov["keys"]) & set(mp["keys"]))
    zero_shot = net.predict(X)
    relatedness = {t: float(np.corrcoef(zero_shot, perov[t])[0, 1]) for t in targets}
    log(f"Perov-5: {len(X)} rows; {overlap} reduced formulas also in MP; corr(pretrained prediction, target) {relatedness}")
    t_curves = time.perf_counter()
    runs, info = learning_curves(perov, X, E, blob, targets, sizes, seeds, args.max_epochs, log)
    curve_seconds = time.perf_counter() - t_curves
    info.update(mp_overlap_formulas=overlap, pretrained_prediction_correlation=relatedness)
    summary = summarise(runs)
    gap_summary = {t: v for t, v in summarise(runs, "mae_gap_positive").items()}
    import datetime

    import sklearn
    import xgboost

    meta = {"date": datetime.date.today().isoformat(),
            "hardware": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores visible, torch threads 1".replace("  ", " "),
            "versions": f"torch {torch.__version__}, xgboost {xgboost.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}",
            "seconds": {"total": time.perf_counter() - t0, "mp_load": mp_seconds, "curves": curve_seconds}, "max_epochs": args.max_epochs,
            "pretrain_epochs": args.pretrain_epochs, "sizes": sizes, "seeds": seeds, "targets": targets}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "transfer_curves_quick" if args.quick else "transfer_curves"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "source": source, "targets": info, "summary": {
        t: {m: {str(n): v for n, v in by_n.items()} for m, by_n in ms.items()} for t, ms in summary.items()}, "runs": runs},
        indent=1, default=float))
    plot(summary, args.out / f"{stem}.png", info)
    write_markdown(args.out / f"{stem}.md", summary, gap_summary, runs, source, info, meta)
    log(f"wrote {args.out / stem}.{{md,json,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
