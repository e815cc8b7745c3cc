"""``xtalbase demo``: the main job end to end on a fresh embedded (SQLite) database.

Steps (each with a progress bar): create the database; ingest the vendored real subset (350 Materials
Project structures, 50 per crystal system, and the 56 reference CIFs of the XRD-AutoAnalyzer example);
compute XRD patterns (Cu Kα, 2θ 0-90°); import the 8 measured scans and identify their phases (candidates by
each sample's elements); make a prototype-grouped split; train
ExtraTrees and XGBoost crystal-system models on peaks11 and a CNN on synthetic measured-like scans; predict the
test fold and the measured scans; write plots;
compute Magpie descriptors and train an XGBoost formation-energy model on the same split; ingest the vendored
mlearn Mo DFT subset, import the published n2p2 Mo potential, train an HDNNP and evaluate both on the Mo test
set; ingest 600 vendored Perov-5 rows, split them 60/20/20 by formula, train the random, template and cspml CSP
models, sample 5 structures per test composition and print the CSP leaderboard; print the metrics tables and
three example SQL queries with their answers (through the read-only SQL path).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from xtalbase.commands._common import JsonOpt, console, print_json, print_table, progress

DATA = Path(__file__).resolve().parents[1] / "data"
SPLIT = "demo-prototype"
#: Crystal-system models: (algorithm, feature kind). The CNN is trained on synthetic measured-like scans
#: (``profile_aug``), the best of the measured-scan models on the val fold (docs/models.md).
ALGORITHMS = (("extratrees", "peaks11"), ("xgboost", "peaks11"), ("cnn", "profile_aug"))
MLEARN_MO = DATA / "mlearn" / "Mo"
POTENTIAL_SPLIT = "demo-mo"
POTENTIAL_EPOCHS = 30
PEROV5 = DATA / "perov5" / "test_head600.csv"
CSP_SPLIT = "demo-perov5"
CSP_K = 5
#: The CPU models of the demo's CSP leaderboard: the floor, the nearest template and CSPML-style templates.
CSP_MODELS = ("random", "template", "cspml")

#: Three questions a SQL user might ask, answered by the read-only SQL path.
EXAMPLE_QUERIES = {
    "Structures per crystal system":
        "SELECT crystal_system, COUNT(*) AS structures FROM v_structures GROUP BY crystal_system ORDER BY structures DESC",
    "Test-fold accuracy of each model, straight from the predictions table":
        "SELECT p.model_id, p.algorithm, COUNT(*) AS predictions, "
        "ROUND(AVG(CASE WHEN p.label = s.crystal_system THEN 1.0 ELSE 0.0 END), 3) AS accuracy "
        "FROM v_predictions AS p JOIN structures AS s ON s.id = p.structure_id "
        "GROUP BY p.model_id, p.algorithm ORDER BY p.model_id",
    "What each model says about the measured scans":
        "SELECT x.name AS scan, p.algorithm, p.label AS predicted_crystal_system "
        "FROM v_predictions AS p JOIN xrd_patterns AS x ON x.id = p.pattern_id "
        "WHERE x.kind = 'measured' AND p.target = 'crystal_system' ORDER BY x.name, p.algorithm",
}


def demo(
    folder: Annotated[Optional[Path], typer.Argument(help="Empty folder for the demo database and plots (default: a new temporary folder).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline on the vendored real data in a fresh SQLite database (well under a minute)."""
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="xtalbase-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "xtalbase.db"
    if path.exists():
        raise typer.BadParameter(f"{path} already exists; give an empty folder", param_hint="FOLDER")
    with progress(transient=False) as bar:
        result = run_demo(folder, lambda label, total: _Step(bar, label, total))
    if as_json:
        print_json(result)
        return
    report(result)


def run_demo(folder: Path, step: Callable[[str, int], Any]) -> dict[str, Any]:
    """Run every step in ``folder``; ``step(label, total)`` returns a context with ``advance(n)``. Returns a summary."""
    from xtalbase.api import Database

    started = time.perf_counter()
    timings: dict[str, float] = {}
    db = Database(f"sqlite:///{folder / 'xtalbase.db'}")
    with step("create database", 1) as s:
        db.init()
        s.advance(1)
    timings["init"] = time.perf_counter() - started

    t = time.perf_counter()
    cif_dirs = [DATA / "mp_subset" / "cifs", DATA / "xrd_experimental" / "References"]
    with step("ingest 406 CIFs (MP subset + XRD references)", 406) as s:
        ingest = db.ingest(cif_dirs, on_progress=lambda done, total: s.update(done))
    timings["ingest"] = time.perf_counter() - t

    t = time.perf_counter()
    with step("compute XRD patterns (Cu Kα, 2θ 0-90°)", 1) as s:
        xrd = compute_patterns(db)
        s.advance(1)
    timings["xrd"] = time.perf_counter() - t

    t = time.perf_counter()
    scans = sorted((DATA / "xrd_experimental" / "Spectra").glob("*.xy"))
    with step("import measured scans", len(scans)) as s:
        from xtalbase.commands.predict import import_patterns

        pattern_ids = import_patterns(db, scans, on_progress=s.advance)
    timings["measured"] = time.perf_counter() - t

    t = time.perf_counter()
    with step("split by prototype (60/20/20, seed 0)", 1) as s:
        split = db.splits.create(SPLIT, strategy="group", by="prototype", fractions=(0.6, 0.2, 0.2), seed=0)
        s.advance(1)
    timings["split"] = time.perf_counter() - t

    from xtalbase.ml.plots import plots_for_model
    from xtalbase.ml.predict import predict_patterns, predict_structures
    from xtalbase.ml.training import train_xrd

    models: list[dict[str, Any]] = []
    plots: list[str] = []
    from xtalbase.commands._common import torch_threads

    torch_threads(1)  # the CNN's weights depend on the torch thread count; one thread makes the demo reproducible
    for algorithm, features in ALGORITHMS:
        t = time.perf_counter()
        with step(f"train {algorithm} crystal-system model ({features})", 1) as s:
            trained = train_xrd(db, target="crystal_system", split=SPLIT, algorithm=algorithm, features=features, seed=0,
                                name=f"demo-{algorithm}")
            s.advance(1)
        timings[f"train_{algorithm}"] = time.perf_counter() - t
        with step(f"predict test fold and {len(pattern_ids)} scans ({algorithm})", 2) as s:
            on_test = predict_structures(db, trained.model_id, split.ids("test"), source=f"split {SPLIT}/test")
            s.advance(1)
            on_scans = predict_patterns(db, trained.model_id, pattern_ids)
            s.advance(1)
        with step(f"plots ({algorithm})", 1) as s:
            plots += [str(p) for p in plots_for_model(db, trained.model_id, folder / "plots")]
            s.advance(1)
        models.append({"model_id": trained.model_id, "algorithm": algorithm, "features": features, "metrics": trained.metrics,
                       "fit_seconds": round(trained.fit_seconds, 3), "test_predictions": len(on_test.prediction_ids),
                       "scan_predictions": [{"scan": r["name"], "label": r["label"], "probability": r["probability"]}
                                            for r in on_scans.rows],
                       "example_prediction_id": on_test.prediction_ids[0] if on_test.prediction_ids else None})

    phases = run_phase_steps(db, scans, step, timings)
    properties = run_property_steps(db, step, timings)
    potentials = run_potential_steps(db, folder, step, timings)
    csp = run_csp_steps(db, step, timings)

    from xtalbase.platform.sql import run_readonly

    queries = []
    with step("example SQL queries (read-only path)", len(EXAMPLE_QUERIES)) as s:
        for title, sql in EXAMPLE_QUERIES.items():
            res = run_readonly(db, sql, max_rows=20)
            queries.append({"title": title, "sql": sql, "columns": res.columns, "rows": [list(r) for r in res.rows]})
            s.advance(1)
    db.close()
    return {"database": str(folder / "xtalbase.db"), "url": f"sqlite:///{folder / 'xtalbase.db'}",
            "plots": plots, "ingest": {"read": ingest.read, "inserted": ingest.inserted, "duplicates": ingest.duplicates,
                                       "quarantined": ingest.quarantined},
            "xrd_patterns": xrd, "measured_patterns": len(pattern_ids),
            "split": {"name": SPLIT, "counts": split.summary().get("counts")}, "models": models, "phases": phases,
            "properties": properties,
            "potentials": potentials,
            "csp": csp, "queries": queries,
            "seconds": round(time.perf_counter() - started, 2), "timings": {k: round(v, 2) for k, v in timings.items()}}


def run_phase_steps(db: Any, scans: list[Path], step: Callable[[str, int], Any], timings: dict[str, float]) -> list[dict[str, Any]]:
    """Identify the phases of the measured scans among the stored structures, each scan with its sample's elements
    (the vendored sample table); results stored as predictions."""
    from xtalbase.xrd.identify import identify_scans, read_sample_table

    t = time.perf_counter()
    samples = read_sample_table(DATA / "xrd_experimental" / "samples.csv")
    with step(f"identify the phases of {len(scans)} scans (elements from the sample table)", len(scans)) as s:
        results = identify_scans(db, scans, samples=samples, progress=lambda done: s.update(done))
    timings["phase_id"] = time.perf_counter() - t
    return [{"scan": Path(r.path).stem, "prediction_id": r.prediction_id, "residual": r.identification.residual,
             "phases": [{"formula": p.formula, "spacegroup": p.spacegroup, "weight_fraction": p.weight_fraction,
                         "alternatives": [a["formula"] for a in p.alternatives]} for p in r.identification.phases]}
            for r in results]


def run_property_steps(db: Any, step: Callable[[str, int], Any], timings: dict[str, float]) -> dict[str, Any]:
    """Magpie descriptors of the MP structures (cached per recipe) and an XGBoost formation-energy model on the split."""
    from xtalbase.ml.property import train_property

    t = time.perf_counter()
    with step("Magpie descriptors (132 per structure, cached) and a formation-energy model", 2) as s:
        frame = db.describe("magpie")
        s.advance(1)
        report = train_property(db, target="formation_energy_per_atom", split=SPLIT, descriptor="magpie", algorithm="xgboost",
                                seed=0, name="demo-eform-xgboost")
        s.advance(1)
    timings["property"] = time.perf_counter() - t
    return {"described": len(frame), "model_id": report.model_id, "metrics": report.metrics}


def run_potential_steps(db: Any, folder: Path, step: Callable[[str, int], Any], timings: dict[str, float]) -> dict[str, Any]:
    """Ingest the vendored mlearn Mo DFT subset, import the published n2p2 Mo potential, train one, evaluate both."""
    from xtalbase.commands._common import torch_threads
    from xtalbase.mlip.potentials import evaluate_potential, import_n2p2, predict_potential, train_potential

    torch_threads(1)
    from xtalbase.mlip.training import TrainOptions
    from xtalbase.platform.repositories.calculations import labelled_structure_ids

    t = time.perf_counter()
    with step("ingest mlearn Mo DFT (65 training + 23 test configurations)", 2) as s:
        runs = []
        for name in ("training_every3rd.json.gz", "test.json.gz"):
            runs.append(db.ingest([MLEARN_MO / name]).run_id)
            s.advance(1)
    with db.session() as session:
        ids = labelled_structure_ids(session, runs)
    with step("split Mo by ingest run (test = the mlearn test set)", 1) as s:
        db.splits.create(POTENTIAL_SPLIT, strategy="time", cut=runs[0], ids=ids, fractions=(0.8, 0.2, 0.0), seed=0)
        s.advance(1)
    with step("import the published n2p2 Mo potential and evaluate it", 2) as s:
        published = import_n2p2(db, MLEARN_MO, name="mlearn-Mo-n2p2")
        s.advance(1)
        published_test = evaluate_potential(db, published.model_id, split=POTENTIAL_SPLIT, fold="test").summary()
        s.advance(1)
    timings["potential_import"] = time.perf_counter() - t
    t = time.perf_counter()
    options = TrainOptions(optimizer="lbfgs", epochs=POTENTIAL_EPOCHS, seed=0)
    with step(f"train an HDNNP (mlearn-Mo descriptors, L-BFGS, {POTENTIAL_EPOCHS} epochs)", POTENTIAL_EPOCHS) as s:
        trained = train_potential(db, split=POTENTIAL_SPLIT, recipe="mlearn-Mo", options=options, name="demo-hdnnp-Mo",
                                  on_epoch=lambda row: s.update(int(row["epoch"])))
    with step("predict the Mo test set (energies, forces)", 1) as s:
        predict_run, rows, _ = predict_potential(db, trained.model_id, source=f"split {POTENTIAL_SPLIT}/test",
                                                 split=POTENTIAL_SPLIT, fold="test")
        s.advance(1)
    timings["potential_train"] = time.perf_counter() - t
    t = time.perf_counter()
    with step("coverage gap of the Mo test set against the training set (key-motif analysis)", 1) as s:
        from xtalbase.mlip.expansion import gap_report

        for fold in ("train", "test"):
            db.datasets.create(f"{POTENTIAL_SPLIT}-{fold}", split=POTENTIAL_SPLIT, fold=fold)
        gap = gap_report(db, train=f"{POTENTIAL_SPLIT}-train", target=f"{POTENTIAL_SPLIT}-test",
                         model_id=trained.model_id).to_dict(3)
        s.advance(1)
    timings["potential_gap"] = time.perf_counter() - t
    return {"split": POTENTIAL_SPLIT, "gap": {"n_outlier_atoms": gap["n_outlier_atoms"], "outliers": gap["outliers"],
                                               "top_motifs": [m["label"] for m in gap["top_motifs"]]},
            "published": {"model_id": published.model_id, "test": published_test},
            "trained": {"model_id": trained.model_id, "test": trained.metrics.get("test"),
                        "baseline_test": trained.metrics.get("baseline_test"), "n_train": trained.n_train,
                        "n_val": trained.n_val, "seconds": {k: round(v, 2) for k, v in trained.seconds.items()}},
            "test_predictions": len(rows), "predict_run": predict_run,
            "example_prediction_id": rows[0]["prediction_id"] if rows else None}


def run_csp_steps(db: Any, step: Callable[[str, int], Any], timings: dict[str, float]) -> dict[str, Any]:
    """Ingest the vendored Perov-5 rows, train and sample the CSP baselines, evaluate them on one split."""
    from xtalbase.csp.tasks import perov5

    t = time.perf_counter()
    with step("ingest 600 Perov-5 rows; split 60/20/20 grouped by formula", 2) as s:
        db.ingest([PEROV5], source="perov5")
        s.advance(1)
        split = perov5(db.splits, CSP_SPLIT)
        s.advance(1)
    runs = []
    for model in CSP_MODELS:
        with step(f"CSP: train {model}, sample k = {CSP_K} per test composition", 2) as s:
            model_id = db.csp.train(split, model, seed=0, name=f"demo-csp-{model}")
            s.advance(1)
            runs.append(db.csp.sample(model_id, split, k=CSP_K, seed=0, name=f"demo-{model}-k{CSP_K}").name)
            s.advance(1)
    with step("CSP: match every sample (StructureMatcher, 2 workers) and rank", len(runs)) as s:
        for name in runs:
            db.csp.evaluate(name, workers=2)
            s.advance(1)
        board = db.csp.leaderboard(split, ks=(1, CSP_K))
    timings["csp"] = time.perf_counter() - t
    keep = ("model", "run", "k", "match_rate", "rmse", "n_matched", "n_test")
    return {"split": CSP_SPLIT, "split_hash": split.id, "counts": split.counts, "rows": [{k: r[k] for k in keep} for r in board["rows"]]}


def compute_patterns(db: Any) -> int:
    """Compute the missing Cu Kα patterns (2θ 0-90°) of every structure; returns how many were computed."""
    from xtalbase.xrd.builder import compute_missing

    return int(compute_missing(db)["computed"])


def report(result: dict[str, Any]) -> None:
    """Print the metrics table, the measured-scan predictions, the example queries and where things are."""
    out = console()
    ing = result["ingest"]
    out.print(f"ingested {ing['inserted']} structures ({ing['duplicates']} duplicates, {ing['quarantined']} quarantined), "
              f"{result['xrd_patterns']} XRD patterns, {result['measured_patterns']} measured scans; split {result['split']['name']} "
              f"{result['split']['counts']}")
    rows = []
    for m in result["models"]:
        for fold in ("val", "test"):
            met = m["metrics"].get(fold, {})
            if met.get("n"):
                rows.append({"model": m["model_id"], "algorithm": m["algorithm"], "features": m.get("features", "peaks11"),
                             "fold": fold, "n": met["n"],
                             "accuracy": f"{met['accuracy']:.3f}", "top-5": f"{met.get('top5_accuracy', float('nan')):.3f}",
                             "macro-F1": f"{met['macro_f1']:.3f}", "majority class": f"{met['majority_accuracy']:.3f}",
                             "fit s": m["fit_seconds"]})
    print_table(rows, title="crystal system from XRD, prototype-grouped split (held-out folds read as computed patterns)")
    scan_rows = []
    for m in result["models"]:
        for r in m["scan_predictions"]:
            scan_rows.append({"scan": r["scan"], "algorithm": f"{m['algorithm']} ({m.get('features', 'peaks11')})",
                              "predicted": r["label"], "p": f"{r['probability']:.2f}"})
    print_table(scan_rows, title="measured scans (XRD-AutoAnalyzer examples)")
    out.print("note: peaks11 counts every computed reflection while peak picking on a measured scan finds only the clear ones, "
              "so peaks11 models call scans cubic; the CNN learns from synthetic measured-like scans (profile_aug) and is the "
              "better model on val, but it is still wrong on unseen prototypes (see docs/models.md); the phase search above "
              "names each scan's phases, crystal system included")
    phases = result.get("phases")
    if phases:
        print_table([{"scan": r["scan"], "phases found": " + ".join(f"{p['formula']} ({p['spacegroup']})" for p in r["phases"]) or "-",
                      "~weight fractions": " / ".join("-" if p["weight_fraction"] is None else f"{p['weight_fraction']:.2f}"
                                                      for p in r["phases"]),
                      "look-alikes": "; ".join(f"{p['formula']}: {', '.join(p['alternatives'])}" for p in r["phases"] if p["alternatives"])
                      or "-", "residual": f"{r['residual']:.3f}"} for r in phases],
                    title="phase identification of the measured scans (profile fit, candidates by the sample's elements; "
                          "xtalbase xrd identify, docs/xrd.md)")
    prop = result.get("properties")
    if prop:
        rows = [{"fold": f, "n": m["n"], "MAE eV/atom": f"{m['mae']:.3f}", "R²": f"{m['r2']:.3f}",
                 "mean-predictor MAE": f"{m['baseline_mean_mae']:.3f}"}
                for f in ("val", "test") if (m := prop["metrics"].get(f)) and m.get("n")]
        print_table(rows, title=f"formation energy from composition (Magpie, XGBoost, model {prop['model_id']}); "
                                "xtalbase train property, docs/models.md")
    pot = result.get("potentials")
    if pot:
        rows = []
        for label, m in (("published n2p2 (imported)", pot["published"]["test"]),
                         ("trained here", pot["trained"]["test"]), ("mean-energy baseline", pot["trained"]["baseline_test"])):
            rows.append({"Mo potential": label, "E RMSE meV/atom": f"{m['energy_rmse_mev']:.2f}",
                         "E MAE meV/atom": f"{m['energy_mae_mev']:.2f}", "F RMSE eV/Å": f"{m['force_rmse']:.3f}",
                         "F MAE eV/Å": f"{m['force_mae']:.3f}"})
        print_table(rows, title=f"HDNNP on the mlearn Mo test set ({pot['trained']['n_train']} training configurations here, "
                                "194 for the published model)")
        gap = pot.get("gap")
        if gap:
            atoms = sum(v["atoms"] for v in gap["outliers"].values())
            out.print(f"key-motif analysis: {gap['n_outlier_atoms']} of {atoms} test atoms lie outside the trained "
                      f"potential's descriptor range; top motifs the training set lacks: {'; '.join(gap['top_motifs'])} "
                      "(xtalbase mlip gap; docs/keymotif.md)")
    csp = result.get("csp")
    if csp:
        print_table([{**r, "match_rate": f"{r['match_rate']:.3f}", "rmse": f"{r['rmse']:.4f}" if r["rmse"] is not None else "-"}
                     for r in csp["rows"]],
                    title=f"CSP leaderboard, Perov-5 {csp['split']} test fold (split hash {csp['split_hash'][:12]}; "
                          "reference metrics: StructureMatcher stol 0.5, ltol 0.3, angle_tol 10)")
        out.print("DiffCSP (xtalbase csp train --model diffcsp) and imported predictions join the same table; docs/csp.md")
    for q in result["queries"]:
        out.print(f"\n[bold]{q['title']}[/bold]\n  {q['sql']}")
        print_table([dict(zip(q["columns"], r)) for r in q["rows"]], q["columns"])
    out.print(f"\ndatabase: {result['database']}  (xtalbase --db {result['url']} models list)")
    if result["models"] and result["models"][0]["example_prediction_id"]:
        out.print(f"provenance: xtalbase --db {result['url']} provenance prediction {result['models'][0]['example_prediction_id']}")
    out.print("plots:\n  " + "\n  ".join(result["plots"]))
    out.print(f"browse it: xtalbase --db {result['url']} serve  (OPTIMADE at http://127.0.0.1:5000/v1, pages at /)")
    out.print(f"done in {result['seconds']:.1f} s")


class _Step:
    """A progress-bar task used as a context manager by :func:`run_demo`."""

    def __init__(self, bar: Any, label: str, total: int) -> None:
        self.bar, self.label, self.total = bar, label, total

    def __enter__(self) -> "_Step":
        self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)

    def update(self, done: int) -> None:
        self.bar.update(self.task, completed=done)

    def __exit__(self, *exc: object) -> None:
        self.bar.update(self.task, completed=self.total)
