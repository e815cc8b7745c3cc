"""Split benchmarks: grouped assignment of 100,000 and 1,000,000 synthetic members, and the Perov-5 round trip.

Run: ``python bench/splits.py [--sizes 100000 1000000] [--skip-db] [--skip-perov]``

1. Pure assignment (``xtalbase.ml.splitters.assign``, group strategy, stable and
   exact modes) against the anchor, scikit-learn's ``GroupShuffleSplit`` (one
   train/test split of the same members and groups), side by side, with the ratio.
   Targets: 100,000 members < 1 s, 1,000,000 < 10 s.
2. ``db.splits.create`` end to end on a SQLite database of 100,000 synthetic
   structures (read columns, assign, write members, seal).
3. Perov-5 (``../shared/data/perov5/test.csv``, 3,785 rows): ingest, 60/20/20 split
   with seed 0, CDVAE CSV export, import, same membership.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_members(n: int, n_groups: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` canonical-hash-like keys and group keys (reduced-formula-like) drawn from ``n_groups``."""
    rng = np.random.default_rng(seed)
    canonical = [hashlib.sha256(i.to_bytes(8, "little")).hexdigest() for i in range(n)]
    groups = [f"A{g}B{g % 7}O{g % 5 + 1}" for g in rng.integers(0, n_groups, size=n)]
    return canonical, groups


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_assign(sizes: list[int]) -> None:
    from sklearn.model_selection import GroupShuffleSplit

    from xtalbase.ml.splitters import assign

    print("## grouped split, pure assignment (best of 3)")
    print(f"{'members':>10} {'groups':>8} {'xtalbase stable':>16} {'xtalbase exact':>15} {'sklearn GSS':>12} {'ratio':>7}  target")
    for n in sizes:
        canonical, groups = synthetic_members(n, max(n // 10, 1))
        stable = best_of(lambda: assign("group", canonical=canonical, groups=groups, seed=0))
        exact = best_of(lambda: assign("group", canonical=canonical, groups=groups, seed=0, mode="exact"))
        gss = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=0)
        X = np.zeros((n, 1))
        group_array = np.asarray(groups, dtype=object)
        anchor = best_of(lambda: next(gss.split(X, groups=group_array)))
        target = 1.0 if n <= 100_000 else 10.0 * n / 1_000_000
        verdict = "ok" if max(stable, exact) < target else "MISSED"
        print(f"{n:>10,} {len(set(groups)):>8,} {stable:>15.3f}s {exact:>14.3f}s {anchor:>11.3f}s {anchor / stable:>6.2f}x"
              f"  < {target:g} s: {verdict}")


def bench_db(n: int) -> None:
    import xtalbase
    from tests.ml.splitsupport import FORMULAS
    from xtalbase.schema import Structure
    from xtalbase.schema.arrays import U1, pack

    print(f"\n## db.splits.create on SQLite, {n:,} synthetic structures")
    with tempfile.TemporaryDirectory() as tmp:
        db = xtalbase.connect(f"sqlite:///{tmp}/bench.db")
        db.init()
        cell, numbers, frac = pack(np.eye(3) * 4.0), pack([11, 17], U1), pack(np.zeros((2, 3)))
        rows = [{"exact_hash": hashlib.sha256(f"e{i}".encode()).hexdigest(),
                 "canonical_hash": hashlib.sha256(f"c{i}".encode()).hexdigest(), "hash_version": 1,
                 "formula_reduced": f"{FORMULAS[i % len(FORMULAS)]}{i % 997}", "formula_anonymous": "AB",
                 "chemical_system": "Cl-Na", "nelements": 2, "nsites": 2, "a": 4.0, "b": 4.0, "c": 4.0, "alpha": 90.0,
                 "beta": 90.0, "gamma": 90.0, "volume": 64.0, "density": 1.0, "cell": cell, "numbers": numbers,
                 "frac_coords": frac, "spacegroup_number": 225, "crystal_system": "cubic"} for i in range(n)]
        with db.engine.begin() as conn:
            conn.execute(Structure.__table__.insert(), rows)
        for strategy, by in (("random", None), ("group", "formula_reduced")):
            t0 = time.perf_counter()
            split = db.splits.create(f"{strategy}", strategy=strategy, by=by)
            dt = time.perf_counter() - t0
            print(f"{strategy:>8} by {str(by):16} {dt:6.2f} s  ({n / dt:,.0f} members/s)  counts {split.counts}")
        t0 = time.perf_counter()
        report = db.splits.get("group").check()
        print(f"leakage check {time.perf_counter() - t0:6.2f} s  (formula leaks: {report['keys']['formula_reduced']['values']})")
        db.close()


def bench_perov() -> None:
    import xtalbase

    source = (ROOT / ".." / "shared" / "data" / "perov5" / "test.csv").resolve()
    if not source.exists():
        print(f"\n## Perov-5 round trip skipped: {source} absent")
        return
    print("\n## Perov-5 round trip (3,785 rows), SQLite")
    with tempfile.TemporaryDirectory() as tmp:
        db = xtalbase.connect(f"sqlite:///{tmp}/perov.db")
        db.init()
        t0 = time.perf_counter()
        report = db.ingest(source, workers=min(2, os.cpu_count() or 1))
        t1 = time.perf_counter()
        split = db.splits.create("perov5-60-20-20", strategy="random", fractions=(0.6, 0.2, 0.2), seed=0)
        t2 = time.perf_counter()
        split.export(Path(tmp) / "cdvae", "cdvae-csv")
        t3 = time.perf_counter()
        imported, result = db.splits.import_cdvae("perov5-imported", Path(tmp) / "cdvae", workers=min(2, os.cpu_count() or 1))
        t4 = time.perf_counter()
        same = imported.members() == split.members()
        print(f"ingest {report.inserted} structures {t1 - t0:6.2f} s | split {t2 - t1:5.2f} s {split.counts} | "
              f"export {t3 - t2:5.2f} s | import {t4 - t3:5.2f} s (matched {result['matched']}/{result['rows']}, "
              f"unmatched {len(result['unmatched'])}) | same membership: {same}")
        print(f"split id {split.id}")
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--db-size", type=int, default=100_000)
    parser.add_argument("--skip-db", action="store_true")
    parser.add_argument("--skip-perov", action="store_true")
    args = parser.parse_args()
    print(f"# bench/splits.py on {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    bench_assign(args.sizes)
    if not args.skip_db:
        bench_db(args.db_size)
    if not args.skip_perov:
        bench_perov()


if __name__ == "__main__":
    main()
