"""Crystal-system models that hold up on measured XRD scans (issue #23, item 6).

Compares, over several seeds (mean ± std):

* ExtraTrees and XGBoost on plain ``peaks11`` (every computed reflection counted: today's models),
* ExtraTrees and XGBoost on ``peaks11_aug`` (trained on computed patterns turned into synthetic laboratory
  scans and peak-picked like a measured scan, :mod:`xtalbase.ml.xrd_augment`),
* the 1-D CNN (``cnn``) on ``profile_aug`` (the same picked peaks drawn on a 10-90° grid),

on (a) the computed val and test folds of the prototype-grouped 60/20/20 split the demo uses, read two ways:
*clean* (the stored computed pattern, what ``xtalbase predict --split`` and the stored metrics use) and *aug*
(one deterministic synthetic scan per structure, copy 0 of the run's seed), and (b) the measured scans shipped
with xtalbase: the five single-phase ones against the labels in ``tests/data/measured_scan_labels.csv``, and the
three multi-phase ones for information. Training data: the demo's vendored structures (350 MP + 56 reference CIFs)
and, with ``--mp N``, N structures drawn (seed 0) from ``../shared/data/mp_cgcnn/cifs``.

Hyper-parameters: the tree models keep their registry defaults; the CNN's are chosen among a few candidates on
the *val* fold (aug accuracy, seed 0) only. The measured scans are predicted, never used to choose anything.
``--registry`` (on by default without ``--mp``) also trains the augmented models through ``train_xrd`` and
``xtalbase predict``'s code path and reports their wall times (what ``xtalbase demo`` would pay).

Usage::

    python bench/xrd_measured_crystal_system.py [--mp N] [--seeds 0,1,2] [--workers 2] [--workdir DIR] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import pickle
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "xtalbase" / "data"
SCANS = DATA / "xrd_experimental" / "Spectra"
REFERENCES = DATA / "xrd_experimental" / "References"
MP_CIFS = (ROOT / ".." / "shared" / "data" / "mp_cgcnn" / "cifs").resolve()
LABELS = ROOT / "tests" / "data" / "measured_scan_labels.csv"
SPLIT = "demo-prototype"
FOLDS = ("train", "val", "test")
#: Model name -> (algorithm, feature kind).
MODELS = {
    "ExtraTrees, peaks11": ("extratrees", "peaks11"),
    "XGBoost, peaks11": ("xgboost", "peaks11"),
    "ExtraTrees, peaks11_aug": ("extratrees", "peaks11_aug"),
    "XGBoost, peaks11_aug": ("xgboost", "peaks11_aug"),
    "CNN, profile_aug": ("cnn", "profile_aug"),
}
#: CNN candidates compared on the val fold (seed 0): (estimator parameters, ``profile_aug`` options); the first is the default.
CNN_CANDIDATES = {"default (8,16,32; dropout 0.3)": ({}, {}), "dropout 0.5": ({"dropout": 0.5}, {}),
                  "wider (16,32,64)": ({"channels": "16,32,64"}, {}), "sqrt intensities": ({}, {"intensity_power": 0.5})}


# ----------------------------------------------------------------------------- data
def build_database(workdir: Path, mp: int, workers: int, log: Any) -> tuple[Any, dict[str, Any]]:
    """The bench database in ``workdir`` (reused when it holds the same data): structures, patterns, scans, split."""
    from xtalbase.api import Database

    marker = workdir / "bench.json"
    url = f"sqlite:///{workdir / 'bench.db'}"
    if marker.exists() and json.loads(marker.read_text()).get("mp") == mp:
        return Database(url), json.loads(marker.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench.db").unlink(missing_ok=True)
    db = Database(url)
    db.init()
    paths: list[Path] = [DATA / "mp_subset" / "cifs", REFERENCES]
    if mp:
        files = sorted(MP_CIFS.glob("*.cif"))
        pick = np.random.default_rng(0).choice(len(files), size=min(mp, len(files)), replace=False)
        paths += [files[i] for i in sorted(pick)]
    t = time.perf_counter()
    report = db.ingest(paths, workers=workers)
    from xtalbase.xrd.builder import compute_missing

    compute_missing(db, workers=workers)
    from xtalbase.xrd.scans import import_scans

    import_scans(db, sorted(SCANS.glob("*.xy")))
    split = db.splits.create(SPLIT, strategy="group", by="prototype", fractions=(0.6, 0.2, 0.2), seed=0)
    info = {"mp": mp, "inserted": report.inserted, "duplicates": report.duplicates, "quarantined": report.quarantined,
            "counts": split.summary().get("counts"), "build_seconds": round(time.perf_counter() - t, 1)}
    marker.write_text(json.dumps(info))
    log(f"database: {info}")
    return db, info


def load_data(db: Any) -> dict[str, Any]:
    """Per fold: labels, exact hashes and computed sticks (rows ordered by exact hash); the measured scans' picked peaks."""
    from sqlalchemy import select

    from xtalbase.ml.features import FeatureRecipe
    from xtalbase.ml.predict import peaks_for_recipe
    from xtalbase.ml.xrd_inputs import get_split, load_fold, split_fold_ids
    from xtalbase.platform.repositories.patterns import computed_peaks
    from xtalbase.schema import Source, Structure, XrdPattern
    from xtalbase.xrd.recipe import resolve_recipe

    out: dict[str, Any] = {}
    with db.session() as s:
        recipe = resolve_recipe(s, None)
        split = get_split(s, SPLIT)
        for fold in FOLDS:
            f = load_fold(s, split_fold_ids(s, split, fold), "crystal_system", recipe.id, FeatureRecipe.make("peaks11"))
            sticks = computed_peaks(s, f.ids.tolist(), recipe.id)
            out[fold] = {"y": np.asarray(f.y).astype(str), "hashes": list(f.exact_hashes), "sticks": [sticks[int(i)] for i in f.ids]}
        patterns = s.scalars(select(XrdPattern).where(XrdPattern.kind == "measured").order_by(XrdPattern.name)).all()
        # exactly what predict_patterns gives a model: the stored picked peaks at the recipe's wavelength and range
        out["measured"] = {p.name: peaks_for_recipe(p, recipe) for p in patterns}
        out["recipe_id"] = recipe.id
        # where each labelled scan's reference structure sits: (fold, row), to tell a gap between computed and
        # measured patterns from a structure type the model does not know
        out["references"] = {}
        for scan, row in read_labels(full=True).items():
            sid = s.scalar(select(Source.structure_id).where(Source.file_path.like(f"%References%{row['reference_cif']}")))
            h = s.scalar(select(Structure.exact_hash).where(Structure.id == sid)) if sid else None
            for fold in FOLDS:
                if h in out[fold]["hashes"]:
                    out["references"][scan] = (fold, out[fold]["hashes"].index(h))
    return out


def read_labels(full: bool = False) -> dict[str, Any]:
    """``{scan name: crystal system}`` of the single-phase scans (``full``: their whole rows)."""
    with open(LABELS) as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return {r["scan"]: (r if full else r["crystal_system"]) for r in rows}


# ----------------------------------------------------------------------------- augmentation
def _augment_chunk(args: tuple[list, list, dict, int, list[int]]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    from xtalbase.ml.xrd_augment import augmented_peaks, copy_rng

    sticks, hashes, params, seed, copies = args
    return [[augmented_peaks(tt, inten, params, copy_rng(seed, h, k)) for k in copies] for (tt, inten), h in zip(sticks, hashes)]


def augmented(data: dict[str, Any], seed: int, params: dict[str, Any], workers: int, cache: Path) -> dict[str, list]:
    """Picked peaks of the synthetic scans: ``n_augment`` copies per training structure, copy 0 per val/test structure.

    Both augmented kinds share them (one synthetic scan per structure and copy), so they are made once per seed.
    """
    key = hashlib.sha256(json.dumps([seed, params, [data[f]["hashes"] for f in FOLDS]], sort_keys=True).encode()).hexdigest()[:16]
    path = cache / f"augmented-{key}.pkl"
    if path.exists():
        with open(path, "rb") as fh:
            return pickle.load(fh)
    out = {}
    with ProcessPoolExecutor(workers) as pool:
        for fold in FOLDS:
            copies = list(range(int(params["n_augment"]))) if fold == "train" else [0]
            d, size = data[fold], 64
            tasks = [(d["sticks"][i:i + size], d["hashes"][i:i + size], params, seed, copies) for i in range(0, len(d["hashes"]), size)]
            out[fold] = [row for chunk in pool.map(_augment_chunk, tasks) for row in chunk]
    with open(path, "wb") as fh:
        pickle.dump(out, fh)
    return out


def feature_sets(data: dict[str, Any], picked: dict[str, list], kind: str, seed: int, options: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Training rows and evaluation matrices of one feature kind (with ``options``), in the row order ``train_xrd`` uses."""
    from xtalbase.ml.features import FeatureRecipe

    recipe = FeatureRecipe.make(kind, seed=seed, **(options or {})) if kind.endswith("_aug") else FeatureRecipe.make(kind)
    out: dict[str, Any] = {"recipe": recipe}
    for fold in FOLDS:
        d = data[fold]
        clean = recipe.transform(d["sticks"])
        aug = np.vstack([recipe.row(*copies[0]) for copies in picked[fold]]).astype(np.float32)
        out[f"{fold}_clean"], out[f"{fold}_aug"] = clean, aug
    y = data["train"]["y"]
    if recipe.augmented:
        # as xtalbase.ml.xrd_augment.augment_fold: the clean rows, then each structure's copies in order
        copies = [recipe.row(*p) for per in picked["train"] for p in per]
        n = len(picked["train"][0]) if picked["train"] else 0
        out["X_train"] = np.vstack([out["train_clean"], np.asarray(copies, dtype=np.float32).reshape(-1, out["train_clean"].shape[1])])
        out["y_train"] = np.concatenate([y, np.repeat(y, n)])
    else:
        out["X_train"], out["y_train"] = out["train_clean"], y
    names = sorted(data["measured"])
    out["measured_names"] = names
    out["X_measured"] = recipe.transform([data["measured"][n] for n in names])
    return out


def check_same_rows(data: dict[str, Any], picked: dict[str, list], seed: int, params: dict[str, Any]) -> None:
    """The bench's rows equal what ``FeatureRecipe.augment`` (the training path) makes, on a few structures."""
    from xtalbase.ml.features import FeatureRecipe

    recipe = FeatureRecipe.make("peaks11_aug", seed=seed, **{k: v for k, v in params.items() if k != "seed"})
    d = data["train"]
    X, _ = recipe.augment(d["sticks"][:3], d["hashes"][:3])
    mine = np.vstack([recipe.row(*p) for per in picked["train"][:3] for p in per])
    if not np.array_equal(X, mine):
        raise SystemExit("bench rows differ from FeatureRecipe.augment: the bench no longer measures the training path")


# ----------------------------------------------------------------------------- models
def fit_model(algorithm: str, sets: dict[str, Any], seed: int, params: dict[str, Any]) -> tuple[Any, float]:
    """A fitted estimator (the registry's, with ``params``) and its fit seconds; the CNN early-stops on val like ``train_xrd``."""
    from xtalbase.ml.algorithms import get_algorithm, make_estimator

    est = make_estimator(algorithm, "classification", params, seed)
    t = time.perf_counter()
    if get_algorithm(algorithm).early_stopping:
        X_val = np.vstack([sets["val_clean"], sets["val_aug"]]) if sets["recipe"].augmented else sets["val_clean"]
        y_val = np.concatenate([sets["y_val"], sets["y_val"]]) if sets["recipe"].augmented else sets["y_val"]
        est.fit(sets["X_train"], sets["y_train"], eval_set=(X_val, y_val))
    else:
        est.fit(sets["X_train"], sets["y_train"])
    return est, time.perf_counter() - t


def evaluate(est: Any, sets: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Accuracy and macro-F1 per fold and reading, and the label of every measured scan."""
    from sklearn.metrics import f1_score

    out: dict[str, Any] = {}
    for fold in ("val", "test"):
        for how in ("clean", "aug"):
            pred = est.predict(sets[f"{fold}_{how}"]).astype(str)
            y = data[fold]["y"]
            out[f"{fold}_{how}"] = float(np.mean(pred == y))
            out[f"{fold}_{how}_f1"] = float(f1_score(y, pred, average="macro"))
    proba = est.predict_proba(sets["X_measured"])
    labels = np.asarray(est.classes_).astype(str)
    out["measured"] = {n: {"label": str(labels[np.argmax(p)]), "p": round(float(p.max()), 3)}
                       for n, p in zip(sets["measured_names"], proba)}
    out["reference"] = {}
    for scan, (fold, i) in data["references"].items():
        clean, aug = est.predict(sets[f"{fold}_clean"][i:i + 1])[0], est.predict(sets[f"{fold}_aug"][i:i + 1])[0]
        out["reference"][scan] = {"fold": fold, "clean": str(clean), "aug": str(aug)}
    return out


def select_cnn(data: dict[str, Any], picked: dict[str, list], seed: int, log: Any
               ) -> tuple[str, tuple[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]:
    """The CNN candidate (estimator parameters, feature options) with the best val (aug) accuracy; ties keep the earlier one."""
    rows = []
    for name, (params, options) in CNN_CANDIDATES.items():
        sets = feature_sets(data, picked, "profile_aug", seed, options)
        sets["y_val"] = data["val"]["y"]
        est, seconds = fit_model("cnn", sets, seed, params)
        res = evaluate(est, sets, data)
        rows.append({"candidate": name, "params": params, "options": options, "val_clean": res["val_clean"], "val_aug": res["val_aug"],
                     "best_epoch": int(est.best_epoch_), "fit_s": round(seconds, 1)})
        log(f"  CNN candidate {name}: val aug {res['val_aug']:.3f} clean {res['val_clean']:.3f} ({seconds:.0f} s)")
    best = max(rows, key=lambda r: r["val_aug"])
    return best["candidate"], (best["params"], best["options"]), rows


def registry_runs(db: Any, params: dict[str, tuple[dict[str, Any], dict[str, Any]]], log: Any) -> list[dict[str, Any]]:
    """The augmented models through ``train_xrd`` and ``predict_patterns`` (seed 0): wall times and results."""
    from sqlalchemy import select

    from xtalbase.ml.predict import predict_patterns
    from xtalbase.ml.training import train_xrd
    from xtalbase.schema import XrdPattern

    with db.session() as s:
        pattern_ids = list(s.scalars(select(XrdPattern.id).where(XrdPattern.kind == "measured").order_by(XrdPattern.name)))
    rows = []
    for name, (algorithm, kind) in MODELS.items():
        t = time.perf_counter()
        estimator_params, options = params.get(name, ({}, {}))
        report = train_xrd(db, target="crystal_system", split=SPLIT, algorithm=algorithm, features=kind, seed=0,
                           feature_options=options or None, params=estimator_params or None, name=f"bench-{algorithm}-{kind}")
        trained = time.perf_counter() - t
        scans = predict_patterns(db, report.model_id, pattern_ids)
        rows.append({"model": name, "model_id": report.model_id, "train_s": round(trained, 1), "fit_s": round(report.fit_seconds, 1),
                     "predict_s": round(time.perf_counter() - t - trained, 2), "test_accuracy": report.metrics["test"]["accuracy"],
                     "val_accuracy": report.metrics["val"]["accuracy"],
                     "measured": {r["name"]: r["label"] for r in scans.rows}})
        log(f"  train_xrd {name}: {trained:.1f} s (fit {report.fit_seconds:.1f} s), test {report.metrics['test']['accuracy']:.3f}")
    return rows


# ----------------------------------------------------------------------------- label check
def check_labels(log: Any) -> list[dict[str, Any]]:
    """For each labelled scan: every same-formula reference CIF's share of measured peak intensity it explains within 0.3°,
    and the share of its strong (>= 10 %) computed peaks seen in the scan (the figures in the labels file)."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from xtalbase.xrd import compute_xrd
    from xtalbase.xrd.scans import find_peaks, read_scan, with_wavelength

    rows = []
    for scan in read_labels():
        pk = find_peaks(with_wavelength(read_scan(SCANS / f"{scan}.xy")))
        sel = (pk.intensity >= 5) & (pk.two_theta <= 90)
        tt, w = pk.two_theta[sel], pk.intensity[sel]
        for path in sorted(REFERENCES.glob(f"{scan}_*.cif")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                st = Structure.from_file(path)
                system = SpacegroupAnalyzer(st, symprec=0.01).get_crystal_system()
            p = compute_xrd(st)[0]
            sticks, strong = p.two_theta[p.intensity >= 1], p.two_theta[p.intensity >= 10]
            explained = float(np.sum(w[[np.min(np.abs(sticks - t)) < 0.3 for t in tt]]) / np.sum(w))
            seen = float(np.mean([np.min(np.abs(tt - x)) < 0.3 for x in strong]))
            rows.append({"scan": scan, "reference": path.name, "crystal_system": system, "explained": round(explained, 2),
                         "strong_seen": round(seen, 2)})
            log(f"  {scan:7s} {path.name:16s} {system:12s} explained {explained:.2f} strong seen {seen:.2f}")
    return rows


# ----------------------------------------------------------------------------- report
def summarise(runs: dict[str, list[dict[str, Any]]], labels: dict[str, str]) -> dict[str, Any]:
    """Mean ± std over seeds per model; measured-scan labels per seed and the count of correct single-phase scans."""
    out = {}
    for name, per_seed in runs.items():
        row: dict[str, Any] = {}
        for key in ("val_clean", "val_aug", "test_clean", "test_aug", "test_clean_f1", "test_aug_f1", "fit_s"):
            vals = np.array([r[key] for r in per_seed], dtype=float)
            row[key] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
        correct = np.array([sum(r["measured"][s]["label"] == c for s, c in labels.items() if s in r["measured"]) for r in per_seed])
        row["measured_correct"] = (float(correct.mean()), float(correct.std(ddof=1)) if len(correct) > 1 else 0.0)
        row["measured_all_correct_seeds"] = int(np.sum(correct == len(labels)))
        # a measured scan classified like a synthetic scan of its own reference structure: the gap is closed for it
        agree = [r["measured"][s]["label"] == r["reference"][s]["aug"] for r in per_seed for s in r["reference"]]
        row["measured_agrees_with_synthetic"] = (int(np.sum(agree)), len(agree))
        row["measured"] = {s: [r["measured"][s]["label"] for r in per_seed] for s in per_seed[0]["measured"]}
        row["reference"] = {s: {"fold": v["fold"], "clean": [r["reference"][s]["clean"] for r in per_seed],
                                "aug": [r["reference"][s]["aug"] for r in per_seed]} for s, v in per_seed[0]["reference"].items()}
        out[name] = row
    return out


def _pm(pair: tuple[float, float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def _labels_text(labels: list[str]) -> str:
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    return ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def write_markdown(path: Path, info: dict[str, Any], summary: dict[str, Any], labels: dict[str, str], selection: list[dict[str, Any]],
                   chosen: str, registry: list[dict[str, Any]], label_rows: list[dict[str, Any]]) -> None:
    seeds = info["seeds"]
    data_text = f"demo data + {info['mp']} MP" if info["mp"] else "demo data"
    lines = [f"# Crystal system on measured XRD scans: augmented training ({data_text})",
             "",
             f"Generated by `bench/xrd_measured_crystal_system.py{info['flags']}` on {info['date']}; "
             f"{info['machine']}; seeds {', '.join(map(str, seeds))}; total {info['seconds']:.0f} s "
             f"(database {info['db']['build_seconds']} s, augmentation {info['augment_seconds']:.0f} s).",
             "",
             f"Structures: {info['db']['inserted']} ({info['db']['counts']}, prototype-grouped 60/20/20, seed 0, the demo's split); "
             f"XRD Cu Kα, 2θ 0-90°. Augmented kinds: {info['n_augment']} synthetic scans per training structure plus its clean "
             "pattern (`n_augment`, `include_clean`); val/test *aug* = one synthetic scan per structure (copy 0), *clean* = the "
             "computed pattern as `xtalbase predict --split` reads it (every reflection for `peaks11`; sticks ≥ 1 %, merged "
             "within 0.05°, for the augmented kinds).",
             "",
             "## Computed folds: accuracy, mean ± std over seeds",
             "",
             "| model | val clean | val aug | test clean | test aug | test aug macro-F1 | fit s |",
             "|---|---|---|---|---|---|---|"]
    for name, row in summary.items():
        lines.append(f"| {name} | {_pm(row['val_clean'])} | {_pm(row['val_aug'])} | {_pm(row['test_clean'])} | {_pm(row['test_aug'])} "
                     f"| {_pm(row['test_aug_f1'])} | {_pm(row['fit_s'], 1)} |")
    lines += ["", "`val` of the CNN is its early-stopping fold. Majority class of the test fold: "
              f"{info['majority_test']:.3f}.", "",
              "## Measured single-phase scans (labels: `tests/data/measured_scan_labels.csv`)", "",
              "Predicted crystal system per scan over the seeds (×n = in n seeds); last column: correct scans of 5, mean ± std, and in "
              "how many seeds all 5 were right.", "",
              "| model | " + " | ".join(f"{s} ({c})" for s, c in labels.items()) + " | correct |",
              "|---|" + "---|" * len(labels) + "---|"]
    for name, row in summary.items():
        cells = [_labels_text(row["measured"][s]) for s in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_pm(row['measured_correct'], 1)} ({row['measured_all_correct_seeds']}"
                     f"/{len(seeds)} seeds all 5) |")
    first = next(iter(summary.values()))
    lines += ["", "The same models on the computed pattern of each scan's reference structure (the CIF the label comes from), "
              "read as a synthetic scan (copy 0) and clean. Where the synthetic scan is classified correctly but the measured "
              "scan is not, the gap is between computed and measured patterns; where both are wrong, the model does not know "
              "the structure type. Fold of each reference in the split: "
              + ", ".join(f"{s} {v['fold']}" for s, v in first["reference"].items()) + ".", "",
              "| model | " + " | ".join(f"{s} ({c})" for s, c in labels.items() if s in first["reference"])
              + " | measured = synthetic |", "|---|" + "---|" * (len(first["reference"]) + 1)]
    for name, row in summary.items():
        cells = [f"synthetic: {_labels_text(row['reference'][s]['aug'])}; clean: {_labels_text(row['reference'][s]['clean'])}"
                 for s in labels if s in row["reference"]]
        same, total = row["measured_agrees_with_synthetic"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {same}/{total} |")
    multi = [s for s in first["measured"] if s not in labels]
    lines += ["", "## Measured multi-phase scans (for information; no single label)", "",
              "| model | " + " | ".join(multi) + " |", "|---|" + "---|" * len(multi)]
    for name, row in summary.items():
        lines.append(f"| {name} | " + " | ".join(_labels_text(row["measured"][s]) for s in multi) + " |")
    lines += ["", "## CNN hyper-parameters (chosen on val aug accuracy, seed 0)", ""]
    if not selection:
        lines.append(f"Not compared here (`--no-select`): the CNN rows use {chosen}, the registry's parameters.")
    else:
        lines += ["| candidate | val aug | val clean | best epoch | fit s |", "|---|---|---|---|---|"]
    for r in selection:
        mark = " (chosen)" if r["candidate"] == chosen else ""
        lines.append(f"| {r['candidate']}{mark} | {r['val_aug']:.3f} | {r['val_clean']:.3f} | {r['best_epoch']} | {r['fit_s']} |")
    if registry:
        lines += ["", "## Through the registry (`train_xrd` + `predict_patterns`, seed 0)", "",
                  "Wall time of `train_xrd` (augmentation, fit, evaluation, storing) and of predicting the 8 scans.", "",
                  "| model | train_xrd s | fit s | predict 8 scans s | val | test | " + " | ".join(labels) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(labels)]
        for r in registry:
            lines.append(f"| {r['model']} | {r['train_s']} | {r['fit_s']} | {r['predict_s']} | {r['val_accuracy']:.3f} | {r['test_accuracy']:.3f} | "
                         + " | ".join(r["measured"].get(s, "-") for s in labels) + " |")
    if label_rows:
        lines += ["", "## Label check (reference CIFs of each scan's formula)", "",
                  "| scan | reference | crystal system | measured intensity explained | strong computed peaks seen |", "|---|---|---|---|---|"]
        lines += [f"| {r['scan']} | {r['reference']} | {r['crystal_system']} | {r['explained']:.2f} | {r['strong_seen']:.2f} |" for r in label_rows]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mp", type=int, default=0, help="Add N structures drawn (seed 0) from ../shared/data/mp_cgcnn/cifs.")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (model and augmentation).")
    parser.add_argument("--workers", type=int, default=2, help="Processes for ingest, XRD and the synthetic scans.")
    parser.add_argument("--threads", type=int, default=2, help="Torch threads for the CNN.")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the database and synthetic scans here (default: a temp folder).")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report (a .json beside it); default bench/results/...")
    parser.add_argument("--registry", action=argparse.BooleanOptionalAction, default=None,
                        help="Also train through train_xrd and time it (default: on without --mp).")
    parser.add_argument("--no-select", action="store_true", help="Skip the CNN candidates; use the registry default.")
    parser.add_argument("--check-labels", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.mp and not MP_CIFS.is_dir():
        print(f"--mp {args.mp}: {MP_CIFS} is absent (the ../shared/data checkout); running on the demo data only")
        args.mp = 0
    suffix = f"_mp{args.mp}" if args.mp else ""
    out = args.out or ROOT / "bench" / "results" / f"xrd_measured_crystal_system{suffix}.md"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="xrd-measured-"))
    registry = args.registry if args.registry is not None else not args.mp

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {text}", flush=True)

    warnings.filterwarnings("ignore")
    db, db_info = build_database(workdir, args.mp, args.workers, log)
    data = load_data(db)
    labels = read_labels()
    for fold in FOLDS:
        data[fold]["y"] = np.asarray(data[fold]["y"])
    from xtalbase.ml.features import FeatureRecipe

    params = dict(FeatureRecipe.make("peaks11_aug").params)
    sizes = ", ".join(f"{f} {len(data[f]['y'])}" for f in FOLDS)
    log(f"folds: {sizes}; measured scans {sorted(data['measured'])}")
    label_rows = check_labels(log) if args.check_labels else []

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in MODELS}
    augment_seconds, selection, chosen = 0.0, [], next(iter(CNN_CANDIDATES))
    chosen_params, chosen_options = CNN_CANDIDATES[chosen]
    for seed in seeds:
        t = time.perf_counter()
        picked = augmented(data, seed, {**params, "seed": seed}, args.workers, workdir)
        augment_seconds += time.perf_counter() - t
        check_same_rows(data, picked, seed, params)
        log(f"seed {seed}: synthetic scans ready ({time.perf_counter() - t:.0f} s)")
        if seed == seeds[0] and not args.no_select:
            chosen, (chosen_params, chosen_options), selection = select_cnn(data, picked, seed, log)
            log(f"  CNN chosen on val: {chosen}")
        sets = {}
        for kind in ("peaks11", "peaks11_aug", "profile_aug"):
            sets[kind] = feature_sets(data, picked, kind, seed, chosen_options if kind == "profile_aug" else None)
            sets[kind]["y_val"] = data["val"]["y"]
        for name, (algorithm, kind) in MODELS.items():
            est, seconds = fit_model(algorithm, sets[kind], seed, chosen_params if algorithm == "cnn" else {})
            res = evaluate(est, sets[kind], data)
            res["fit_s"] = seconds
            runs[name].append(res)
            got = sum(res["measured"][s]["label"] == c for s, c in labels.items())
            log(f"  {name}: val aug {res['val_aug']:.3f} test clean {res['test_clean']:.3f} aug {res['test_aug']:.3f}; "
                f"measured {got}/{len(labels)} ({seconds:.1f} s)")
    summary = summarise(runs, labels)
    reg_rows = registry_runs(db, {"CNN, profile_aug": (chosen_params, chosen_options)}, log) if registry else []
    y_test = data["test"]["y"]
    given = list(sys.argv[1:] if argv is None else argv)
    # the flags that change results; where files go does not
    shown = [a for i, a in enumerate(given) if not a.startswith(("--workdir", "--out")) and (i == 0 or given[i - 1] not in ("--workdir", "--out"))]
    info = {"mp": args.mp, "seeds": seeds, "db": db_info, "date": time.strftime("%Y-%m-%d"), "flags": "".join(f" {a}" for a in shown),
            "machine": f"{platform.machine()} {os.cpu_count()} cores visible, torch threads {args.threads}, {args.workers} worker processes",
            "seconds": time.perf_counter() - started, "augment_seconds": augment_seconds, "n_augment": int(params["n_augment"]),
            "majority_test": float(max(np.mean(y_test == c) for c in np.unique(y_test)))}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(out, info, summary, labels, selection, chosen, reg_rows, label_rows)
    out.with_suffix(".json").write_text(json.dumps({"info": info, "summary": summary, "runs": runs, "selection": selection,
                                                     "chosen_cnn": {"name": chosen, "params": chosen_params, "feature_options": chosen_options},
                                                     "registry": reg_rows, "labels": labels,
                                                     "label_check": label_rows}, indent=1, default=str))
    log(f"wrote {out} and {out.with_suffix('.json').name}")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
