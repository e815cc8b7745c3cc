"""Query speed: xtalbase (SQLite) against ase.db (SQLite) on the same 100,000 real-derived structures.

The structures are the Perov-5 test set and the first Materials Project CIFs of
``../shared/data`` (read with xtalbase's own readers), replicated with random
strains (up to 3 %) and same-group element substitutions until there are N
distinct structures (copies ingest recognises as duplicates are not counted). xtalbase rows are built by ingest's own ``prepare_record`` and
stored with its ``write_batch`` (inside a ``db.run``); the ase.db copy is
written from the stored xtalbase rows, so both hold exactly the same cells,
with ``spacegroup``, ``density`` and ``volume`` as ase.db key-value pairs
(ase.db indexes those). Both databases are cached under ``--cache``.

Timed side by side (median of ``--repeat`` runs after one warm-up; each answer
is checked to agree between the two):

* element set  ``elements HAS ALL "Ti","O"``  vs  ``select("Ti,O")``
* space group  ``_xtalbase_space_group_number = 221``  vs  ``select(spacegroup=221)``
* numeric range  ``_xtalbase_density >= 5 AND _xtalbase_density < 5.1``  vs  ``select("density>=5,density<5.1")``
* loading 10,000 structures as ASE ``Atoms``: ``db.query(...).atoms()`` vs ``[row.toatoms() for row in select(...)]``

Run: ``python bench/query.py [--n 100000] [--cache DIR] [--repeat 15]``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# Same-group neighbours used for substitutions (all sites of one element are swapped together).
GROUPS = [["Li", "Na", "K", "Rb", "Cs"], ["Be", "Mg", "Ca", "Sr", "Ba"], ["B", "Al", "Ga", "In"], ["C", "Si", "Ge", "Sn", "Pb"],
          ["N", "P", "As", "Sb", "Bi"], ["O", "S", "Se", "Te"], ["F", "Cl", "Br", "I"], ["Sc", "Y", "La"], ["Ti", "Zr", "Hf"],
          ["V", "Nb", "Ta"], ["Cr", "Mo", "W"], ["Fe", "Ru", "Os"], ["Co", "Rh", "Ir"], ["Ni", "Pd", "Pt"], ["Cu", "Ag", "Au"],
          ["Zn", "Cd", "Hg"]]
MATES = {el: g for g in GROUPS for el in g}

ELEMENT = ('elements HAS ALL "Ti","O"', "Ti,O", {})
SPACEGROUP = ("_xtalbase_space_group_number = 221", None, {"spacegroup": 221})
RANGE = ("_xtalbase_density >= 5 AND _xtalbase_density < 5.1", "density>=5,density<5.1", {})
LOAD = ("nsites <= 20", "natoms<=20", 10_000)


def base_records(mp_files: int) -> list[Any]:
    """Ordered real structures: Perov-5 test rows and the first ``mp_files`` MP CIFs (<= 40 sites)."""
    from xtalbase.ingest.formats import read_structures
    from xtalbase.ingest.records import Record

    out = []
    perov = SHARED / "perov5" / "test.csv"
    cifs = sorted((SHARED / "mp_cgcnn" / "cifs").glob("*.cif"))[:mp_files]
    for path, fmt in [(perov, "cdvae_csv"), *((p, "cif") for p in cifs)]:
        for rec in read_structures(path, fmt):
            if isinstance(rec, Record) and len(rec.species) <= 40 and all(len(s) == 1 for s in rec.species):
                out.append(rec)
    return out


def variants(bases: list[Any], seed: int = 0) -> Iterator[Any]:
    """The bases, then endlessly strained and substituted copies of them."""
    from xtalbase.ingest.records import Record

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    i = 0
    while True:
        base = bases[i % len(bases)]
        cell, species = np.array(base.cell, float), [dict(s) for s in base.species]
        if i >= len(bases):
            strain = np.eye(3) + nrng.uniform(-0.03, 0.03, (3, 3))
            cell = cell @ (strain + strain.T) / 2
            present = sorted({next(iter(s)) for s in species})
            swap = {el: rng.choice(MATES[el]) for el in present if el in MATES and rng.random() < 0.7}
            species = [{swap.get(next(iter(s)), next(iter(s))): 1.0} for s in species]
        yield Record(locator=f"variant={i}", cell=cell, species=species, frac_coords=np.array(base.frac_coords, float))
        i += 1


def _prepare(records: list[Any]) -> list[dict]:
    from xtalbase.ingest.prepare import PrepareOptions, prepare_record

    options = PrepareOptions()
    return [prepare_record(r, options, "bench/query.py") for r in records]


def build_xtalbase(path: Path, n: int, workers: int) -> None:
    """Store ``n`` structures through ingest's row building and batch writer."""
    import xtalbase
    from xtalbase.ingest.writer import FileInfo, write_batch
    from xtalbase.platform.executors import get_executor

    bases = base_records(mp_files=4000)
    db = xtalbase.connect(f"sqlite:///{path}")
    db.init()
    info = FileInfo(path="bench/query.py", file_hash=hashlib.sha256(f"bench-query-{n}".encode()).hexdigest(),
                    format="bench", source="bench")
    started, stored = time.perf_counter(), 0
    records = variants(bases)
    with db.run("bench-query-build", {"n": n, "bases": len(bases)}) as run, get_executor(workers) as pool:
        # Copies that ingest recognises as the same structure are not stored again, so keep going until n are stored.
        while stored < n:
            need = n - stored
            chunks = [list(itertools.islice(records, min(2000, need))) for _ in range(max(1, min(workers, need // 2000)))]
            for items in pool.map(_prepare, chunks):
                with db.engine.begin() as conn:
                    write_batch(conn, run.id, [(info, item) for item in items])
            stored = db.query().count()
            print(f"  xtalbase: {stored}/{n} structures ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    db.close()


def build_asedb(path: Path, xtal_path: Path) -> None:
    """Write every stored xtalbase structure to ase.db, with spacegroup/density/volume key-value pairs."""
    import ase.db

    import xtalbase

    db = xtalbase.connect(f"sqlite:///{xtal_path}")
    con = ase.db.connect(str(path), append=False)
    extra = {}
    with db.engine.connect() as conn:
        from sqlalchemy import select

        from xtalbase.schema import Structure

        for sid, sg, density, volume in conn.execute(select(Structure.id, Structure.spacegroup_number, Structure.density, Structure.volume)):
            extra[sid] = {"xid": sid, "density": density, "volume": volume, **({"spacegroup": sg} if sg else {})}
    atoms = db.query().atoms(calculations=False)
    with con:
        for a in atoms:
            con.write(a, key_value_pairs=extra[a.info["xtalbase_id"]])
    db.close()


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time in seconds over ``repeat`` calls after one warm-up, and the last answer."""
    answer = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="structures in each database")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "xtalbase-bench-query")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not (SHARED / "perov5" / "test.csv").exists():
        sys.exit(f"shared data not found under {SHARED}; this benchmark needs ../shared/data")

    import ase.db

    import xtalbase

    args.cache.mkdir(parents=True, exist_ok=True)
    xtal_path, ase_path = args.cache / f"xtalbase-{args.n}.db", args.cache / f"ase-{args.n}.db"
    for path, build in ((xtal_path, lambda p: build_xtalbase(p, args.n, args.workers)), (ase_path, lambda p: build_asedb(p, xtal_path))):
        if not path.exists():  # built under a temporary name, so an interrupted build is never reused
            partial = path.with_name("partial-" + path.name)
            for leftover in path.parent.glob(partial.name + "*"):
                leftover.unlink()
            t = time.perf_counter()
            build(partial)
            partial.rename(path)
            print(f"built {path.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    db = xtalbase.connect(f"sqlite:///{xtal_path}")
    con = ase.db.connect(str(ase_path))
    n = db.query().count()
    print(f"# bench/query.py: {n} structures in each database; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, median of {args.repeat}")
    print(f"{'case':<44} {'answer':>7} {'xtalbase ms':>12} {'ase.db ms':>10} {'ratio':>7}")

    rows = []
    for label, (flt, ase_sel, ase_kw) in [("element set: " + ELEMENT[0], ELEMENT), ("space group: " + SPACEGROUP[0], SPACEGROUP),
                                           ("numeric range: " + RANGE[0], RANGE)]:
        ours, ids = median_time(lambda: db.query(flt).ids(), args.repeat)
        theirs, aids = median_time(lambda: [r.xid for r in con.select(ase_sel, include_data=False, **ase_kw)], args.repeat)
        assert sorted(ids) == sorted(aids), f"answers differ for {label}: {len(ids)} vs {len(aids)}"
        rows.append((label, len(ids), ours, theirs))
    flt, ase_sel, limit = LOAD
    ours, atoms = median_time(lambda: db.query(flt, limit=limit).atoms(), max(3, args.repeat // 5))
    theirs, aatoms = median_time(lambda: [r.toatoms() for r in con.select(ase_sel, limit=limit)], max(3, args.repeat // 5))
    assert len(atoms) == len(aatoms), (len(atoms), len(aatoms))
    assert all(np.allclose(a.positions, b.positions) and (a.numbers == b.numbers).all() for a, b in zip(atoms[:200], aatoms[:200]))
    rows.append((f"load {len(atoms)} Atoms ({flt})", len(atoms), ours, theirs))
    for label, count, ours, theirs in rows:
        print(f"{label:<44.44} {count:>7} {ours * 1e3:>12.2f} {theirs * 1e3:>10.2f} {theirs / ours:>6.1f}x")
    pmg, _ = median_time(lambda: db.query(flt, limit=limit).structures(), 3)
    frame, _ = median_time(lambda: db.query(flt, limit=limit).frame(), 3)
    print(f"(also: {len(atoms)} pymatgen Structures {pmg * 1e3:.0f} ms, pandas frame of {len(atoms)} rows {frame * 1e3:.0f} ms)")
    slow = [label for label, _, ours, _ in rows[:3] if ours >= 0.020]
    fast_enough = rows[3][3] / rows[3][2] >= 10
    print("targets: indexed filters < 20 ms median: " + ("met" if not slow else f"MISSED ({'; '.join(slow)})")
          + f"; 10,000-structure load >= 10x ase.db: {'met' if fast_enough else 'MISSED'}")


if __name__ == "__main__":
    main()
