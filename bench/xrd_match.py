"""Speed of measured-XRD phase search (issue #23 item 4): the peak-index profile search against today's peak-pairing matcher.

Usage::

    python bench/xrd_match.py              # 1k, 10k and 100k stored patterns + the 10k database row (~10 min)
    python bench/xrd_match.py --quick      # 1k and 10k, shorter time budgets (smoke test; prints, writes nothing)
    python bench/xrd_match.py --profile 10000   # cProfile of one search at 10k patterns (filtered, then unfiltered)

**Stored patterns.** Cu Kα patterns (the default recipe: 1.54184 Å, 2θ 0-90°, pymatgen's tolerances) of the 77
reference CIFs of ``xrd_experimental/{Example,PDF_Example}/References`` and of ``--mp`` (8,000) CIFs of
``mp_cgcnn`` (seeded shuffle), computed once with :func:`xtalbase.compute_xrd` and cached in
``/tmp/xtalbase-xrd-match/base-<mp>.npz``. A set of N patterns is the references, then MP patterns, then
replicas of those (cycled) until N: a replica keeps its source's chemistry and intensities, gets a new structure
id and a uniform lattice strain drawn from ±1 % (its d-spacings and cell scaled by 1 + ε), so no two stored
patterns coincide. The set becomes a :class:`~xtalbase.xrd.peak_index.PeakIndex` through
:func:`~xtalbase.xrd.peak_index.build_index` (rows packed as the database stores them) and is written with
``to_bytes``.

**Scans.** The 8 measured Cu Kα scans of ``Example/Spectra`` (element filter Li, Mn, Ti, O, F: the chemistry
of their references) and ``PDF_Example/Spectra/Li2CO3-ZrO2.xy`` (Li, Zr, La, C, O).

**What is timed** (each cell in its own process, so its peak RSS is its own; each process first loads the index
with ``PeakIndex.from_bytes``, timed separately, and warms up on a 20-candidate search that is not timed):

* *ours*: ``index.select(elements)`` (filtered) or every position (unfiltered), ``prepare_scan`` and
  ``search_phases`` with the default ``SearchSettings`` (up to 3 phases), per scan;
* *anchor* (today's matcher): ``find_peaks`` and ``match.score_candidates`` over the same candidates in
  ``match.CHUNK`` blocks, as ``match_scan`` does, but with the candidates' arrays already in memory (no
  database read). When one scan's scoring passes ``--anchor-cap`` seconds the rest is extrapolated linearly from
  the candidates scored so far (taken in a random order) and the cell is marked ``~``;
* scans run in file order until the cell's ``--budget`` (ours) or ``--anchor-budget`` seconds are spent (at least
  one scan), so a slow cell times fewer scans (column ``scans``);
* *db* (10k): a SQLite database in ``/tmp`` holding the same structures and patterns; ``load_index`` builds
  and stores the index once in this process, then a fresh process times a cold ``load_index`` (fingerprint
  query, blob read, ``from_bytes``) and ``identify_scan(db, path, elements=...)`` per scan (reading the file,
  weight fractions included); another process times ``match_scan(db, ...)`` on the same candidate ids.

Peak RSS is the cell's process's own high-water mark (``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` would include
the parent's, which Linux carries over fork + exec). Results: ``bench/results/xrd_match.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
XRD = DATA / "xrd_experimental"
RESULTS = ROOT / "bench" / "results"
WORK = Path(os.environ.get("XTALBASE_BENCH_TMP", "/tmp")) / "xtalbase-xrd-match"
#: element filter of each scan folder: the chemistry of its reference phases
SCAN_ELEMENTS = {"Example": "Li,Mn,Ti,O,F", "PDF_Example": "Li,Zr,La,C,O"}
REPLICA_STRAIN = 0.01
TARGETS = "≤ 1 s and ≤ 1 GB per scan over 100k patterns with an element filter, ≤ 5 s without (2 cores)"


# --------------------------------------------------------------------------- stored patterns


def reference_cifs() -> list[Path]:
    return sorted((XRD / "Example" / "References").glob("*.cif")) + sorted((XRD / "PDF_Example" / "References").glob("*.cif"))


def scan_list() -> list[tuple[Path, str]]:
    """(path, element filter) of every measured scan."""
    return [(p, SCAN_ELEMENTS[folder]) for folder in SCAN_ELEMENTS for p in sorted((XRD / folder / "Spectra").glob("*.xy"))]


def _read_structures(paths: list[Path], want: int) -> tuple[list, list[Path]]:
    from pymatgen.core import Structure

    out, names = [], []
    for path in paths:
        if len(out) >= want:
            break
        try:
            s = Structure.from_file(path)
        except Exception:  # noqa: BLE001 - an unreadable CIF is skipped, the next one is taken
            continue
        out.append(s)
        names.append(path)
        if len(out) % 1000 == 0:
            print(f"  read {len(out)} CIFs", flush=True)
    return out, names


def _structure_fields(s, path: Path) -> dict:
    comp = s.composition
    group = path.stem.rsplit("_", 1)[-1]
    ordered = s.is_ordered
    return {"chemsys": comp.chemical_system, "formula": comp.reduced_formula, "anonymous": comp.anonymized_formula,
            "nelements": len(comp.elements), "spacegroup": int(group) if group.isdigit() else 0, "density": float(s.density),
            "volume": float(s.volume), "cell": s.lattice.matrix, "abc": (*s.lattice.abc, *s.lattice.angles),
            "numbers": [max(site.species.items(), key=lambda kv: kv[1])[0].Z for site in s], "frac": s.frac_coords,
            "occupancies": "" if ordered else json.dumps([{str(k): float(v) for k, v in site.species.items()} for site in s]),
            "name": path.name}


def build_base(n_mp: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Patterns (and the fields the database needs) of the reference CIFs and ``n_mp`` MP CIFs; cached as .npz."""
    from xtalbase.xrd import compute_xrd
    from xtalbase.xrd.recipe import recipe_spec

    cache = WORK / f"base-{n_mp}-{seed}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    WORK.mkdir(parents=True, exist_ok=True)
    mp = sorted((DATA / "mp_cgcnn" / "cifs").glob("*.cif"))
    np.random.default_rng(seed).shuffle(mp)
    t0 = time.perf_counter()
    refs, ref_paths = _read_structures(reference_cifs(), 10**9)
    structures, paths = _read_structures(mp, n_mp)
    structures, paths = refs + structures, ref_paths + paths
    print(f"  read {len(structures)} structures in {time.perf_counter() - t0:.0f} s", flush=True)
    spec = recipe_spec()
    t0 = time.perf_counter()
    patterns = []
    for lo in range(0, len(structures), 500):
        patterns += compute_xrd(structures[lo:lo + 500], wavelength=spec["wavelength"], two_theta=(spec["two_theta_min"], spec["two_theta_max"]),
                                merge_tol=spec["merge_tol"], scaled_tol=spec["scaled_tol"])
    print(f"  computed {len(patterns)} patterns in {time.perf_counter() - t0:.0f} s", flush=True)
    fields = [_structure_fields(s, p) for s, p in zip(structures, paths)]
    keep = [i for i, p in enumerate(patterns) if len(p)]
    base = {
        "d": np.concatenate([patterns[i].d_spacing for i in keep]), "intensity": np.concatenate([patterns[i].intensity for i in keep]),
        "offsets": np.concatenate([[0], np.cumsum([len(patterns[i]) for i in keep])]).astype(np.int64),
        "site_offsets": np.concatenate([[0], np.cumsum([len(fields[i]["numbers"]) for i in keep])]).astype(np.int64),
        "numbers": np.concatenate([fields[i]["numbers"] for i in keep]).astype(np.uint8),
        "frac": np.concatenate([fields[i]["frac"] for i in keep]), "cell": np.array([fields[i]["cell"] for i in keep]),
        "abc": np.array([fields[i]["abc"] for i in keep]), "n_references": np.int64(len(refs)),
    }
    for key in ("chemsys", "formula", "anonymous", "occupancies", "name"):
        base[key] = np.array([fields[i][key] for i in keep], dtype=str)
    for key, dtype in (("nelements", np.int64), ("spacegroup", np.int32), ("density", float), ("volume", float)):
        base[key] = np.array([fields[i][key] for i in keep], dtype=dtype)
    np.savez(cache, **base)
    return base


def replica_plan(n_base: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(source pattern, strain) of each of ``n`` stored patterns: the base set first, then strained replicas."""
    source = np.arange(n) % n_base
    strain = np.zeros(n)
    if n > n_base:
        strain[n_base:] = np.random.default_rng(seed).uniform(-REPLICA_STRAIN, REPLICA_STRAIN, n - n_base)
    return source, strain


def index_rows(base: dict, n: int):
    """``build_index`` rows of the first ``n`` stored patterns (structure id = position + 1)."""
    from xtalbase.schema.arrays import pack

    source, strain = replica_plan(len(base["formula"]), n)
    off = base["offsets"]
    for i, (j, eps) in enumerate(zip(source, strain)):
        d = base["d"][off[j]:off[j + 1]] * (1 + eps)
        yield (i + 1, pack(d), pack(base["intensity"][off[j]:off[j + 1]]), str(base["chemsys"][j]), str(base["formula"][j]),
               int(base["spacegroup"][j]), float(base["density"][j]) / (1 + eps) ** 3, float(base["volume"][j]) * (1 + eps) ** 3)


def make_index(base: dict, n: int) -> tuple[Path, float, int]:
    """Build the index of ``n`` patterns, write it; (path, build seconds, bytes)."""
    from xtalbase.xrd.peak_index import build_index
    from xtalbase.xrd.recipe import recipe_spec

    spec = recipe_spec()
    t0 = time.perf_counter()
    index = build_index(1, spec["wavelength"], (spec["two_theta_min"], spec["two_theta_max"]), f"bench-{n}", index_rows(base, n))
    seconds = time.perf_counter() - t0
    path = WORK / f"index-{n}.npz"
    data = index.to_bytes()
    path.write_bytes(data)
    return path, seconds, len(data)


# --------------------------------------------------------------------------- the database row


def build_database(base: dict, n: int) -> tuple[str, dict]:
    """A fresh SQLite database with ``n`` structures and their computed patterns; the index built and stored once."""
    from sqlalchemy import insert

    from xtalbase.platform.database import Database
    from xtalbase.schema import Structure, XrdPattern
    from xtalbase.schema.arrays import F8, U1, pack
    from xtalbase.xrd.peak_index import load_index
    from xtalbase.xrd.recipe import get_or_create_recipe

    path = WORK / f"db-{n}.sqlite"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    db = Database(url)
    db.init()
    with db.session() as s:
        recipe = get_or_create_recipe(s)
        s.commit()
        recipe_id, lam = recipe.id, recipe.wavelength
    source, strain = replica_plan(len(base["formula"]), n)
    off, soff = base["offsets"], base["site_offsets"]
    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        for lo in range(0, n, 2000):
            structures, patterns = [], []
            for i in range(lo, min(n, lo + 2000)):
                j, scale = source[i], 1 + strain[i]
                a, b, c, al, be, ga = base["abc"][j]
                occ = str(base["occupancies"][j])
                structures.append({
                    "id": i + 1, "exact_hash": f"bench-xrd-match-{i + 1}", "canonical_hash": f"bench-xrd-match-{i + 1}",
                    "formula_reduced": str(base["formula"][j]), "formula_anonymous": str(base["anonymous"][j]),
                    "chemical_system": str(base["chemsys"][j]), "nelements": int(base["nelements"][j]),
                    "nsites": int(soff[j + 1] - soff[j]), "a": a * scale, "b": b * scale, "c": c * scale, "alpha": al, "beta": be, "gamma": ga,
                    "volume": float(base["volume"][j]) * scale**3, "density": float(base["density"][j]) / scale**3,
                    "cell": pack(base["cell"][j] * scale, F8), "numbers": pack(base["numbers"][soff[j]:soff[j + 1]], U1),
                    "frac_coords": pack(base["frac"][soff[j]:soff[j + 1]], F8), "site_occupancies": json.loads(occ) if occ else None,
                    "spacegroup_number": int(base["spacegroup"][j]) or None})
                d = base["d"][off[j]:off[j + 1]] * scale
                tt = np.degrees(2 * np.arcsin(np.clip(lam / (2 * d), -1, 1)))
                patterns.append({"kind": "computed", "structure_id": i + 1, "recipe_id": recipe_id, "npeaks": len(d), "two_theta": pack(tt),
                                 "intensity": pack(base["intensity"][off[j]:off[j + 1]]), "d_spacing": pack(d)})
            conn.execute(insert(Structure.__table__), structures)
            conn.execute(insert(XrdPattern.__table__), patterns)
    info = {"insert_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    load_index(db, recipe_id)
    info["build_store_s"] = time.perf_counter() - t0
    info["db_mb"] = path.stat().st_size / 2**20
    db.engine.dispose()
    return url, info


# --------------------------------------------------------------------------- workers (one per cell, own process)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith(field + ":"))


def _rss_mb() -> float:
    """Peak RSS of this process: VmHWM, the high-water mark of its own memory map. (ru_maxrss is not used: Linux carries
    the parent's high-water mark over fork + exec into it, so a worker started by a big parent would report the parent's.)"""
    try:
        return _status_mb("VmHWM")
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    try:
        return _status_mb("VmRSS")
    except (OSError, StopIteration):
        return float("nan")


class Clock:
    """Wall and CPU (this process, all threads) seconds since creation: the machine is shared, so CPU time is the
    steadier measure of what an idle core would take (the searches are single-threaded numpy)."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        return time.process_time() - self.cpu0


def _load(index_path: str):
    from xtalbase.xrd.peak_index import PeakIndex

    data = Path(index_path).read_bytes()
    t0 = time.perf_counter()
    index = PeakIndex.from_bytes(data)
    return index, time.perf_counter() - t0


def _scans():
    from xtalbase.xrd.peak_index import parse_elements
    from xtalbase.xrd.scans import read_scan, with_wavelength

    return [(p, with_wavelength(read_scan(p)), parse_elements(els)) for p, els in scan_list()]


def worker_ours(index_path: str, filtered: bool, budget: float) -> dict:
    from xtalbase.xrd.identify import search_range
    from xtalbase.xrd.phase_search import SearchSettings, search_phases
    from xtalbase.xrd.scan_profile import prepare_scan

    rss_import = _current_rss_mb()
    index, load_s = _load(index_path)
    scans, settings = _scans(), SearchSettings()
    warm = prepare_scan(scans[0][1], search_range(scans[0][1], index, settings))
    search_phases(warm, index, np.arange(min(20, len(index))), settings)
    rows, started = [], time.perf_counter()
    for path, scan, elements in scans:
        clock = Clock()
        positions = index.select(elements) if filtered else np.arange(len(index))
        prepared = prepare_scan(scan, search_range(scan, index, settings))
        result = search_phases(prepared, index, positions, settings)
        rows.append({"scan": path.name, "s": clock.wall(), "cpu": clock.cpu(), "candidates": int(len(positions)),
                     "phases": [p.formula for p in result.phases]})
        if time.perf_counter() - started > budget:
            break
    return {"load_s": load_s, "rss_import_mb": rss_import, "patterns": len(index), "scans": rows, "peak_rss_mb": _rss_mb()}


def _anchor_one(scan, cands: list, positions: np.ndarray, cap: float, rng) -> tuple[float, float, int]:
    """Wall and CPU seconds of today's matcher on ``scan`` over ``positions`` (extrapolated past ``cap`` wall seconds),
    and the number of candidates actually scored."""
    from xtalbase.xrd.match import CHUNK, score_candidates
    from xtalbase.xrd.scans import find_peaks

    order = rng.permutation(positions)
    clock = Clock()
    peaks = find_peaks(scan)
    two_theta = (max(float(scan.two_theta[0]), 0.0), min(float(scan.two_theta[-1]), 90.0))
    done = 0
    for lo in range(0, len(order), CHUNK):
        score_candidates(peaks, scan.wavelength, [cands[i] for i in order[lo:lo + CHUNK]], two_theta)
        done = min(len(order), lo + CHUNK)
        if clock.wall() > cap:
            break
    scale = len(order) / max(done, 1)
    return clock.wall() * scale, clock.cpu() * scale, done


def worker_anchor(index_path: str, filtered: bool, budget: float, cap: float) -> dict:
    rss_import = _current_rss_mb()
    index, load_s = _load(index_path)
    off = index.offsets
    # what match_scan holds after reading the rows: float64 (d, intensity) per pattern
    cands = [(index.d[off[i]:off[i + 1]].astype(float), index.intensity[off[i]:off[i + 1]].astype(float)) for i in range(len(index))]
    scans, rng = _scans(), np.random.default_rng(0)
    _anchor_one(scans[0][1], cands, np.arange(min(20, len(index))), cap, rng)
    rows, started = [], time.perf_counter()
    for path, scan, elements in scans:
        positions = index.select(elements) if filtered else np.arange(len(index))
        wall, cpu, scored = _anchor_one(scan, cands, positions, cap, rng)
        rows.append({"scan": path.name, "s": wall, "cpu": cpu, "candidates": int(len(positions)), "scored": scored})
        if time.perf_counter() - started > budget:
            break
    return {"load_s": load_s, "rss_import_mb": rss_import, "patterns": len(index), "scans": rows, "peak_rss_mb": _rss_mb()}


def worker_db(url: str, which: str, budget: float) -> dict:
    from xtalbase.platform.database import Database
    from xtalbase.xrd.identify import identify_scan
    from xtalbase.xrd.match import match_scan
    from xtalbase.xrd.peak_index import load_index
    from xtalbase.xrd.recipe import resolve_recipe
    from xtalbase.xrd.scans import find_peaks, read_scan, with_wavelength

    rss_import = _current_rss_mb()
    db = Database(url)
    recipe_id = resolve_recipe(db, None).id
    t0 = time.perf_counter()
    index = load_index(db, recipe_id)
    load_s = time.perf_counter() - t0
    rows, started = [], time.perf_counter()
    for path, elements in scan_list():
        clock = Clock()
        if which == "ours":
            result = identify_scan(db, path, elements=elements)
            extra = {"phases": [p.formula for p in result.identification.phases], "candidates": result.identification.n_candidates}
        else:
            ids = index.structure_ids[index.select(elements.split(","))]
            scan = with_wavelength(read_scan(path))
            top = match_scan(db, find_peaks(scan), scan.wavelength, (max(float(scan.two_theta[0]), 0.0), min(float(scan.two_theta[-1]), 90.0)),
                             recipe_id=recipe_id, structure_ids=ids)
            extra = {"top": [m.formula for m in top[:3]], "candidates": int(len(ids))}
        rows.append({"scan": path.name, "s": clock.wall(), "cpu": clock.cpu(), **extra})
        if time.perf_counter() - started > budget:
            break
    return {"load_s": load_s, "rss_import_mb": rss_import, "patterns": len(index), "scans": rows, "peak_rss_mb": _rss_mb()}


def run_worker(*args: str, timeout: float = 1800) -> dict:
    """This script as a worker in a fresh process; its JSON answer (or an ``error``)."""
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the table


def _mean(result: dict, key: str = "s") -> float:
    rows = result.get("scans") or []
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def _span(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{min(values):,}" if min(values) == max(values) else f"{min(values):,}-{max(values):,}"


def table_row(n: int, filtered: bool, ours: dict, anchor: dict) -> dict:
    o, a = _mean(ours, "cpu"), _mean(anchor, "cpu")
    cands = [r["candidates"] for r in ours.get("scans", [])]
    extrapolated = any(r["scored"] < r["candidates"] for r in anchor.get("scans", []))
    return {"patterns": n, "filter": "elements" if filtered else "none", "candidates": _span(cands),
            "ours_cpu": o, "ours_wall": _mean(ours), "scans_per_s": 1 / o if o > 0 else float("nan"), "ours_scans": len(ours.get("scans", [])),
            "load_s": ours.get("load_s", float("nan")), "anchor_cpu": a, "anchor_wall": _mean(anchor), "anchor_scans": len(anchor.get("scans", [])),
            "anchor_extrapolated": extrapolated, "ratio": a / o if o > 0 else float("nan"),
            "ours_rss": ours.get("peak_rss_mb", float("nan")), "anchor_rss": anchor.get("peak_rss_mb", float("nan")),
            "errors": "; ".join(f"{k}: {r['error']}" for k, r in (("ours", ours), ("anchor", anchor)) if "error" in r)}


HEADER = ("| patterns | filter | candidates | ours CPU s/scan | ours wall s/scan | scans/s (CPU) | scans | from_bytes s | "
          "anchor CPU s/scan | anchor wall s/scan | scans | anchor/ours (CPU) | peak RSS ours MB | peak RSS anchor MB |")


def format_row(r: dict) -> str:
    mark = "~" if r["anchor_extrapolated"] else ""
    return (f"| {r['patterns']:,} | {r['filter']} | {r['candidates']} | {r['ours_cpu']:.2f} | {r['ours_wall']:.2f} | {r['scans_per_s']:.2f} | "
            f"{r['ours_scans']} | {r['load_s']:.3f} | {mark}{r['anchor_cpu']:.2f} | {mark}{r['anchor_wall']:.2f} | {r['anchor_scans']} | "
            f"{r['ratio']:.1f}x | {r['ours_rss']:.0f} | {r['anchor_rss']:.0f} |" + (f" {r['errors']}" if r["errors"] else ""))


def code_digest() -> str:
    """A digest of the xtalbase/xrd sources: the run warns when they change under it (others edit this tree)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "xtalbase" / "xrd").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    import numpy
    import scipy

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "xtalbase/xrd"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.node()}: {model}, nproc {cores}, load average at start {os.getloadavg()[0]:.2f}; python {platform.python_version()}, "
            f"numpy {numpy.__version__}, scipy {scipy.__version__}; git {commit}, xtalbase/xrd "
            f"{'with uncommitted changes' if dirty else 'as committed'} (sources digest {code_digest()})")


def write_markdown(args, host: str, rows: list[dict], db: dict | None, builds: dict, scans_100k: list, wall: float, base_n: int) -> Path:
    lines = [
        "# Measured-XRD phase search: speed (issue #23 item 4)", "",
        f"Target: {TARGETS}.", "",
        f"Command: `{' '.join(['python', 'bench/xrd_match.py', *sys.argv[1:]])}`; wall time {wall / 60:.1f} min.", "",
        f"Machine: {host}.", "",
        f"Stored patterns: {base_n:,} computed (77 reference CIFs + {args.mp:,} mp_cgcnn CIFs, Cu Kα 0-90°), replicated with a "
        f"±{REPLICA_STRAIN:.0%} lattice strain to the larger sizes. Scans: the 9 measured scans of `xrd_experimental` "
        "(8 Example with elements Li, Mn, Ti, O, F; Li2CO3-ZrO2 with Li, Zr, La, C, O).", "",
        "*ours* = `index.select` + `prepare_scan` + `search_phases` (default settings, ≤ 3 phases); *anchor* = today's "
        "`match.score_candidates` over the same candidates (arrays already in memory, `match.CHUNK` blocks); `~` = that anchor "
        f"time is extrapolated linearly from the candidates scored in the first {args.anchor_cap:g} s of a scan. "
        f"`scans` = scans timed within the budget of a cell ({args.budget:g} s ours, {args.anchor_budget:g} s anchor; in file order). "
        "`from_bytes` = `PeakIndex.from_bytes` of the stored index (wall). "
        "CPU = `time.process_time()` of the worker (all its threads): the machine is shared with other jobs, so wall time "
        "varies with their load and CPU time is the steadier estimate of an idle core; scans/s and the ratio use CPU time. "
        "Peak RSS = VmHWM (peak resident set) of the cell's own process.", "",
        HEADER, "|" + "---|" * (HEADER.count("|") - 1), *[format_row(r) for r in rows], "",
        "Index build (`build_index` from packed rows) and size: "
        + "; ".join(f"{n:,}: {b['build_s']:.1f} s, {b['mb']:.0f} MB" for n, b in builds.items()) + ".", "",
    ]
    if db:
        lines += ["## Through the database (10k, SQLite)", "",
                  f"Insert {db['n']:,} structures + patterns {db['insert_s']:.1f} s; first `load_index` (build from rows + store the blob) "
                  f"{db['build_store_s']:.1f} s; database {db['db_mb']:.0f} MB.", "",
                  "| call | cold `load_index` s | CPU s/scan | wall s/scan | scans | peak RSS MB |", "|---|---|---|---|---|---|",
                  f"| `identify_scan` (elements) | {db['ours'].get('load_s', float('nan')):.3f} | {_mean(db['ours'], 'cpu'):.2f} | "
                  f"{_mean(db['ours']):.2f} | {len(db['ours'].get('scans', []))} | {db['ours'].get('peak_rss_mb', float('nan')):.0f} |",
                  f"| `match_scan` (same candidate ids) | - | {_mean(db['anchor'], 'cpu'):.2f} | {_mean(db['anchor']):.2f} | "
                  f"{len(db['anchor'].get('scans', []))} | {db['anchor'].get('peak_rss_mb', float('nan')):.0f} |", ""]
    if scans_100k:
        lines += ["## Per scan (largest size, element filter)", "", "| scan | candidates | CPU s | wall s | phases |", "|---|---|---|---|---|",
                  *[f"| {r['scan']} | {r['candidates']:,} | {r['cpu']:.2f} | {r['s']:.2f} | {' + '.join(r['phases']) or '-'} |"
                    for r in scans_100k], ""]
    path = RESULTS / "xrd_match.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------- main


def profile(base: dict, n: int) -> None:
    """cProfile of one filtered and one unfiltered search at ``n`` patterns (in this process)."""
    import cProfile
    import pstats

    from xtalbase.xrd.identify import search_range
    from xtalbase.xrd.phase_search import SearchSettings, search_phases
    from xtalbase.xrd.scan_profile import prepare_scan

    path, _, _ = make_index(base, n)
    index, _ = _load(str(path))
    (scan_path, scan, elements), settings = _scans()[0], SearchSettings()
    for label, positions in (("elements", index.select(elements)), ("none", np.arange(len(index)))):
        prepared = prepare_scan(scan, search_range(scan, index, settings))
        print(f"\n=== {scan_path.name}, {n:,} patterns, filter {label}: {len(positions):,} candidates")
        prof = cProfile.Profile()
        prof.runcall(search_phases, prepared, index, positions, settings)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only, shorter budgets (smoke test)")
    parser.add_argument("--sizes", default=None, help="comma-separated pattern counts (default 1000,10000,100000)")
    parser.add_argument("--mp", type=int, default=8000, help="mp_cgcnn CIFs whose patterns are computed (the rest are replicas)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per cell before it stops taking scans (default 40; quick 15)")
    parser.add_argument("--anchor-budget", type=float, default=None,
                        help="seconds per anchor cell (its time per scan hardly depends on the scan; default 20; quick 8)")
    parser.add_argument("--anchor-cap", type=float, default=None, help="seconds of anchor scoring per scan before extrapolating (default 10; quick 4)")
    parser.add_argument("--write", action="store_true", help="with --quick: write bench/results/xrd_match.md anyway")
    parser.add_argument("--no-db", action="store_true", help="skip the database row")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="only profile one search at N patterns")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in (args.sizes or ("1000,10000" if args.quick else "1000,10000,100000")).split(",")]
    args.budget = args.budget if args.budget is not None else (15.0 if args.quick else 40.0)
    args.anchor_budget = args.anchor_budget if args.anchor_budget is not None else (8.0 if args.quick else 20.0)
    args.anchor_cap = args.anchor_cap if args.anchor_cap is not None else (4.0 if args.quick else 10.0)
    return args


def dispatch_worker(spec: list[str]) -> None:
    kind, rest = spec[0], spec[1:]
    if kind == "ours":
        out = worker_ours(rest[0], rest[1] == "1", float(rest[2]))
    elif kind == "anchor":
        out = worker_anchor(rest[0], rest[1] == "1", float(rest[2]), float(rest[3]))
    else:
        out = worker_db(rest[0], rest[1], float(rest[2]))
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.worker:
        return dispatch_worker(args.worker)
    if not (DATA / "mp_cgcnn" / "cifs").is_dir() or not XRD.is_dir():
        print(f"skipped: {DATA}/mp_cgcnn/cifs or {XRD} is missing")
        return
    started = time.perf_counter()
    host, digest = machine(), code_digest()
    print(host, flush=True)
    print(f"stored patterns: references + {args.mp} MP CIFs (cached in {WORK})", flush=True)
    base = build_base(args.mp)
    if args.profile:
        return profile(base, args.profile)
    rows, builds, scans_top = [], {}, []
    print(HEADER, flush=True)
    for n in args.sizes:
        path, build_s, size = make_index(base, n)
        builds[n] = {"build_s": build_s, "mb": size / 2**20}
        for filtered in (True, False):
            flag = "1" if filtered else "0"
            ours = run_worker("ours", str(path), flag, str(args.budget))
            anchor = run_worker("anchor", str(path), flag, str(args.anchor_budget), str(args.anchor_cap))
            rows.append(table_row(n, filtered, ours, anchor))
            print(format_row(rows[-1]), flush=True)
            if filtered and n == max(args.sizes):
                scans_top = ours.get("scans", [])
        path.unlink(missing_ok=True)
    db = None
    if not args.no_db:
        n = 10_000
        url, info = build_database(base, n)
        db = {"n": n, **info, "ours": run_worker("db", url, "ours", str(args.budget)), "anchor": run_worker("db", url, "anchor", str(args.anchor_budget))}
        print(f"database {n:,}: insert {info['insert_s']:.1f} s, first load_index (build + store) {info['build_store_s']:.1f} s; "
              f"cold load_index {db['ours'].get('load_s', float('nan')):.3f} s; identify_scan {_mean(db['ours'], 'cpu'):.2f} CPU s/scan; "
              f"match_scan {_mean(db['anchor'], 'cpu'):.2f} CPU s/scan {db['ours'].get('error', '')}{db['anchor'].get('error', '')}", flush=True)
    wall = time.perf_counter() - started
    host += f"; load average at end {os.getloadavg()[0]:.2f}"
    if code_digest() != digest:
        host += "; **xtalbase/xrd changed during the run: rows may mix code versions, rerun**"
        print("warning: xtalbase/xrd changed during the run; rows may mix code versions")
    if args.quick and not args.write:
        print(f"wall {wall / 60:.1f} min; --quick: {RESULTS.name}/xrd_match.md left as it is (--write to replace it)")
        return
    out = write_markdown(args, host, rows, db, builds, scans_top, wall, len(base["formula"]))
    print(f"wall {wall / 60:.1f} min; wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
