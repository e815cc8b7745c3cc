"""The ``cspml`` template model (issue 22) against the template baselines, on Perov-5 and on MP structures with ≤ 20 sites.

    python bench/cspml.py perov5 [--k 5] [--seeds 0,1,2]
    python bench/cspml.py mp20 [--k 5]
    python bench/cspml.py perov5|mp20 --val     # every ranker on the val fold: the table the default is chosen from

``perov5`` uses bench/csp.py's database (``/tmp/xtalbase-csp-bench.db``, the 3,785 shared Perov-5 rows, split
``perov5``). ``mp20`` builds ``/tmp/xtalbase-cspml-mp.db``: the CIFs of ``../shared/data/mp_cgcnn`` whose
``_chemical_formula_sum`` counts at most 20 atoms are ingested (source ``MP``; the other 13.6k are never read, which
saves their symmetry analysis), then :func:`xtalbase.csp.tasks.mp20_like` splits them 60/20/20 grouped by reduced
formula, seed 0. Every model is trained on the train fold (val for its choices), sampled with ``k`` structures per
test composition and evaluated by the framework (reference and strict mode); the first sample is top-1 and the best of
``k`` is top-k. ``any_k`` is the same best-of-k without the validity gates (the matcher alone), which is what the
composition gate caps: on Perov-5 3.65 % of the test compositions fail SMACT, so gated top-k cannot pass 96.35 %.
Results: ``bench/results/cspml_<task>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import csp as csp_bench  # noqa: E402 - bench/csp.py: the Perov-5 database and the model/run helpers

ROOT = csp_bench.ROOT
RESULTS = csp_bench.RESULTS
MP_DB = "sqlite:////tmp/xtalbase-cspml-mp.db"
MP_SPLIT = "mp20"
#: Published anchors (top-1 / top-k %, their own splits and settings; not comparable row by row).
PUBLISHED = {
    "perov5": ["DiffCSP (Jiao et al. 2023), official Perov-5 split: 52.02 % at k = 1, 98.60 % at k = 20",
               "CDVAE (as reported by DiffCSP): 45.31 % at k = 1, 88.51 % at k = 20"],
    "mp20": ["DiffCSP++ with CSPML templates (Jiao et al. 2024), MP-20: 70.58 % at k = 1",
             "DiffCSP (Jiao et al. 2023), MP-20: 51.49 % at k = 1, 77.93 % at k = 20",
             "TCSP 2.0 (Wei et al. 2025), CSPBench 180 structures: 78.33 % structural similarity at top-5",
             "CSPML (Kusaba et al. 2022): 96.4 % pair-classifier accuracy; 90 benchmark crystals"],
}
#: What the tables say. The val-fold numbers (ranker choice, top-2, per_template/dedupe ablations) and the A/B-site
#: counts were measured during development with exploratory scripts that this bench does not rerun: they are printed
#: as recorded, beside the tables this script computes.
NOTES = {
    "perov5": """\
**A random template already reaches ~50-52 % top-1 on Perov-5, the level of published single-sample deep models (DiffCSP
52.02 %), and no composition-only model can do much better.** Castelli's set enumerates every ordered (A, B) cation pair
(18,928 = 52 × 52 × 7 anion sets), so each formula exists in both A/B orders and which one sits in the test CSV is
chance. Measured on this split: in the train and val folds' 869 ABX3 rows the cation of larger atomic radius is on the A site in
46.0 % and the smaller in 45.7 % (ionic radius 49.8 / 49.9 %, electronegativity 49.6 / 49.6 %); on the val fold the
nearest template with the larger cation on A matches 46.7 %, with the smaller 45.0 % (229 ABX3 queries). The nearest template with
its best assignment matches 99 % of the first 300 val queries (297): the A/B site is the failure, not the template. So the
stretch goal (75 % top-1 with a learned site assignment) has no signal to learn here, and top-1 ≥ 52 % is at the noise
level (random-template seeds 48.2-51.0 %). What the tied-site candidates buy is top-2..5: cspml puts the A/B swap of
the same template second (role-aware substitution cost: an anion former never replaces a cation), so top-5 is 96.2 %
against 94.5 % for the nearest template, i.e. 711 of the 712 test structures whose composition passes SMACT (the gate's
ceiling is 96.35 %; top-5 ≥ 97 % is above it), 99.9 % without the gates. Val (745, ungated): top-1 46.9 %, top-2
91.1 %, top-5 96.5 %; with one assignment per template (per_template=1) top-2 71.5 %, without dedupe top-5 94.9 %.
Strict top-5 is lower than the nearest template's because every cspml sample of a query gets the same learned volume
(five different templates give five different volumes); strict top-1 is higher (35.9 % vs 31.7 %).

Rankers: on Perov-5 every template is a perovskite, so the ranker only decides which template's geometry is used;
substitution (Mendeleev + role) is default. The learned pair model (xgboost on |Δ XenonPy| + substitution cost,
18,408 training-fold pairs labelled by StructureMatcher, 42 % positive: the A/B coin flip again) does not beat it.
""",
    "mp20": """\
MP structures with ≤ 20 sites: all 15,737 CIFs of the shared CGCNN set with ≤ 20 atoms (no subset; ingest 189 s on 2
cores), 9,450 / 3,144 / 3,143. Targets (top-1 ≥ 60 %, top-5 ≥ 78 %): cspml-substitution reaches 63.2 % top-1 and
74.5 % top-5 with the validity gates, 69.2 % / 81.3 % with the matcher alone (the quick prototypes of the issue were
matcher-only). 90.9 % of these test compositions pass SMACT, the ceiling of gated top-k; gated top-5 is 82 % of it.
Against the nearest template (52.2 / 69.7 %) the gain is same-site-count templates first (the query's atom count is
part of the task), the role-aware substitution cost, and every tied-site assignment of a template as a candidate.
The 70 % top-1 stretch is not reached (69.2 % without the gates, 63.2 % with them).

Default ranker chosen on the val fold (first 600 val structures, ungated top-1 / top-5, k = 5, fitted volume):
substitution 75.5 / 86.3 %, descriptor 71.3 / 86.7 %, learned (5,000 matcher-labelled pairs) 68.3 / 85.3 %, random
30.5 / 62.0 %. The learned pair model does not beat the unsupervised substitution cost, so it is not the default.
The learned ranker here uses StructureMatcher labels (the metric's own notion of "same structure"); CSPML's
CrystalNN-fingerprint labels (``label=crystalnn``, tau 0.3, CSPML's value) cost ~0.13 s per structure (~20 min for the
9.4k training structures on one core) and were not run for this table.
""",
}
#: (run family, model, params, seeds): the leaderboard rows of each task.
PEROV5_MODELS = [
    ("template", "template", {}, (0,)),
    ("template-rankrandom", "template", {"rank": "random"}, (0, 1, 2)),
    ("cspml-substitution", "cspml", {"ranker": "substitution"}, (0,)),
    ("cspml-descriptor", "cspml", {"ranker": "descriptor"}, (0,)),
    ("cspml-learned", "cspml", {"ranker": "learned", "label": "matcher", "workers": 2}, (0,)),
    ("cspml-random", "cspml", {"ranker": "random"}, (0, 1, 2)),
]
MP_MODELS = [
    ("template", "template", {}, (0,)),
    ("template-rankrandom", "template", {"rank": "random"}, (0,)),
    ("cspml-substitution", "cspml", {"ranker": "substitution"}, (0,)),
    ("cspml-descriptor", "cspml", {"ranker": "descriptor"}, (0,)),
    ("cspml-learned", "cspml", {"ranker": "learned", "label": "matcher", "workers": 2}, (0,)),
]


def mp_db(url: str = MP_DB):
    """The MP ≤ 20-site database and split, built on first use (timed)."""
    import xtalbase
    from xtalbase.csp.tasks import mp20_like

    db = xtalbase.connect(url)
    db.init()
    if MP_SPLIT not in db.splits:
        folder = csp_bench.DATA / "mp_cgcnn" / "cifs"
        if not folder.is_dir():
            sys.exit(f"{folder} is absent: the benchmark needs the shared MP CIFs")
        started = time.perf_counter()
        paths = [p for p in sorted(folder.glob("*.cif")) if _formula_sites(p) <= 20]
        report = db.ingest(paths, workers=2, source="MP")
        print(f"ingested {report.inserted} of {len(paths)} MP CIFs with ≤ 20 atoms in {time.perf_counter() - started:.0f} s")
        mp20_like(db.splits, MP_SPLIT)
    split = db.splits.get(MP_SPLIT)
    print(f"split {MP_SPLIT}: {split.counts} hash {split.id[:16]}")
    return db, split


def _formula_sites(path: Path) -> float:
    text = path.read_text()
    found = re.search(r"_chemical_formula_sum\s+'?([^'\n]+)'?", text)
    return sum(float(x) for x in re.findall(r"[A-Z][a-z]?([\d.]+)", found.group(1))) if found else float("inf")


def _ungated(db, run_id: int, k: int) -> float:
    """Best-of-k match rate with the matcher alone (no validity gate), over the whole test fold."""
    _, table = db.csp.pair_table(run_id)
    df = table.first(k)
    hit = df[df["rms"].notna()]["structure_id"].nunique()
    return hit / table.n_test


def bench(task: str, args: argparse.Namespace) -> None:
    db, split = csp_bench._db(args.db) if task == "perov5" else mp_db()
    models = PEROV5_MODELS if task == "perov5" else MP_MODELS
    timings, names, extra = {}, [], {}
    for family, model, params, seeds in models:
        for seed in seeds[:args.max_seeds]:
            started = time.perf_counter()
            variant = family[len(model):]
            model_id = csp_bench._model(db, split, model, seed, params, variant)
            fitted, row = db.csp.load_model(model_id)
            fit_s = row.metrics.get("fit_seconds", time.perf_counter() - started)
            info = csp_bench._run(db, split, model_id, family, args.k, seed)
            names.append(info.name)
            timings[info.name] = {"fit_s": fit_s, "sample_s": info.seconds}
            extra[info.name] = {**{key: row.metrics.get(key) for key in ("volume_choice", "volume_val_errors", "n_pairs",
                                                                          "pair_positive_rate", "label_choice") if key in row.metrics}}
    out = {"task": task, "split": split.name, "split_hash": split.id, "counts": split.counts, "k": args.k,
           "timings": timings, "fit": extra, "published": PUBLISHED[task], "host": platform.node(), "cpus": os.cpu_count()}
    text = []
    for mode in ("reference", "strict"):
        started = time.perf_counter()
        board = db.csp.leaderboard(split, mode=mode, ks=(1, args.k), workers=args.workers, runs=names)
        out[mode] = board
        print(f"{mode}: {time.perf_counter() - started:.0f} s")
    for row in out["reference"]["rows"]:
        row["any_k"] = round(_ungated(db, row["run_id"], row["k"]), 4)
    text.append(_table(out, args.k))
    text.append(NOTES[task])
    from xtalbase.csp.leaderboard import to_markdown

    text += [to_markdown(out["reference"]), to_markdown(out["strict"])]
    lines = ["Published anchors (other splits and settings):", ""] + [f"- {p}" for p in PUBLISHED[task]]
    lines += ["", "Training and sampling seconds (this machine, "
              f"{os.cpu_count()} cores):", ""]
    lines += [f"- {run}: fit {t['fit_s']:.1f} s, sample {t['sample_s']:.1f} s" for run, t in timings.items()]
    lines += ["", "Fitted choices (volume estimate chosen on val; learned ranker pairs):", ""]
    lines += [f"- {run}: {json.dumps(v)}" for run, v in extra.items() if v]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cspml_{task}.md").write_text("\n\n".join(text) + "\n\n" + "\n".join(lines) + "\n")
    (RESULTS / f"cspml_{task}.json").write_text(json.dumps(out, indent=1, default=str))
    print(text[0])


#: The rankers compared on the val fold, which is where the default was chosen.
VAL_RANKERS = ("substitution", "descriptor", "learned", "random")


def val(task: str, args: argparse.Namespace) -> None:
    """Every ranker of cspml sampled on the **val** fold (the test fold untouched): top-1 and top-k, gated and with the
    matcher alone. This is the table the default ranker is chosen from (``bench/results/cspml_<task>_val.md``)."""
    db, split = csp_bench._db(args.db) if task == "perov5" else mp_db()
    models = PEROV5_MODELS if task == "perov5" else MP_MODELS
    rows = []
    for ranker in VAL_RANKERS:
        family = f"cspml-{ranker}"
        params = next((p for f, m, p, _ in models if f == family), {"ranker": ranker})
        model_id = csp_bench._model(db, split, "cspml", 0, params, f"-{ranker}")
        label = f"{family}-val-k{args.k}-s0"
        try:
            info = db.csp.get(label)
        except Exception:  # noqa: BLE001 - not stored yet
            info = db.csp.sample(model_id, split, fold="val", k=args.k, seed=0, name=label)
            print(f"sampled {label} in {info.seconds:.1f} s")
        gated = {k: db.csp.evaluate(info.id, k=k, workers=args.workers)["match_rate"] for k in (1, args.k)}
        rows.append({"ranker": ranker, "run": label, "n_val": split.counts["val"],
                     **{f"top{k}": round(100 * v, 1) for k, v in gated.items()},
                     **{f"top{k}_ungated": round(100 * _ungated(db, info.id, k), 1) for k in (1, args.k)}})
        print(rows[-1])
    best = max(rows, key=lambda r: (r["top1"], r[f"top{args.k}"]))
    head = (f"{task}: cspml rankers on the val fold of split {split.name} (hash {split.id[:16]}), k = {args.k}, seed 0; "
            f"match rate %, reference mode with DiffCSP gating, and ungated (the matcher alone)")
    cols = ["ranker", "n_val", "top1", f"top{args.k}", "top1_ungated", f"top{args.k}_ungated"]
    table = "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] +
                       ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows])
    note = f"Best on val (top-1, then top-{args.k}): **{best['ranker']}**; the model's default ranker is `substitution`."
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cspml_{task}_val.md").write_text(f"{head}\n\n{table}\n\n{note}\n")
    (RESULTS / f"cspml_{task}_val.json").write_text(json.dumps({"task": task, "split_hash": split.id, "k": args.k, "rows": rows}, indent=1))
    print(table)
    print(note)


def _table(out: dict, k: int) -> str:
    """Top-1 and top-k per run family, mean ± std over seeds: gated (reference), ungated, strict."""
    import numpy as np

    groups: dict = {}
    for mode in ("reference", "strict"):
        for row in out[mode]["rows"]:
            groups.setdefault(re.sub(r"-s\d+$", "", row["run"].replace(f"-k{k}", "")), {}).setdefault((mode, row["k"]), []).append(row)

    def cell(rows: list, key: str) -> str:
        values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float) * 100
        if not len(values):
            return ""
        return f"{values.mean():.1f} ± {values.std():.1f}" if len(values) > 1 else f"{values[0]:.1f}"

    cols = ["run family", "seeds", "top-1", f"top-{k}", "top-1 ungated", f"top-{k} ungated", "top-1 strict", f"top-{k} strict",
            "RMSE top-1"]
    lines = [f"{out['task']}: split {out['split']} (hash {out['split_hash'][:16]}), test fold {out['counts'].get('test')}; "
             "match rate % (reference mode, DiffCSP gating), mean ± std over seeds", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for family, rows in groups.items():
        r1, rk = rows.get(("reference", 1), []), rows.get(("reference", k), [])
        s1, sk = rows.get(("strict", 1), []), rows.get(("strict", k), [])
        rmse = np.array([r["rmse"] for r in r1 if r.get("rmse") is not None])
        lines.append("| " + " | ".join([family, str(len(r1)), cell(r1, "match_rate"), cell(rk, "match_rate"), cell(r1, "any_k"),
                                         cell(rk, "any_k"), cell(s1, "match_rate_strict"), cell(sk, "match_rate_strict"),
                                         f"{rmse.mean():.3f}" if len(rmse) else ""]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=("perov5", "mp20"))
    parser.add_argument("--val", action="store_true", help="compare the rankers on the val fold (where the default is chosen)")
    parser.add_argument("--db", default="sqlite:////tmp/xtalbase-csp-bench.db", help="the Perov-5 database (bench/csp.py's)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    (val if args.val else bench)(args.task, args)


if __name__ == "__main__":
    main()
