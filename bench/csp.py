"""CSP comparison on Perov-5 (issue 21): the parallel matcher against the serial reference loop, and the leaderboard.

    python bench/csp.py match [--k 5] [--workers 2]          # ours (pre-checks + pool) vs the reference loop, same pairs
    python bench/csp.py leaderboard [--models random,template,diffcsp] [--k 20] [--seeds 0]

Both use a SQLite database (``--db``, default ``/tmp/xtalbase-csp-bench.db``) holding the shared Perov-5 rows
(``../shared/data/perov5/test.csv``, 3,785 structures) and the split ``perov5`` (60/20/20 grouped by reduced formula,
seed 0), built on first use. Models, CSP runs and evaluations stay in the database, so a second call reuses them.

**match** times, on the same (prediction, reference) pairs of a stored ``random`` run of ``k`` samples per test
structure: the reference loop (one ``StructureMatcher.get_rms_dist`` per pair in one process, as the CDVAE/DiffCSP
evaluation scripts) and :func:`xtalbase.csp.matching.match_all` (gates, exact pre-checks, one task per reference,
``--workers`` processes, per-pair timeout), checks that both give the same RMS for every pair and prints the ratio,
plus the pairs the pre-checks answered without the matcher.

**leaderboard** trains each model on the train fold (val for model selection), samples ``k`` structures per test
composition, evaluates in both modes and writes ``bench/results/csp_perov5.md`` and ``.json`` with the training
and sampling times. Published numbers (DiffCSP and CDVAE papers, on the official 11k/3.8k/3.8k split) are printed beside.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
SPLIT = "perov5"
#: Published Perov-5 results (match rate %, RMSE) on the official split, for the table.
PUBLISHED = {"DiffCSP (Jiao et al. 2023)": {1: (52.02, 0.0760), 20: (98.60, 0.0128)},
             "CDVAE (Xie et al. 2022, as reported by DiffCSP)": {1: (45.31, 0.1138), 20: (88.51, 0.0464)}}


def _db(url: str):
    import xtalbase
    from xtalbase.csp.tasks import perov5

    db = xtalbase.connect(url)
    db.init()
    if SPLIT not in db.splits:
        source = DATA / "perov5" / "test.csv"
        if not source.exists():
            sys.exit(f"{source} is absent: the benchmark needs the shared Perov-5 rows")
        report = db.ingest([source], workers=2, source="perov5")
        print(f"ingested {report.inserted} Perov-5 structures ({report.duplicates} duplicates)")
        perov5(db.splits, SPLIT)
    split = db.splits.get(SPLIT)
    print(f"split {SPLIT}: {split.counts} hash {split.id[:16]}")
    return db, split


def _model(db, split, name: str, seed: int, params: dict, variant: str = "") -> int:
    from xtalbase.platform.repositories.models import newest_models

    label = f"bench-{name}{variant}-s{seed}"
    with db.session() as s:
        found = [m.id for m in newest_models(s, target="structure", limit=1000) if m.name == label]
    if found:
        return found[0]
    started = time.perf_counter()
    model_id = db.csp.train(split, name, seed=seed, name=label, params=params)
    print(f"trained {label} in {time.perf_counter() - started:.1f} s")
    return model_id


def _run(db, split, model_id: int, name: str, k: int, seed: int, params: dict | None = None):
    label = f"{name}-k{k}-s{seed}" + "".join(f"-{key}{value}" for key, value in (params or {}).items())
    try:
        return db.csp.get(label)
    except Exception:  # noqa: BLE001 - not stored yet
        info = db.csp.sample(model_id, split, k=k, seed=seed, name=label, params=params)
        print(f"sampled {label}: {info.n_samples} structures in {info.seconds:.1f} s")
        return info


def match(args: argparse.Namespace) -> None:
    import numpy as np

    from xtalbase.csp.matching import MatchSettings, MatchTask, match_all, reference_loop
    from xtalbase.csp.tasks import load_task

    db, split = _db(args.db)
    info = _run(db, split, _model(db, split, "random", 0, {}), "random", args.k, 0)
    samples = db.csp.samples(info.id)
    task = load_task(db, split)
    pairs = [(samples[(t.structure_id, i)], t.reference) for t in task.targets for i in range(args.k)]
    print(f"{len(pairs)} pairs ({len(task.targets)} test structures x k = {args.k}); {os.cpu_count()} cores")
    started = time.perf_counter()
    serial = reference_loop(pairs)
    t_serial = time.perf_counter() - started
    tasks = [MatchTask(t.structure_id, t.reference, tuple((i, samples[(t.structure_id, i)]) for i in range(args.k)), MatchSettings())
             for t in task.targets]
    started = time.perf_counter()
    rows = match_all(tasks, workers=args.workers, timeout=60.0)
    t_ours = time.perf_counter() - started
    ours = [r["rms"] for r in rows]
    same = all((a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9) for a, b in zip(ours, serial))
    skipped = sum(r["status"] in ("invalid", "composition_mismatch") for r in rows)
    matcher_s = [r["seconds"] for r in rows if r["status"] in ("matched", "no_match") and r["seconds"] is not None]
    result = {"pairs": len(pairs), "k": args.k, "workers": args.workers, "reference_loop_s": round(t_serial, 2),
              "xtalbase_s": round(t_ours, 2), "ratio": round(t_serial / t_ours, 2), "same_rms": same,
              "pre_checked_pairs": skipped, "mean_pair_matcher_s": round(float(np.mean(matcher_s)), 5),
              "matched": sum(r is not None for r in ours), "host": platform.node(), "cpus": os.cpu_count()}
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "csp_match.json").write_text(json.dumps(result, indent=1))


def leaderboard(args: argparse.Namespace) -> None:
    from xtalbase.csp.leaderboard import plot, to_markdown

    db, split = _db(args.db)
    timings = {}
    for spec in args.models.split(","):
        # NAME or NAME:key=value (a model parameter, e.g. template:rank=random)
        name, _, option = spec.partition(":")
        params = json.loads(args.params) if name == "diffcsp" and args.params else {}
        if option:
            key, _, value = option.partition("=")
            params[key] = value
        for seed in [int(s) for s in args.seeds.split(",")]:
            started = time.perf_counter()
            model_id = _model(db, split, name, seed, params, f"-{option.replace('=', '')}" if option else "")
            fit = db.csp.load_model(model_id)[1].metrics.get("fit_seconds", time.perf_counter() - started)
            sampling = json.loads(args.sample_params) if name == "diffcsp" and args.sample_params else None
            info = _run(db, split, model_id, name + (f"-{option.replace('=', '')}" if option else ""), args.k, seed, sampling)
            timings[info.name] = {"fit_s": fit, "sample_s": info.seconds}
    out = {"split": split.name, "split_hash": split.id, "timings": timings, "published": PUBLISHED}
    text = []
    for mode in ("reference", "strict"):
        started = time.perf_counter()
        board = db.csp.leaderboard(split, mode=mode, ks=(1, args.k), workers=args.workers,
                                   runs=args.runs.split(",") if args.runs else None)
        out[mode] = board
        text.append(to_markdown(board))
        print(text[-1], f"\n({time.perf_counter() - started:.1f} s)")
    text.append(_summary(out))
    print(text[-1])
    plot(out["reference"], RESULTS / "csp_perov5_match_vs_k.png")
    lines = ["", "Published, official Perov-5 split (11,356 / 3,787 / 3,785), match rate % / RMSE:", ""]
    for model, rows in PUBLISHED.items():
        lines.append(f"- {model}: k = 1 {rows[1][0]} % / {rows[1][1]}, k = 20 {rows[20][0]} % / {rows[20][1]}")
    lines += ["", "Training and sampling seconds (this machine):", ""]
    lines += [f"- {run}: fit {t['fit_s']:.1f} s, sample {t['sample_s']:.1f} s" for run, t in timings.items()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "csp_perov5.md").write_text("\n\n".join(text) + "\n" + "\n".join(lines) + "\n")
    (RESULTS / "csp_perov5.json").write_text(json.dumps(out, indent=1, default=str))
    print("\n".join(lines))


def _summary(out: dict) -> str:
    """Mean ± std over seeds of each run family (run name without its ``-sN`` seed) and k, both modes."""
    import re

    import numpy as np

    groups: dict = {}
    for mode in ("reference", "strict"):
        for row in out[mode]["rows"]:
            family = re.sub(r"-s\d+", "", row["run"])
            groups.setdefault((family, row["k"]), {}).setdefault(mode, []).append(row)
    cols = ["run family", "k", "seeds", "match_rate", "rmse", "match_rate_strict", "rmse_strict", "volume_error", "spacegroup_agreement"]
    lines = ["Mean ± std over seeds (std over sampling seeds for diffcsp, over training + sampling seeds for the baselines)", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def cell(rows: list, key: str) -> str:
        values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
        if not len(values):
            return ""
        return f"{values.mean():.4f} ± {values.std():.4f}" if len(values) > 1 else f"{values[0]:.4f}"

    for (family, k), modes in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ref, strict = modes.get("reference", []), modes.get("strict", [])
        lines.append("| " + " | ".join([family, str(k), str(len(ref)), cell(ref, "match_rate"), cell(ref, "rmse"),
                                         cell(strict, "match_rate_strict"), cell(strict, "rmse_strict"),
                                         cell(strict, "volume_error"), cell(strict, "spacegroup_agreement")]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite:////tmp/xtalbase-csp-bench.db")
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("match")
    m.add_argument("--k", type=int, default=5)
    m.add_argument("--workers", type=int, default=2)
    m.set_defaults(fn=match)
    b = sub.add_parser("leaderboard")
    b.add_argument("--models", default="random,template,diffcsp")
    b.add_argument("--k", type=int, default=20)
    b.add_argument("--seeds", default="0")
    b.add_argument("--params", default="", help="JSON of diffcsp parameters")
    b.add_argument("--sample-params", default="", help="JSON of diffcsp sampling parameters (e.g. timesteps)")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--runs", default="", help="comma-separated run names for the table (default every run on the split)")
    b.set_defaults(fn=leaderboard)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
