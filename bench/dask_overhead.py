"""What a Dask cluster costs per task (issue 24): LocalCluster (2 workers) vs local worker processes (2) vs inline.

    python bench/dask_overhead.py [--tasks 400] [--cifs 300] [--repeats 3] [--out bench/results/dask_overhead.md]

Three jobs, each through :class:`xtalbase.platform.runner.Runner` exactly as the commands run them, timed from
opening the executor (forking the pool, connecting the client) to the last result:

* **trivial**: ``--tasks`` tasks that return their argument: the cost of one task's round trip alone;
* **ingest**: ``--cifs`` CIFs of ``../shared/data/mp_cgcnn/cifs`` ingested into a new SQLite database per run;
* **xrd**: the patterns of those structures (``compute_missing``, batches of 10 structures: one task per batch),
  into a copy of one ingested database per run;
* **potential**: the published n2p2 Mo potential evaluated on the 23 configurations of the mlearn Mo test set
  (``../shared/data/mlip/mlearn/Mo``), one forward-pass batch (16 configurations) per task.

The cluster is a ``dask.distributed.LocalCluster`` of 2 worker processes of one thread, TCP on loopback (twice: as
Dask starts it, and without the ``MALLOC_TRIM_THRESHOLD_=65536`` its nanny sets for workers, see docs/scale.md), started
once before the timings and warmed by one untimed run of each job (a long-lived cluster's workers have imported
xtalbase already); local processes are a :class:`~xtalbase.platform.executors.WorkerPool` of 2 forked per run, as
each command forks its own. Each figure is the median of ``--repeats`` runs. Ingest and XRD results are checked to be
equal across the modes (structure exact hashes, pattern bytes). Writes a Markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
CIFS = ROOT.parent / "shared" / "data" / "mp_cgcnn" / "cifs"
MO = ROOT.parent / "shared" / "data" / "mlip" / "mlearn" / "Mo"
XRD_BATCH = 10


def echo(value: int) -> int:
    """The trivial task."""
    return value


def opening(where: dict[str, Any]) -> tuple[int, Any]:
    """Open and close the executor, no task: forking the pool, or connecting and checking the workers' version."""
    from xtalbase.platform.runner import Runner

    with Runner(echo, name="bench", **where):
        pass
    return 0, None


def trivial(tasks: int, where: dict[str, Any]) -> tuple[int, Any]:
    from xtalbase.platform.runner import Runner

    with Runner(echo, name="bench", **where) as runner:
        out = [v for _, v in runner.map((i, (i,)) for i in range(tasks))]
    assert out == list(range(tasks))
    return tasks, None


def ingest(files: list[Path], folder: Path, where: dict[str, Any]) -> tuple[int, Any]:
    import xtalbase

    path = folder / f"ingest-{time.monotonic_ns()}.db"
    db = xtalbase.connect(f"sqlite:///{path}")
    db.init()
    started = time.perf_counter()
    report = db.ingest(files, **where)
    seconds = time.perf_counter() - started
    with db.session() as s:
        from sqlalchemy import select

        from xtalbase.schema import Structure

        hashes = sorted(s.scalars(select(Structure.exact_hash)))
    db.close()
    path.unlink()
    assert report.inserted > 0
    # the pipeline's tasks: groups of files (xtalbase.ingest.pipeline packs small files per task)
    return -1, (hashes, seconds)


def xrd(template: Path, folder: Path, where: dict[str, Any]) -> tuple[int, Any]:
    import xtalbase
    from xtalbase.xrd.builder import compute_missing

    path = folder / f"xrd-{time.monotonic_ns()}.db"
    shutil.copy(template, path)
    db = xtalbase.connect(f"sqlite:///{path}")
    started = time.perf_counter()
    summary = compute_missing(db, batch_size=XRD_BATCH, **where)
    seconds = time.perf_counter() - started
    with db.session() as s:
        from sqlalchemy import select

        from xtalbase.schema import XrdPattern

        patterns = sorted((p.structure_id, hashlib.sha256(bytes(p.two_theta) + bytes(p.intensity)).hexdigest())
                          for p in s.scalars(select(XrdPattern)))
    db.close()
    path.unlink()
    return -(-summary["missing"] // XRD_BATCH), (patterns, seconds)


def potential(url: str, where: dict[str, Any]) -> tuple[int, Any]:
    import xtalbase
    from xtalbase.mlip import evaluation
    from xtalbase.mlip.potentials import evaluate_potential

    evaluation.TASK_BATCHES = 1
    db = xtalbase.connect(url)
    started = time.perf_counter()
    result = evaluate_potential(db, "mo", filter='elements HAS "Mo"', **where)
    seconds = time.perf_counter() - started
    db.close()
    return -(-result.n_structures // evaluation.BATCH), (result.summary(), seconds)


def timed(job: Callable[[], tuple[int, Any]], repeats: int) -> tuple[float, int, Any]:
    """Median seconds of ``repeats`` runs (the job's own clock where it reports one), its task count and its output."""
    times, tasks, output = [], 0, None
    for _ in range(repeats):
        started = time.perf_counter()
        tasks, result = job()
        seconds = time.perf_counter() - started
        if isinstance(result, tuple):
            output, seconds = result
        times.append(seconds)
    return statistics.median(times), tasks, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--cifs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dask_overhead.md")
    args = parser.parse_args()
    if not CIFS.is_dir():
        sys.exit(f"{CIFS} is absent (the ../shared/data checkout)")
    import dask
    from dask.distributed import Client, LocalCluster

    import xtalbase

    files = sorted(CIFS.glob("*.cif"))[:args.cifs]
    folder = Path(tempfile.mkdtemp(prefix="xtalbase-dask-bench-"))
    started = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tcp",
                           dashboard_address="127.0.0.1:0")
    startup = time.perf_counter() - started
    # the nanny's MALLOC_TRIM_THRESHOLD_=65536 fixes glibc's mmap threshold: every larger array is mmap'ed afresh
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # the first cluster's nannies left it here, for spawned workers
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        untrimmed = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tcp",
                                 dashboard_address="127.0.0.1:0")
        untrimmed.wait_for_workers(2)  # the nannies read the setting as they start
    modes = {"inline": {"workers": 1}, "local processes (2)": {"workers": 2},
             "LocalCluster (2 workers)": {"scheduler": cluster.scheduler_address},
             "LocalCluster, MALLOC_TRIM_THRESHOLD_ unset": {"scheduler": untrimmed.scheduler_address}}
    template = folder / "template.db"
    db = xtalbase.connect(f"sqlite:///{template}")
    db.init()
    db.ingest(files, workers=2)
    db.close()
    jobs = {"open": opening, "trivial": lambda where: trivial(args.tasks, where), "ingest": lambda where: ingest(files, folder, where),
            "xrd": lambda where: xrd(template, folder, where)}
    if MO.is_dir():
        import torch

        from xtalbase.mlip.potentials import import_n2p2

        torch.set_num_threads(1)  # as `xtalbase potential evaluate` runs inline (--threads 1)
        mo_url = f"sqlite:///{folder / 'mo.db'}"
        mo = xtalbase.connect(mo_url)
        mo.init()
        mo.ingest([MO / "test.json"])
        import_n2p2(mo, MO / "nnp", name="mo")
        mo.close()
        jobs["potential"] = lambda where: potential(mo_url, where)
    rows: list[dict[str, Any]] = []
    with Client(untrimmed.scheduler_address) as client:
        unset = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        assert set(unset.values()) == {None}, unset
    try:
        for name, job in jobs.items():
            for mode in modes:  # warm the workers' imports, as a long-lived cluster has them
                if mode.startswith("LocalCluster"):
                    job(modes[mode])
            outputs = {}
            for mode, where in modes.items():
                seconds, tasks, outputs[mode] = timed(lambda where=where: job(where), args.repeats)
                rows.append({"job": name, "mode": mode, "seconds": seconds, "tasks": tasks})
                print(f"{name:8s} {mode:44s} {seconds:8.3f} s", flush=True)
            if name not in ("open", "trivial"):
                first = next(iter(outputs.values()))
                assert all(o == first for o in outputs.values()), f"{name}: the modes stored different rows"
    finally:
        cluster.close()
        untrimmed.close()
        shutil.rmtree(folder, ignore_errors=True)
    text = report(rows, args, len(files), startup)
    print(text)
    args.out.write_text(text)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, n_files: int, startup: float) -> str:
    pool = {r["job"]: r["seconds"] for r in rows if r["mode"].startswith("local")}
    opened = {r["mode"]: r["seconds"] for r in rows if r["job"] == "open"}
    lines = ["# Dask overhead per task: LocalCluster vs local processes vs inline",
             "",
             f"`python bench/dask_overhead.py --tasks {args.tasks} --cifs {args.cifs} --repeats {args.repeats}` on "
             f"{platform.node()} ({os.cpu_count()} cores, shared with other work; load average at the end "
             f"{os.getloadavg()[0]:.1f}), Python {platform.python_version()}, "
             f"dask.distributed {__import__('distributed').__version__}. Median of {args.repeats} runs, each timed "
             f"from opening the executor to the last result written. LocalCluster start-up (not in the figures): "
             f"{startup:.1f} s. open: the executor opened and closed, no task (the pool forked; the client connected "
             f"and the workers' xtalbase version checked); trivial: {args.tasks} tasks returning their argument; ingest: {n_files} MP CIFs into a "
             f"new SQLite database; xrd: their patterns, {XRD_BATCH} structures per task; potential: the n2p2 Mo "
             f"potential on the 23 mlearn Mo test configurations, 16 per task. Rows, patterns and errors were checked "
             f"equal across the modes.",
             "",
             "ms per task: (seconds - open) / tasks, the cost of a task once the executor is open.",
             "",
             "| job | mode | seconds | tasks | ms per task | vs local processes |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        per = f"{1000 * (r['seconds'] - opened[r['mode']]) / r['tasks']:.2f}" if r["tasks"] > 0 else ""
        lines.append(f"| {r['job']} | {r['mode']} | {r['seconds']:.3f} | {r['tasks'] if r['tasks'] > 0 else ''} | {per} | "
                     f"{r['seconds'] / max(pool[r['job']], 1e-9):.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
