"""One large file, two workers: xtalbase reading it whole (one worker) against in shares (every worker).

Data, built in a temporary folder from ``../shared/data``: one CIF holding the first
``--n`` Materials Project CIFs of ``mp_cgcnn/cifs`` (an ICSD-style export), and one
extended XYZ trajectory of ``--n`` frames: the 8 SiC DFT frames of
``extxyz/sic_dft.xyz`` repeated with every atom moved by up to 0.02 Å (seed 0), each
with its reference energy and forces (``REF_energy``, ``REF_forces``).

For each file, into a new SQLite database, with ``workers=2``: "whole" (the file is
given to one worker, as files under ``pipeline.SPLIT_BYTES`` are) and "shares" (split by
the main process into shares of ``pipeline.RECORDS_PER_TASK`` records: the default for
files of 1 MiB or more), then a re-run of the same file into the same database (every
record is already stored and skipped). Each contender runs in a fresh interpreter with its
modules imported before the clock starts. Prints records/s and shares/whole.
Run: ``python bench/ingest_shares.py [--n 4000]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()


def build_cif(n: int, out: Path) -> Path:
    """The first ``n`` MP CIFs (sorted by name) in one file."""
    files = sorted((SHARED / "mp_cgcnn" / "cifs").glob("*.cif"))[:n]
    out.write_text("\n".join(f.read_text() for f in files))
    return out


def build_trajectory(n: int, out: Path) -> Path:
    """``n`` rattled copies of the shared SiC frames with their reference energy and forces."""
    import ase.io
    import numpy as np

    source = ase.io.read(SHARED / "extxyz" / "sic_dft.xyz", index=":")
    rng = np.random.default_rng(0)
    frames = []
    for k in range(n):
        base = source[k % len(source)]
        atoms = base.copy()
        atoms.calc = None
        atoms.info = {"REF_energy": float(base.get_potential_energy())}
        atoms.arrays = {key: atoms.arrays[key] for key in ("numbers", "positions")}
        atoms.new_array("REF_forces", base.get_forces())
        atoms.positions += rng.uniform(-0.02, 0.02, atoms.positions.shape)
        frames.append(atoms)
    ase.io.write(out, frames, format="extxyz")
    return out


def run(url: str, path: str, split: bool, repeat_into_same: bool) -> tuple[int, float, float]:
    """Records and seconds of the first ingest and of the re-run (0 when not asked for)."""
    import xtalbase
    from xtalbase.ingest import pipeline

    warnings.filterwarnings("ignore")
    if not split:
        pipeline.SPLIT_BYTES = 1 << 62
    db = xtalbase.connect(url)
    db.init()
    start = time.perf_counter()
    report = db.ingest(path, workers=2)
    first = time.perf_counter() - start
    again = 0.0
    if repeat_into_same:
        start = time.perf_counter()
        rerun = db.ingest(path, workers=2)
        again = time.perf_counter() - start
        assert rerun.inserted == 0, rerun
    db.close()
    return report.read, first, again


def timed(*args: object) -> tuple[int, float, float]:
    """:func:`run` in a fresh interpreter (no caches from another contender; imports before the clock)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(run, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="records per file (default 4000)")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"shared data not found at {SHARED}")
    print(f"# bench/ingest_shares.py  python {platform.python_version()}  cpus={os.cpu_count()}  "
          f"load={os.getloadavg()[0]:.1f}  SQLite (WAL), workers=2")
    print(f"{'file':<38}{'records':>8}{'whole /s':>10}{'shares /s':>11}{'ratio':>7}{'re-run whole s':>16}{'re-run shares s':>17}")
    with tempfile.TemporaryDirectory(prefix="xtalbase-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for label, path in [(f"one CIF of {args.n} MP blocks", build_cif(args.n, tmp / "export.cif")),
                            (f"extxyz of {args.n} SiC frames", build_trajectory(args.n, tmp / "md.xyz"))]:
            size = path.stat().st_size / 2**20
            n, whole, whole_again = timed(f"sqlite:///{tmp / (path.stem + '-whole.db')}", str(path), False, True)
            _, shares, shares_again = timed(f"sqlite:///{tmp / (path.stem + '-shares.db')}", str(path), True, True)
            print(f"{label + f' ({size:.1f} MiB)':<38}{n:>8}{n / whole:>10.1f}{n / shares:>11.1f}{whole / shares:>6.2f}x"
                  f"{whole_again:>16.2f}{shares_again:>17.2f}")


if __name__ == "__main__":
    main()
