"""Key-motif data expansion experiments (issue 20): the Al–Fe–Pt seed replica and the NbMoTaW retrospective pool.

    python bench/keymotif.py replica --seeds 3 --n 1,2,4,7,10          # CHGNet oracle (pip install 'xtalbase[oracle]')
    python bench/keymotif.py pool --seeds 3 --n 20
    python bench/keymotif.py cycle --work FOLDER                        # one replica cycle, timed

**Replica.** The study's host, Al13Fe4 (102 atoms), is not in the shared data and its published Wyckoff
positions are not at hand, so the host is the Al–Fe phase the shared Materials Project data hold with the
most atoms, Al6Fe (mp-570001, Cmcm, 14 atoms). CHGNet relaxes it (cell and positions); training set = the
host and the host with one Pt on each symmetry-distinct site, every frame of their CHGNet position
relaxations plus two seeded rattles (σ = 0.05 Å) of each relaxed cell; target = the host doubled along a with
one Pt on the Fe site (relaxed + two rattles); hold-out = other supercells and sites the analysis never sees
(1×2×1 and 1×1×2 with Pt on each Al site, 2×2×1 with Pt on Fe; relaxed + one rattle each). Every label is
CHGNet's (code ``chgnet``), so the errors measure how well the HDNNP learns the CHGNet surface.

**Pool.** The SNAP NbMoTaW DFT data: training = the elemental groups (ground states, elastic, surfaces; AIMD
subsampled) plus the NbMo and TaW solid solutions; pool = the other solid solutions and the AIMD frames not
used; target = the six binary test groups plus a seeded half of the multinary test cells; hold-out = the other
half of the multinary cells (never analysed). Training, pool and target are seeded subsamples
(``--max-train`` 150, ``--max-pool`` 400, ``--max-target`` 80 by default)
so that each of the loop's potentials trains in about a minute on one core.
Labels are the stored DFT; "labelling" is taking the pool structure's stored calculation.

Results: ``bench/results/keymotif_<kind>.md`` and ``.json`` (the loop's table, rows, wall times).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def _chgnet_or_exit() -> None:
    try:
        import chgnet  # noqa: F401
    except ImportError:
        sys.exit("the replica needs the CHGNet oracle: pip install 'xtalbase[oracle]'")


def replica_structures(work: Path) -> dict[str, Path]:
    """Build, relax and label the Al6Fe/Pt training, target and hold-out sets with CHGNet; extxyz per set."""
    import ase.io
    import spglib
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from xtalbase.mlip import oracles

    cif = DATA / "mp_cgcnn" / "cifs" / "mp-570001.cif"
    if not cif.is_file():
        sys.exit(f"{cif} is missing (the shared Materials Project data)")
    oracle = oracles.get_oracle("chgnet")
    calc = oracle.calculator()
    host = AseAtomsAdaptor.get_atoms(Structure.from_file(str(cif)))
    host.calc = calc
    BFGS(FrechetCellFilter(host), logfile=None).run(fmax=0.02, steps=200)
    host = host.copy()
    dataset = spglib.get_symmetry_dataset((host.cell, host.get_scaled_positions(), host.numbers), symprec=1e-3)
    sites = sorted({int(e) for e in dataset.equivalent_atoms})

    def doped(cell, index):
        atoms = cell.copy()
        atoms[index].symbol = "Pt"
        return atoms

    def relaxed_frames(atoms, keep_all):
        frames = oracles.relax(oracle, atoms, fmax=0.05, steps=60, calculator=calc)
        return frames if keep_all else frames[-1:]

    def rattles(atoms, count, seed):
        out = []
        for k in range(count):
            r = atoms.copy()
            r.calc = None
            r.rattle(0.05, seed=seed + k)
            out.append(r)
        return oracles.label(oracle, out)

    train = []
    for k, structure in enumerate([host] + [doped(host, s) for s in sites]):
        frames = relaxed_frames(structure, True)
        train += frames + rattles(frames[-1], 2, 100 + 10 * k)
    fe = [s for s in sites if host[s].symbol == "Fe"][0]
    target_cell = relaxed_frames(doped(host.repeat((2, 1, 1)), fe), False)[0]
    target = [target_cell] + rattles(target_cell, 2, 300)
    holdout = []
    al_sites = [s for s in sites if host[s].symbol == "Al"]
    for k, (rep, site) in enumerate([((1, 2, 1), s) for s in al_sites] + [((1, 1, 2), s) for s in al_sites] +
                                    [((2, 2, 1), fe)]):
        cell = relaxed_frames(doped(host.repeat(rep), site), False)[0]
        holdout += [cell] + rattles(cell, 1, 500 + 10 * k)
    paths = {}
    for name, items in (("train", train), ("target", target), ("holdout", holdout)):
        for atoms in items:
            atoms.info.pop("relax_step", None)
        paths[name] = work / f"{name}.extxyz"
        ase.io.write(paths[name], items, format="extxyz")
    return paths


def nbmotaw_structures(work: Path, seed: int, aimd_every: int, limits: dict[str, int]) -> dict[str, Path]:
    """The SNAP NbMoTaW groups written as extxyz per role (train / pool / target / holdout)."""
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    folder = DATA / "mlip" / "snap_NbMoTaW" / "training"
    if not folder.is_dir():
        sys.exit(f"{folder} is missing (the shared SNAP NbMoTaW data)")
    roles: dict[str, list] = {"train": [], "pool": [], "target": [], "holdout": [], "multinary": []}
    for path in sorted(folder.glob("*.json")):
        group = path.stem
        entries = json.loads(path.read_text())
        prefix = group.split("_")[0]
        binary = sum(ch.isupper() for ch in prefix) == 2  # NbMo, MoW, ...
        if group == "Multinary_Test":
            role = "multinary"
        elif group.endswith("_Test"):
            role = "target" if binary else None
        elif group in ("NbMo_SS", "TaW_SS") or group.split("_")[0] in ("Nb", "Mo", "Ta", "W"):
            role = "train"
        else:
            role = "pool"
        if role is None:
            continue
        for k, e in enumerate(entries):
            if group.endswith("_AIMD") and k % aimd_every:
                role_k = "pool"  # the frames left out of training stay available to the strategies
            else:
                role_k = role
            s = e["structure"]
            lattice = np.array(s["lattice"]["matrix"], dtype=float)
            symbols = [site["species"][0]["element"] for site in s["sites"]]
            frac = np.array([site["abc"] for site in s["sites"]], dtype=float)
            atoms = Atoms(symbols=symbols, scaled_positions=frac, cell=lattice, pbc=True)
            out = e["outputs"]
            atoms.calc = SinglePointCalculator(atoms, energy=float(out["energy"]),
                                               forces=np.array(out["forces"], dtype=float))
            atoms.info.update(code="vasp", group=group)
            roles[role_k].append(atoms)
    rng = np.random.default_rng(seed)
    for name, cap in limits.items():
        if cap and len(roles[name]) > cap:  # a seeded subsample keeps each potential's training to about a minute
            keep = sorted(rng.choice(len(roles[name]), size=cap, replace=False))
            roles[name] = [roles[name][k] for k in keep]
    # the multinary cells: half join the target (the analysis sees them), half are the hold-out (it never does)
    order = rng.permutation(len(roles["multinary"]))
    half = len(order) // 2
    roles["target"] += [roles["multinary"][k] for k in sorted(order[:half])]
    roles["holdout"] = [roles["multinary"][k] for k in sorted(order[half:])]
    del roles["multinary"]
    paths = {}
    for name, items in roles.items():
        paths[name] = work / f"{name}.extxyz"
        ase.io.write(paths[name], items, format="extxyz")
    return paths


def store(db, paths: dict[str, Path]) -> dict[str, int]:
    """Ingest each role's file and make a dataset of it (a one-fold split of exactly its structures)."""
    from xtalbase.mlip.labelling import structures_of_file

    counts = {}
    for name, path in paths.items():
        db.ingest([str(path)])
        ids = structures_of_file(db, path)
        db.splits.create(name, strategy="random", fractions=(1.0,), ids=ids)
        db.datasets.create(name, split=name, fold="train", description=f"{name} set of {path.name}")
        counts[name] = len(ids)
    return counts


def cycle(work: Path, epochs: int, lbfgs_iterations: int) -> dict[str, float]:
    """Time one replica cycle on a finished replica database: analyse, design + select + label (CHGNet), retrain."""
    import torch

    torch.set_num_threads(1)
    from xtalbase.api import Database
    from xtalbase.mlip.expansion import expand, gap_report
    from xtalbase.mlip.potentials import train_potential
    from xtalbase.mlip.training import TrainOptions
    from xtalbase.schema import Model

    db = Database(f"sqlite:///{work / 'keymotif.db'}")
    with db.session() as s:
        parent = s.query(Model).filter(Model.name == "replica-parent-s0").one().id
    name = f"cycle-{int(time.time())}"
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    report = gap_report(db, train="train", target="target", model_id=parent)
    times["analyse"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    expand(db, train="train", target="target", strategy="key-motif", n=4, oracle="chgnet", out=work / name, name=name,
           model_id=parent, report=report, energy="oracle")
    times["design_select_label"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    train_potential(db, dataset=name, options=TrainOptions(epochs=epochs, lbfgs_iterations=lbfgs_iterations),
                    parent_model_id=parent)
    times["retrain"] = time.perf_counter() - t2
    times["total"] = time.perf_counter() - t0
    print("one replica cycle (key-motif, N = 4): " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    return times


def merge(paths: list[Path], stem: str) -> None:
    """Rows of several runs (same data, seeds and options: deterministic parents and nested selections) in one table;
    a (strategy, N, seed) row present in two runs must agree."""
    from xtalbase.mlip.loop import LoopResult, aggregate

    rows: dict[tuple, dict] = {}
    for path in paths:
        for row in json.loads(path.read_text())["rows"]:
            key = (row["strategy"], row["n"], row["seed"])
            if key in rows and abs(rows[key]["energy_rmse_mev"] - row["energy_rmse_mev"]) > 1e-9:
                sys.exit(f"{path}: row {key} differs from an earlier run; the runs are not comparable")
            rows[key] = row
    result = LoopResult(rows=list(rows.values()), table=aggregate(list(rows.values())))
    (RESULTS / f"{stem}.json").write_text(json.dumps({"inputs": [str(p) for p in paths], "table": result.table,
                                                      "rows": result.rows}, indent=1))
    (RESULTS / f"{stem}.md").write_text(f"# key-motif, merged from {', '.join(p.name for p in paths)}\n\n"
                                        + result.markdown() + "\n")
    print(result.markdown())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("replica", "pool", "cycle", "merge"),
                        help="cycle: time one replica cycle on the --work folder of a finished replica run; "
                             "merge: one table from the --inputs result files (runs with the same seeds)")
    parser.add_argument("--inputs", nargs="*", default=[], help="merge: result JSON files")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", default="1,2,4,7,10")
    parser.add_argument("--strategies", default="key-motif,gap,outlier,random")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lbfgs-iterations", type=int, default=10)
    parser.add_argument("--aimd-every", type=int, default=10, help="pool: every k-th AIMD frame trains")
    parser.add_argument("--max-train", type=int, default=150, help="pool: seeded subsample of the training set")
    parser.add_argument("--max-pool", type=int, default=400, help="pool: seeded subsample of the pool")
    parser.add_argument("--max-target", type=int, default=80, help="pool: seeded subsample of the target")
    parser.add_argument("--label", default=None, help="results file stem (default: keymotif_<kind>)")
    parser.add_argument("--work", default=None, help="working folder (default: a new one under /tmp)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from xtalbase.api import Database
    from xtalbase.mlip.loop import run_loop
    from xtalbase.mlip.training import TrainOptions

    if args.kind == "merge":
        merge([Path(p) for p in args.inputs], args.label or "keymotif_merged")
        return
    if args.kind == "cycle":
        if not args.work:
            sys.exit("cycle needs --work, the folder of a finished replica run")
        times = cycle(Path(args.work), args.epochs, args.lbfgs_iterations)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "keymotif_cycle.json").write_text(json.dumps(times, indent=1))
        return
    work = Path(args.work or f"/tmp/xtalbase-keymotif-{args.kind}-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.kind == "replica":
        _chgnet_or_exit()
        paths = replica_structures(work)
    else:
        paths = nbmotaw_structures(work, 0, args.aimd_every, {"train": args.max_train, "pool": args.max_pool,
                                                               "target": args.max_target})
    built = time.perf_counter() - started
    db = Database(f"sqlite:///{work / 'keymotif.db'}")
    db.init()
    counts = store(db, paths)
    print(f"data built in {built:.0f} s: {counts}", flush=True)
    n_values = [int(x) for x in args.n.split(",")]
    result = run_loop(db, train="train", target="target", holdout="holdout", out=work / "loop", prefix=args.kind,
                      strategies=args.strategies.split(","), n_values=n_values, seeds=list(range(args.seeds)),
                      oracle="chgnet" if args.kind == "replica" else "emt", pool="pool" if args.kind == "pool" else None,
                      energy="oracle" if args.kind == "replica" else None,
                      options=TrainOptions(epochs=args.epochs, lbfgs_iterations=args.lbfgs_iterations),
                      on_row=lambda r: print(f"{r['strategy']:9s} N={r['n']:2d} seed {r['seed']}: E {r['energy_rmse_mev']:8.2f} "
                                             f"meV/atom, F {r['force_rmse']:.3f} eV/A, extrapolating {r['extrapolating_atoms']}, "
                                             f"{r['seconds']:.0f} s", flush=True))
    out = {"kind": args.kind, "counts": counts, "args": vars(args), "data_seconds": round(built, 1),
           "loop_seconds": round(result.seconds, 1), "table": result.table, "rows": result.rows,
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": 1}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.label or f"keymotif_{args.kind}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    md = [f"# key-motif {args.kind}", "", f"sets: {counts}; data {built:.0f} s, loop {result.seconds:.0f} s "
          f"({len(result.rows)} potentials)", "", result.markdown(), ""]
    (RESULTS / f"{stem}.md").write_text("\n".join(md))
    print(result.markdown())


if __name__ == "__main__":
    main()
