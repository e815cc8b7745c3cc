"""xtalbase at scale: N distinct real-derived structures through the real ingest, on PostgreSQL and SQLite.

The structures come from the shared real ones (the Perov-5 test set and Materials Project CIFs of
``../shared/data``, <= 40 sites): each is a base structure with the elements of its sites swapped within their
periodic-table group (all sites of an element together; ``bench/query.py``'s groups), its volume scaled by the
ratio of the summed cubed covalent radii so that no bond is compressed, an isotropic strain of up to +-2 % and, for one in
four, a uniaxial strain of up to +-3 % along c. Every composition (element counts in the cell) is used once: a
strain alone never makes a new structure for ingest (the canonical key holds no lattice parameters and
``StructureMatcher`` scales volumes), a new composition does. The generation is seeded
(``--seed``) and written once as extended XYZ files (10,000 frames each) under ``--data``; both backends ingest
the same files with ``db.ingest`` (validation, symmetry, hashes, the batch writer), then:

* XRD patterns (Cu Kα, ``compute_missing``) for the first ``--xrd`` structures (default: all), which the
  peak-window filter searches; then ``VACUUM ANALYZE`` (PostgreSQL) / ``ANALYZE`` (SQLite), timed;
* database and index sizes (PostgreSQL ``pg_total_relation_size`` / ``pg_indexes_size``; SQLite file size and
  ``dbstat`` when compiled in);
* p50/p95 over ``--repeat`` runs (after one warm-up) of ``db.query(filter).ids()`` for the fixed filters of
  :data:`FILTERS`;
* loading 10,000 structures as ASE ``Atoms`` and as pymatgen ``Structure`` (median of 3);
* creating a random 80/10/10 split of all N structures.

``--explain`` adds the PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)`` plan of the slowest filters; ``--no-copy``
writes through executemany instead of COPY (the before/after of the PostgreSQL write step, timed separately
as ``write s``); ``--write-step N`` times only the writer on N prepared records, COPY against executemany;
``--xrd-write-step N`` times only the XRD writer on N structures' patterns, peaks as tuples against dictionaries;
``--split-step ROUNDS`` times only split creation on an existing PostgreSQL database, members by COPY against
executemany.
Results go to ``bench/results/scale_<n>.{json,md}``.

Run: ``python bench/scale.py --n 10000`` (CI size) ... ``--n 1000000`` (by hand; hours).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
FRAMES_PER_FILE = 10_000
#: The fixed filters; ``{formula}`` is filled with the reduced formula of the first stored structure.
FILTERS = {
    "elements": 'elements HAS ALL "Ti","O"',
    "elements_only": 'elements HAS ONLY "Sr","Ti","O"',
    "formula": 'chemical_formula_reduced="{formula}"',
    "space_group": "_xtalbase_space_group_number = 221",
    "nsites_range": "nsites >= 10 AND nsites <= 12",
    "combined": 'elements HAS "O" AND nsites <= 5 AND _xtalbase_space_group_number = 99',
    "peak_window": "_xtalbase_xrd_peak_2theta >= 28.3 AND _xtalbase_xrd_peak_2theta <= 28.6 AND _xtalbase_xrd_peak_intensity > 50",
}
LOAD_FILTER, LOAD_N = "nsites <= 40", 10_000


def _bench_query() -> Any:
    spec = importlib.util.spec_from_file_location("bench_query", ROOT / "bench" / "query.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# ------------------------------------------------------------------ generation
def variants(bases: list[Any], seed: int) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
    """Endless distinct (cell, symbols, frac_coords): bases in turn, each giving its next unused substitution."""
    from ase.data import atomic_numbers, covalent_radii

    mates = _bench_query().MATES
    rng = np.random.default_rng(seed)
    order = random.Random(seed)
    pending = []
    for base in bases:
        symbols = [next(iter(s)) for s in base.species]
        present = sorted(set(symbols))
        choices = [mates.get(el, [el]) for el in present]
        combos = list(product(*choices))
        order.shuffle(combos)
        pending.append((base, symbols, present, iter(combos)))
    used: set[tuple] = set()
    while pending:
        alive = []
        for base, symbols, present, combos in pending:
            for combo in combos:
                if len(set(combo)) < len(combo):  # two elements made one: another structure type
                    continue
                swap = dict(zip(present, combo))
                new = [swap[s] for s in symbols]
                key = tuple(sorted(Counter(new).items()))
                if key in used:
                    continue
                used.add(key)
                r_old = sum(covalent_radii[atomic_numbers[s]] ** 3 for s in symbols)
                r_new = sum(covalent_radii[atomic_numbers[s]] ** 3 for s in new)
                scale = (r_new / r_old) ** (1 / 3) * (1 + rng.uniform(-0.02, 0.02))
                cell = np.array(base.cell, float) * scale
                if rng.random() < 0.25:
                    cell[2] *= 1 + rng.uniform(-0.03, 0.03)
                yield cell, new, np.array(base.frac_coords, float)
                alive.append((base, symbols, present, combos))
                break
        pending = alive


def write_structures(n: int, seed: int, folder: Path) -> dict[str, Any]:
    """Write ``n`` structures as extended XYZ files under ``folder`` (reused when complete)."""
    done = folder / "COMPLETE"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bases = _bench_query().base_records(mp_files=min(29_389, max(2000, n // 40)))
    random.Random(seed).shuffle(bases)  # Perov-5 and MP cells mixed from the first structure on
    made, fh = 0, None
    for cell, symbols, frac in variants(bases, seed):
        if made % FRAMES_PER_FILE == 0:
            if fh:
                fh.close()
            fh = open(folder / f"scale_{made // FRAMES_PER_FILE:04d}.xyz", "w")
        pos = frac @ cell
        lattice = " ".join(f"{v:.10f}" for v in cell.ravel())
        fh.write(f"{len(symbols)}\nLattice=\"{lattice}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\" "
                 f"bench_id={made}\n")
        fh.writelines(f"{s} {x:.10f} {y:.10f} {z:.10f}\n" for s, (x, y, z) in zip(symbols, pos))
        made += 1
        if made == n:
            break
    if fh:
        fh.close()
    if made < n:
        raise SystemExit(f"only {made} distinct structures can be made from {len(bases)} bases; asked for {n}")
    info = {"n": n, "seed": seed, "bases": len(bases), "seconds": round(time.perf_counter() - t0, 1)}
    done.write_text(json.dumps(info))
    return info


# ------------------------------------------------------------------ databases
def pg_database(url: str, fresh: bool) -> str:
    """Create the database of ``url`` (dropped first when ``fresh``); returns ``url``."""
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first()
        if exists and fresh:
            conn.execute(sa.text(f'DROP DATABASE "{parsed.database}" WITH (FORCE)'))
        if not exists or fresh:
            conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    return url


def sizes(db: Any) -> dict[str, Any]:
    """Database size and per-table total / index sizes (MiB)."""
    from sqlalchemy import text

    mib = 1 << 20
    out: dict[str, Any] = {}
    with db.engine.connect() as conn:
        if db.backend == "postgresql":
            out["database_mib"] = round(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one() / mib, 1)
            rows = conn.execute(text(
                "SELECT c.relname, pg_total_relation_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema() "
                "ORDER BY 2 DESC LIMIT 8")).all()
            out["tables"] = {r[0]: {"total_mib": round(r[1] / mib, 1), "indexes_mib": round(r[2] / mib, 1)} for r in rows}
            out["indexes_mib"] = round(sum(t["indexes_mib"] for t in out["tables"].values()), 1)
        else:
            out["database_mib"] = round(Path(db.engine.url.database).stat().st_size / mib, 1)
            try:
                rows = conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")).all()
            except Exception:  # noqa: BLE001 - dbstat is a compile-time option of SQLite
                rows = []
            index_names = {r[0]: r[1] for r in conn.execute(text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"))}
            out["indexes_mib"] = round(sum(s for name, s in rows if name in index_names or name.startswith("sqlite_autoindex")) / mib, 1)
            out["tables"] = {name: {"total_mib": round(s / mib, 1)} for name, s in rows[:8]}
    return out


# ------------------------------------------------------------------ timings
def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall times of ``repeat`` calls after one warm-up, and the last answer."""
    answer = [fn()]

    def once() -> float:
        t = time.perf_counter()
        answer[0] = fn()
        return time.perf_counter() - t

    return [once() for _ in range(repeat)], answer[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ingest(db: Any, folder: Path, workers: int) -> dict[str, Any]:
    """``db.ingest`` of the generated files, with the time spent in the batch writer measured apart."""
    import xtalbase.ingest.pipeline as pipeline
    from xtalbase.platform.repositories import bulk

    inner, spent = pipeline.write_batch, [0.0, 0]

    def write_batch(conn: Any, run_id: int, entries: list, matcher: Any = None) -> Any:
        t = time.perf_counter()
        result = inner(conn, run_id, entries, matcher)
        spent[0] += time.perf_counter() - t
        spent[1] += len(entries)
        return result

    pipeline.write_batch = write_batch
    try:
        report = db.ingest(folder, workers=workers)
    finally:
        pipeline.write_batch = inner
    return {"read": report.read, "inserted": report.inserted, "duplicates": report.duplicates,
            "quarantined": report.quarantined_by_reason, "seconds": report.seconds,
            "rate": round(report.read / report.seconds, 1), "write_seconds": round(spent[0], 2),
            "write_rate": round(spent[1] / spent[0], 1) if spent[0] else None, "copy": bulk.ENABLED and db.backend == "postgresql"}


def time_filters(db: Any, repeat: int) -> dict[str, dict[str, Any]]:
    """p50/p95 of ``db.query(filter).ids()`` for each of :data:`FILTERS` (``repeat`` runs after a warm-up)."""
    first = db.query(limit=1).frame()
    formula = str(first["formula_reduced"].iloc[0]) if len(first) else "SrTiO3"
    out = {}
    for name, flt in FILTERS.items():
        flt = flt.format(formula=formula)
        times, ids = timed(lambda: db.query(flt).ids(), repeat)
        out[name] = {"filter": flt, "matches": len(ids), "p50_ms": round(1000 * statistics.median(times), 2),
                     "p95_ms": round(1000 * percentile(times, 0.95), 2)}
    return out


def alternate(modes: list[str], rounds: int, once: Callable[[str, int], float]) -> dict[str, list[float]]:
    """``once(mode, turn)`` for each mode ``rounds`` times, the modes taking turns so that all see the same load."""
    out: dict[str, list[float]] = {m: [] for m in modes}
    for turn in range(len(modes) * rounds):
        mode = modes[turn % len(modes)]
        out[mode].append(once(mode, turn))
    return out


def write_step(folder: Path, n: int, rounds: int) -> dict[str, Any]:
    """Records/s of the batch writer alone on PostgreSQL, COPY against executemany: the first ``n`` records of
    ``folder``, prepared once, written in batches of 500 into a new database per round (the two paths alternate,
    so both see the same machine load)."""
    import hashlib

    import xtalbase
    from xtalbase.ingest.formats import read_structures
    from xtalbase.ingest.options import BATCH_SIZE
    from xtalbase.ingest.prepare import PrepareOptions, prepare_record
    from xtalbase.ingest.writer import FileInfo, write_batch
    from xtalbase.platform.repositories import bulk

    path = sorted(folder.glob("*.xyz"))[0]
    options = PrepareOptions()
    items = [prepare_record(r, options, str(path)) for r, _ in zip(read_structures(path, "extxyz"), range(n))]
    info = FileInfo(path=str(path), file_hash=hashlib.sha256(path.read_bytes()).hexdigest(), format="extxyz")

    def once(mode: str, _turn: int) -> float:
        bulk.ENABLED = mode == "copy"
        db = xtalbase.connect(pg_database("postgresql+psycopg://postgres@127.0.0.1:5432/scale_write_step", fresh=True))
        db.init()
        try:
            with db.run("bench-write-step", {"mode": mode}) as run:
                t = time.perf_counter()
                for lo in range(0, len(items), BATCH_SIZE):
                    with db.engine.begin() as conn:
                        write_batch(conn, run.id, [(info, item) for item in items[lo:lo + BATCH_SIZE]])
                return len(items) / (time.perf_counter() - t)
        finally:
            db.close()

    rates = alternate(["copy", "executemany"], rounds, once)
    bulk.ENABLED = True
    return {"records": len(items), "rounds": rounds,
            **{f"{m}_records_per_s": round(statistics.median(v), 1) for m, v in rates.items()},
            "all": {m: [round(x, 1) for x in v] for m, v in rates.items()}}


def _write_patterns_as_dicts(conn: Any, recipe_id: int, ids: list[int], patterns: list) -> None:
    """The XRD writer before the tuple path: one dictionary per peak through ``bulk_insert``."""
    from xtalbase.platform.repositories.bulk import bulk_insert
    from xtalbase.schema import XrdPattern, XrdPeak
    from xtalbase.xrd.builder import pattern_row, peak_rows_of

    rows = [pattern_row(p, kind="computed", structure_id=sid, recipe_id=recipe_id, run_id=None) for sid, p in zip(ids, patterns)]
    inserted = bulk_insert(conn, XrdPattern.__table__, rows, ("structure_id", "recipe_id"), returning=("id", "structure_id"))
    by_structure = dict(zip(ids, patterns))
    bulk_insert(conn, XrdPeak.__table__, [r for pid, sid in inserted for r in peak_rows_of(by_structure[sid], pid, recipe_id, sid)], None)


def xrd_write_step(folder: Path, n: int, rounds: int, backends: list[str]) -> dict[str, Any]:
    """Patterns/s of the XRD writer alone, peaks as tuples (``insert_tuples``) against the dictionary path it
    replaced: the first ``n`` structures of ``folder`` ingested once per backend and their patterns computed once,
    then written in batches of 2,000 into emptied tables, the paths alternating ``rounds`` times each. On SQLite a
    third path is the tuple path with SQLite's default 2 MiB page cache instead of the engine's
    (:data:`~xtalbase.platform.engine.SQLITE_CACHE_KIB`)."""
    from sqlalchemy import text

    import xtalbase
    from xtalbase.xrd.builder import DEFAULT_BATCH, compute_chunk, load_structure_arrays, write_patterns
    from xtalbase.xrd.recipe import get_or_create_recipe, recipe_options

    out: dict[str, Any] = {"structures": n, "rounds": rounds}
    for backend in backends:
        if backend == "postgresql":
            url = pg_database("postgresql+psycopg://postgres@127.0.0.1:5432/scale_xrd_write", fresh=True)
        else:
            path = Path("/tmp/xtalbase-scale/scale_xrd_write.db")
            for old in path.parent.glob(path.name + "*"):
                old.unlink()
            url = f"sqlite:///{path}"
        db = xtalbase.connect(url)
        db.init()
        db.ingest(sorted(folder.glob("*.xyz"))[:math.ceil(n / FRAMES_PER_FILE)], workers=2)
        with db.session() as s:
            recipe = get_or_create_recipe(s)
            s.commit()
            recipe_id, options = recipe.id, recipe_options(recipe)
        ids = db.query(limit=n).ids()
        batches = [compute_chunk(load_structure_arrays(db, ids[lo:lo + DEFAULT_BATCH]), options)[:2]
                   for lo in range(0, len(ids), DEFAULT_BATCH)]
        peaks = sum(len(p.two_theta) for _, (patterns, _) in batches for p in patterns)
        modes = ["tuples", "dicts"] + (["tuples_2mib_cache"] if backend == "sqlite" else [])

        def once(mode: str, _turn: int) -> float:
            db.engine.dispose()  # new connections: the page cache of each mode starts empty
            with db.engine.begin() as conn:
                conn.execute(text("DELETE FROM xrd_peaks"))
                conn.execute(text("DELETE FROM xrd_patterns"))
            t = time.perf_counter()
            for got, (patterns, _) in batches:
                with db.engine.begin() as conn:
                    if mode == "tuples_2mib_cache":
                        conn.exec_driver_sql("PRAGMA cache_size=-2000")
                    if mode == "dicts":
                        _write_patterns_as_dicts(conn, recipe_id, got, patterns)
                    else:
                        write_patterns(conn, None, recipe_id, got, patterns)
            return len(ids) / (time.perf_counter() - t)

        rates = alternate(modes, rounds, once)
        db.close()
        median = {m: statistics.median(v) for m, v in rates.items()}
        out[backend] = {"patterns": len(ids), "peaks": peaks, **{f"{m}_patterns_per_s": round(v, 1) for m, v in median.items()},
                        "ratio": round(median["tuples"] / median["dicts"], 2),
                        "all": {m: [round(x, 1) for x in v] for m, v in rates.items()}}
        if backend == "sqlite":
            out[backend]["cache_ratio"] = round(median["tuples"] / median["tuples_2mib_cache"], 2)
        print(f"{backend}: {out[backend]}", file=sys.stderr)
    return out


def split_step(db: Any, rounds: int, seed: int) -> dict[str, Any]:
    """Seconds to create a random 80/10/10 split of every stored structure, members by COPY against executemany
    (PostgreSQL; alternating, each split under a new name and seed so none is found already made)."""
    from xtalbase.platform.repositories import bulk

    made = []

    def once(mode: str, turn: int) -> float:
        bulk.ENABLED = mode == "copy"
        t = time.perf_counter()
        made.append(db.splits.create(f"split-step-{mode}-{turn}-{int(time.time())}", strategy="random",
                                     fractions=(0.8, 0.1, 0.1), seed=seed + turn))
        return time.perf_counter() - t

    times = alternate(["copy", "executemany"], rounds, once)
    bulk.ENABLED = True
    median = {m: statistics.median(v) for m, v in times.items()}
    return {"members": made[-1].summary()["n_members"], "rounds": rounds,
            **{f"{m}_seconds": round(v, 2) for m, v in median.items()},
            "ratio": round(median["executemany"] / median["copy"], 2),
            "all": {m: [round(x, 2) for x in v] for m, v in times.items()}}


def measure(db: Any, args: argparse.Namespace, n_stored: int) -> dict[str, Any]:
    """Query latencies, object loads and split creation on a populated database."""
    from xtalbase.xrd.builder import compute_missing

    out: dict[str, Any] = {}
    if args.xrd:
        t = time.perf_counter()
        ids = db.query(limit=args.xrd).ids() if n_stored > args.xrd else None
        summary = compute_missing(db, structure_ids=ids, workers=args.workers)
        out["xrd"] = {"structures": summary["computed"], "seconds": round(time.perf_counter() - t, 1)}
    out["analyze_seconds"] = analyze(db)
    out["filters"] = time_filters(db, args.repeat)
    query = db.query(LOAD_FILTER, limit=LOAD_N)
    for kind, load in (("atoms", query.atoms), ("pymatgen", query.structures)):
        times, objs = timed(load, 3)
        out[f"load_{kind}"] = {"objects": len(objs), "seconds": round(statistics.median(times), 2)}
    t = time.perf_counter()
    split = db.splits.create(f"scale-{args.n}-{int(time.time())}", strategy="random", fractions=(0.8, 0.1, 0.1), seed=args.seed)
    out["split"] = {"members": split.summary()["n_members"], "seconds": round(time.perf_counter() - t, 2)}
    return out


def analyze(db: Any) -> float:
    """Refresh the planner's statistics after the bulk load (``VACUUM ANALYZE`` / ``ANALYZE``), as an operator
    would (autovacuum lags behind a load); returns the seconds it took."""
    t = time.perf_counter()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if db.backend == "postgresql" else "ANALYZE")
    return round(time.perf_counter() - t, 1)


def explain(db: Any, filters: dict[str, dict[str, Any]], top: int) -> dict[str, str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the ``top`` slowest filters (PostgreSQL)."""
    slow = sorted(filters, key=lambda k: -filters[k]["p50_ms"])[:top]
    plans = {}
    with db.engine.connect() as conn:
        for name in slow:
            sql = db.query(filters[name]["filter"]).explain()
            rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql).all()
            plans[name] = "\n".join(r[0] for r in rows)
    return plans


# ------------------------------------------------------------------ report
def table(results: dict[str, Any]) -> str:
    """The markdown table of one run (one column per backend)."""
    backends = list(results["backends"])
    col = {b: results["backends"][b] for b in backends}

    def row(label: str, get: Callable[[dict], Any]) -> str:
        cells = []
        for b in backends:
            try:
                cells.append(str(get(col[b])))
            except (KeyError, TypeError):
                cells.append("–")
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [f"| N = {results['n']:,} | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends),
             row("ingest: structures/s (wall)", lambda c: f"{c['ingest']['rate']:,.0f} ({c['ingest']['seconds']:,.0f} s)"),
             row("write step: records/s (s)", lambda c: f"{c['ingest']['write_rate']:,.0f} ({c['ingest']['write_seconds']:,.1f} s)"),
             row("stored (inserted / duplicates / quarantined)",
                 lambda c: f"{c['ingest']['inserted']:,} / {c['ingest']['duplicates']:,} / {sum(c['ingest']['quarantined'].values()):,}"),
             row("database MiB (indexes MiB)", lambda c: f"{c['sizes']['database_mib']:,} ({c['sizes']['indexes_mib']:,})"),
             row("XRD patterns (s)", lambda c: f"{c['xrd']['structures']:,} ({c['xrd']['seconds']:,} s)"),
             row("(VACUUM) ANALYZE after the load (s)", lambda c: c["analyze_seconds"])]
    filters = next(iter(col.values()))["filters"]
    for name in filters:
        lines.append(row(f"`{filters[name]['filter']}` p50 / p95 ms (matches)",
                         lambda c, name=name: f"{c['filters'][name]['p50_ms']} / {c['filters'][name]['p95_ms']} ({c['filters'][name]['matches']:,})"))
    lines += [row(f"load {LOAD_N:,} as ASE Atoms (s)", lambda c: c["load_atoms"]["seconds"]),
              row(f"load {LOAD_N:,} as pymatgen Structure (s)", lambda c: c["load_pymatgen"]["seconds"]),
              row("random 80/10/10 split of all (s)", lambda c: f"{c['split']['seconds']} ({c['split']['members']:,})")]
    return "\n".join(lines)


def one_step(args: argparse.Namespace, data: Path, label: str) -> tuple[str, dict[str, Any]] | None:
    """``(name, result)`` of the one step asked for (``--write-step``, ``--split-step``, ``--xrd-write-step``), or None."""
    import xtalbase

    if args.write_step:
        write_structures(args.n, args.seed, data)  # reused when already written
        return "write_step", write_step(data, args.write_step, 3)
    if args.split_step:
        url = args.pg_url or f"postgresql+psycopg://postgres@127.0.0.1:5432/scale{label}"
        db = xtalbase.connect(url)
        try:
            return "split_step", {"url": url, **split_step(db, args.split_step, args.seed)}
        finally:
            db.close()
    if args.xrd_write_step:
        write_structures(args.n, args.seed, data)
        return "xrd_write_step", xrd_write_step(data, args.xrd_write_step, 2, [b.strip() for b in args.backends.split(",") if b.strip()])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="structures to generate and ingest")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL database URL (created; default .../scale<n>)")
    parser.add_argument("--sqlite", type=Path, default=None, help="SQLite file (default /tmp/xtalbase-scale/scale_<n>.db)")
    parser.add_argument("--data", type=Path, default=None, help="folder of the generated files (reused)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--xrd", type=int, default=None, help="structures given XRD patterns (default all; 0: none)")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the existing databases (upgraded to the current schema), no ingest; the ingest "
                             "numbers of an earlier run are kept from the results JSON")
    parser.add_argument("--filters-only", action="store_true", help="with --reuse: time the filters only (no XRD, analyze, "
                        "loads or split, no schema upgrade): index experiments")
    parser.add_argument("--no-copy", action="store_true", help="PostgreSQL writes through executemany (the before of COPY)")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest filters on PostgreSQL")
    parser.add_argument("--write-step", type=int, default=0, metavar="N",
                        help="only time the PostgreSQL batch writer on N prepared records, COPY against executemany")
    parser.add_argument("--xrd-write-step", type=int, default=0, metavar="N",
                        help="only time the XRD writer on the patterns of N structures, peaks as tuples against dictionaries")
    parser.add_argument("--split-step", type=int, default=0, metavar="ROUNDS",
                        help="with --reuse --backends postgresql: only time split creation, members by COPY against executemany")
    parser.add_argument("--out", type=Path, default=None, help="results stem (default bench/results/scale_<n>)")
    args = parser.parse_args()
    if not (SHARED / "perov5" / "test.csv").exists():
        sys.exit(f"shared data not found under {SHARED}; this benchmark needs ../shared/data")
    args.xrd = args.n if args.xrd is None else args.xrd
    args.reuse = args.reuse or args.filters_only

    import xtalbase
    from xtalbase.platform.repositories import bulk

    bulk.ENABLED = not args.no_copy
    label = f"{args.n // 1000}k" if args.n % 1000 == 0 else str(args.n)
    stem = args.out or RESULTS / f"scale_{label}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(stem.with_suffix(".json").read_text()) if args.reuse and stem.with_suffix(".json").exists() else {}
    data = args.data or Path("/tmp/xtalbase-scale") / f"data-{args.n}-s{args.seed}"
    results: dict[str, Any] = {"n": args.n, "seed": args.seed, "workers": args.workers, "host": platform.node(),
                               "cpus": os.cpu_count(), "python": platform.python_version(), "backends": {}}
    step = one_step(args, data, label)
    if step is not None:
        name, result = step
        print(json.dumps(result))
        stem.with_name(f"{stem.name}_{name}").with_suffix(".json").write_text(json.dumps(result, indent=1))
        return
    if not args.reuse:
        print(f"generating {args.n:,} structures under {data} ...", file=sys.stderr)
        results["generation"] = write_structures(args.n, args.seed, data)
    else:
        results["generation"] = earlier.get("generation")
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "postgresql":
            url = pg_database(args.pg_url or f"postgresql+psycopg://postgres@127.0.0.1:5432/scale{label}", fresh=not args.reuse)
        else:
            path = args.sqlite or Path("/tmp/xtalbase-scale") / f"scale_{label}.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not args.reuse:
                for p in path.parent.glob(path.name + "*"):
                    p.unlink()
            url = f"sqlite:///{path}"
        db = xtalbase.connect(url)
        if not args.filters_only:
            db.init()
        col: dict[str, Any] = {"url": url, "schema": db.revision()}
        if args.reuse:
            col["ingest"] = earlier.get("backends", {}).get(backend, {}).get("ingest", {})
        else:
            print(f"{backend}: ingesting ...", file=sys.stderr)
            col["ingest"] = ingest(db, data, args.workers)
            print(f"{backend}: {col['ingest']}", file=sys.stderr)
        if args.filters_only:
            col["filters"] = time_filters(db, args.repeat)
        else:
            col.update(measure(db, args, db.query().count()))
            col["sizes"] = sizes(db)
        if args.explain and backend == "postgresql":
            col["explain"] = explain(db, col["filters"], top=3)
        results["backends"][backend] = col
        db.close()
        # written after each backend, so that a later failure keeps what was measured
        stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
        print(f"{backend}: done", file=sys.stderr)
    md = table(results)
    for backend, col in results["backends"].items():
        for name, plan in col.get("explain", {}).items():
            md += f"\n\n`{col['filters'][name]['filter']}` on {backend}:\n\n```\n{plan}\n```"
    print(md)
    stem.with_suffix(".md").write_text(md + "\n")


if __name__ == "__main__":
    main()
