"""Descriptor speed (issue 22): compositions per second, and seconds per structure of the CrystalNN fingerprint.

    python bench/descriptors.py compositions [--anchor 2000]        # xenonpy and magpie presets vs an anchor loop
    python bench/descriptors.py crystalnn [--structures 50] [--max-sites 80] [--seed 0]
    python bench/descriptors.py all

**compositions** reads the ~29k formulas of ``../shared/data/mp_cgcnn/cifs`` from each CIF's
``_chemical_formula_sum`` line (a text scan, no CIF parsing; not timed) as ``{element: amount}`` dicts, and the
3,785 formula strings of ``../shared/data/perov5/test.csv``. Ours: ``composition_preset(name).transform`` with the
packing included (dict/string -> padded arrays), in calls of 2,000 as ``DescriptorStore`` makes them, and (also
reported) as one call over the whole set. Anchor, on the first
``--anchor`` compositions: matminer's ``ElementProperty.from_preset("magpie").featurize`` per composition (on
prebuilt pymatgen ``Composition`` objects) when matminer is importable, else, and always for xenonpy, a plain
per-composition numpy loop over the same element table. The anchor's values are compared with ours.

**crystalnn** draws ``--structures`` CIFs of at most ``--max-sites`` sites (seeded) from the same folder and times,
structure by structure and interleaved so that load on the machine hits all alike, our ``crystalnn`` recipe
(default ``symprec``), ours with ``symprec=None`` (every site computed) and matminer's
``SiteStatsFingerprint(CrystalNNFingerprint.from_preset("ops", distance_cutoffs=None, x_diff_weight=0))`` when
installed; it reports median and p90 seconds per structure, seconds per site, the ratio and the largest
difference from matminer.

Results are merged into ``bench/results/descriptors.json`` and ``descriptors.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
CIFS = DATA / "mp_cgcnn" / "cifs"
PEROV5 = DATA / "perov5" / "test.csv"
_FORMULA_SUM = re.compile(r"^_chemical_formula_sum\s+'?([^'\n]+)'?", re.M)
_TERM = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")
#: Compositions per transform call, as ``DescriptorStore`` computes them (its CHUNK): the (n, m, p) gathers of a
#: chunk stay in cache, where one call over 29k compositions of the 58-property table spends most time in memory.
CHUNK = 2000


def _need(*paths: Path) -> bool:
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"skipped: {p} is absent (the ../shared/data checkout is needed)")
    return not missing


def _matminer() -> str | None:
    try:
        import matminer

        return getattr(matminer, "__version__", "installed")
    except ImportError:
        return None


def _host() -> dict[str, Any]:
    import pymatgen.core

    return {"host": platform.node(), "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "pymatgen": pymatgen.core.__version__, "matminer": _matminer(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


# --------------------------------------------------------------------------- compositions


def _formula_sum(path: Path) -> dict[str, float]:
    match = _FORMULA_SUM.search(path.read_text(errors="replace"))
    if not match:
        raise ValueError(f"{path.name}: no _chemical_formula_sum line")
    out: dict[str, float] = {}
    for symbol, amount in _TERM.findall(match.group(1)):
        out[symbol] = out.get(symbol, 0.0) + (float(amount) if amount else 1.0)
    return out


def _anchor_loop(items: list[Any], recipe: Any) -> np.ndarray:
    """The straightforward anchor: per composition, numpy statistics over the same table rows."""
    from pymatgen.core import Composition, Element

    from xtalbase.descriptors.tables import element_table

    table = element_table(recipe.table)
    values = table.imputed() if recipe.impute else table.values
    values = values[:, [table.properties.index(p) for p in recipe.properties or table.properties]]
    out = []
    for item in items:
        amounts = Composition(item).get_el_amt_dict()
        z = np.array([Element(el).Z for el in amounts])
        a = np.array(list(amounts.values()), dtype=float)
        if recipe.basis == "reduced" and np.allclose(a, np.round(a)):
            a = a / np.gcd.reduce(np.round(a).astype(int))
        w = a / a.sum()
        x = values[z]
        ave = w @ x
        stat = {"ave": ave, "mean": ave, "sum": a @ x, "var": w @ (x - ave) ** 2, "avg_dev": w @ np.abs(x - ave),
                "max": x.max(0), "maximum": x.max(0), "min": x.min(0), "minimum": x.min(0), "range": x.max(0) - x.min(0),
                "mode": x[w >= w.max() - 1e-8].min(0)}
        block = np.stack([stat[s] for s in recipe.stats])  # (s, p)
        out.append((block.T if recipe.layout == "property" else block).reshape(-1))
    return np.array(out)


def _matminer_magpie(items: list[Any]) -> tuple[float, np.ndarray]:
    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition

    featurizer = ElementProperty.from_preset("magpie", impute_nan=True)
    comps = [Composition(item) for item in items]
    start = time.perf_counter()
    rows = [featurizer.featurize(c) for c in comps]
    return time.perf_counter() - start, np.array(rows, dtype=float)


def compositions(args: argparse.Namespace) -> dict[str, Any]:
    from xtalbase.descriptors.compositional import composition_preset
    from xtalbase.descriptors.tables import element_table

    if not _need(CIFS, PEROV5):
        return {}
    start = time.perf_counter()
    mp = [_formula_sum(p) for p in sorted(CIFS.glob("*.cif"))]
    read_s = time.perf_counter() - start
    csv.field_size_limit(1 << 30)
    with PEROV5.open(newline="") as f:
        perov = [row["formula"] for row in csv.DictReader(f)]
    print(f"read {len(mp)} MP formulas from _chemical_formula_sum in {read_s:.1f} s; {len(perov)} Perov-5 formula strings")
    out: dict[str, Any] = {"mp_formulas": len(mp), "perov5_formulas": len(perov), "formula_read_s": round(read_s, 2), "presets": {}}
    for name in ("xenonpy", "magpie"):
        recipe = composition_preset(name)
        covered = set(element_table(recipe.table).covered().tolist()) if not recipe.impute else None
        from pymatgen.core import Element

        data = {"mp": mp if covered is None else [c for c in mp if all(Element(e).Z in covered for e in c)], "perov5": perov}
        entry: dict[str, Any] = {"columns": len(recipe.names())}
        for label, items in data.items():
            recipe.transform(items[:50])  # warm the table cache
            t0 = time.perf_counter()
            X = np.concatenate([recipe.transform(items[k:k + CHUNK]) for k in range(0, len(items), CHUNK)])
            ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            recipe.transform(items)
            one_call_s = time.perf_counter() - t0
            n_anchor = min(args.anchor, len(items))
            if name == "magpie" and _matminer():
                anchor_s, ref = _matminer_magpie(items[:n_anchor])
                anchor = f"matminer {_matminer()} ElementProperty.featurize loop"
            else:
                t0 = time.perf_counter()
                ref = _anchor_loop(items[:n_anchor], recipe)
                anchor_s = time.perf_counter() - t0
                anchor = "per-composition pymatgen + numpy loop"
            both = np.isfinite(ref) & np.isfinite(X[:n_anchor])
            diff = float(np.max(np.abs(ref - X[:n_anchor])[both] / np.maximum(1.0, np.abs(ref[both])))) if both.any() else 0.0
            ours_rate, anchor_rate = len(items) / ours_s, n_anchor / anchor_s
            entry[label] = {"n": len(items), "ours_s": round(ours_s, 3), "ours_per_s": round(ours_rate),
                            "ours_one_call_per_s": round(len(items) / one_call_s), "anchor": anchor,
                            "anchor_n": n_anchor, "anchor_per_s": round(anchor_rate, 1), "ratio": round(ours_rate / anchor_rate, 1),
                            "max_rel_diff_vs_anchor": diff, "nan_mismatch": int(np.sum(np.isnan(ref) != np.isnan(X[:n_anchor])))}
            if len(data["mp"]) != len(mp) and label == "mp":
                entry[label]["skipped_not_in_table"] = len(mp) - len(data["mp"])
            print(f"{name:8s} {label:6s} ours {ours_rate:8,.0f} compositions/s ({len(items)} in {ours_s:.2f} s, packing included; "
                  f"{len(items) / one_call_s:,.0f}/s as one call) | "
                  f"anchor {anchor_rate:8,.1f}/s ({anchor}, {n_anchor}) | x{ours_rate / anchor_rate:,.0f} | max rel diff {diff:.1e}")
        out["presets"][name] = entry
    return out


# --------------------------------------------------------------------------- CrystalNN


def crystalnn(args: argparse.Namespace) -> dict[str, Any]:
    from pymatgen.core import Structure

    from xtalbase.descriptors.structural import CrystalNNRecipe

    if not _need(CIFS):
        return {}
    files = sorted(CIFS.glob("*.cif"))
    random.Random(args.seed).shuffle(files)
    structures, names = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CIF parser notices about rounded coordinates
        for path in files:
            s = Structure.from_file(path)
            if len(s) <= args.max_sites:
                structures.append(s)
                names.append(path.stem)
            if len(structures) == args.structures:
                break
    sites = np.array([len(s) for s in structures])
    print(f"{len(structures)} MP structures (seed {args.seed}, <= {args.max_sites} sites): {sites.sum()} sites, "
          f"median {np.median(sites):.0f}, max {sites.max()}")
    runners = {"ours": CrystalNNRecipe(), "ours_all_sites": CrystalNNRecipe(symprec=None)}
    reference = None
    if _matminer():
        from matminer.featurizers.site.fingerprint import CrystalNNFingerprint
        from matminer.featurizers.structure.sites import SiteStatsFingerprint

        reference = SiteStatsFingerprint(CrystalNNFingerprint.from_preset("ops", distance_cutoffs=None, x_diff_weight=0),
                                         stats=("mean", "std_dev", "minimum", "maximum"))
    for recipe in runners.values():
        recipe.transform(structures[:1])  # imports and first-call costs out of the timings
    seconds: dict[str, list[float]] = {k: [] for k in [*runners, *(["matminer"] if reference else [])]}
    values: dict[str, list[np.ndarray]] = {k: [] for k in seconds}
    for k, s in enumerate(structures):
        for key, recipe in runners.items():
            t0 = time.perf_counter()
            values[key].append(recipe.transform([s])[0])
            seconds[key].append(time.perf_counter() - t0)
        if reference is not None:
            t0 = time.perf_counter()
            values["matminer"].append(np.array(reference.featurize(s), dtype=float))
            seconds["matminer"].append(time.perf_counter() - t0)
        print(f"  {k + 1:3d}/{len(structures)} {names[k]:12s} {len(s):3d} sites  "
              + "  ".join(f"{key} {seconds[key][-1]:6.2f} s" for key in seconds), flush=True)
    out: dict[str, Any] = {"ours_symprec": runners["ours"].symprec, "structures": len(structures), "sites": int(sites.sum()),
                           "max_sites": args.max_sites,
                           "seed": args.seed, "median_sites": float(np.median(sites)), "timings": {}}
    for key, secs in seconds.items():
        t = np.array(secs)
        out["timings"][key] = {"median_s": round(float(np.median(t)), 4), "p90_s": round(float(np.percentile(t, 90)), 4),
                               "total_s": round(float(t.sum()), 2), "s_per_site": round(float(t.sum() / sites.sum()), 5)}
    if reference is not None:
        ref = np.array(values["matminer"])
        for key in runners:
            diff = np.abs(np.array(values[key]) - ref).max(axis=1)
            out["timings"][key]["ratio_vs_matminer"] = round(out["timings"]["matminer"]["total_s"] / out["timings"][key]["total_s"], 2)
            out["timings"][key]["max_abs_diff_vs_matminer"] = float(diff.max())
            out["timings"][key]["worst_structure"] = names[int(np.argmax(diff))]
    for key, t in out["timings"].items():
        extra = f"  x{t['ratio_vs_matminer']} vs matminer, max |diff| {t['max_abs_diff_vs_matminer']:.1e}" if "ratio_vs_matminer" in t else ""
        print(f"{key:15s} median {t['median_s']:.3f} s  p90 {t['p90_s']:.3f} s  {t['s_per_site'] * 1000:.1f} ms/site  "
              f"total {t['total_s']:.1f} s{extra}")
    return out


# --------------------------------------------------------------------------- results


def _markdown(result: dict[str, Any]) -> str:
    lines = ["# Descriptor benchmarks (issue 22)", "", f"Written by `bench/descriptors.py`; host: {json.dumps(result.get('host', {}))}", ""]
    comp = result.get("compositions")
    if comp:
        lines += ["## Compositions per second (packing included)", "",
                  f"MP formulas from `_chemical_formula_sum` ({comp['mp_formulas']}), Perov-5 formula strings ({comp['perov5_formulas']}).", "",
                  f"Ours in calls of {CHUNK} (as DescriptorStore); 'one call' = the whole set in one transform.", "",
                  "| preset | set | n | ours /s | ours /s, one call | anchor | anchor /s | ratio | max rel diff |",
                  "|---|---|---:|---:|---:|---|---:|---:|---:|"]
        for name, entry in comp["presets"].items():
            for label in ("mp", "perov5"):
                e = entry[label]
                lines.append(f"| {name} | {label} | {e['n']} | {e['ours_per_s']:,} | {e['ours_one_call_per_s']:,} | {e['anchor']} (n={e['anchor_n']}) | "
                             f"{e['anchor_per_s']:,} | {e['ratio']:,} | {e['max_rel_diff_vs_anchor']:.1e} |")
        lines.append("")
    cnn = result.get("crystalnn")
    if cnn:
        lines += ["## CrystalNN fingerprint (244 columns), seconds per structure", "",
                  f"{cnn['structures']} MP structures (seed {cnn['seed']}, <= {cnn['max_sites']} sites, median {cnn['median_sites']:.0f}, "
                  f"{cnn['sites']} sites in all), timed one structure at a time, interleaved. `ours`: the `crystalnn` preset "
                  f"(symprec {cnn.get('ours_symprec')} Å: equivalent sites copy order parameters); `ours_all_sites`: symprec None.", "",
                  "| code | median s | p90 s | ms/site | total s | vs matminer | max abs diff |", "|---|---:|---:|---:|---:|---:|---:|"]
        for key, t in cnn["timings"].items():
            ratio = f"x{t['ratio_vs_matminer']}" if "ratio_vs_matminer" in t else ""
            diff = f"{t['max_abs_diff_vs_matminer']:.1e}" if "max_abs_diff_vs_matminer" in t else ""
            lines.append(f"| {key} | {t['median_s']:.3f} | {t['p90_s']:.3f} | {t['s_per_site'] * 1000:.1f} | {t['total_s']:.1f} | {ratio} | {diff} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all", choices=["compositions", "crystalnn", "all"])
    parser.add_argument("--anchor", type=int, default=2000, help="compositions the anchor loop featurizes")
    parser.add_argument("--structures", type=int, default=50)
    parser.add_argument("--max-sites", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"skipped: {DATA} is absent (the ../shared/data checkout is needed)")
    path = RESULTS / "descriptors.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["host"] = _host()
    if args.what in ("compositions", "all"):
        result["compositions"] = compositions(args) or result.get("compositions")
    if args.what in ("crystalnn", "all"):
        result["crystalnn"] = crystalnn(args) or result.get("crystalnn")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    (RESULTS / "descriptors.md").write_text(_markdown(result))
    print(f"wrote {path} and descriptors.md")


if __name__ == "__main__":
    main()
