"""The fuzz campaign of issue 25: a fixed seeded corpus of broken files, each ingested alone in a limited subprocess.

Corpus (rebuilt identically from ``--seed``): ``--per-format`` mutants for each of the
8 readers, made from small real files (``tests/data/fuzz_seeds`` and a few files of
``../shared/data``) by 1-3 mutations of :mod:`tests.fuzz.mutations`; the hand-made cases
of the issue (gamma = 179.9999 deg, a = 1e-7 A, a 1e308 A lattice, an atom 5e8 A away,
``ions per type = 1000000000``, a ``1/inf`` symmetry operation, species ``i``, a frame
count line one short, an ``Infinity`` property, a 1 GiB gzip bomb, deep JSON); and
folders with the special paths (a symlink loop, a FIFO, a link to ``/dev/zero``, a link
out of the tree to ``/etc/os-release``, an unreadable folder, a 50 MB file), each beside
one valid CIF.

Each input is ingested by a fresh interpreter (``--child``) into a copy of an initialised
SQLite database, twice, and checked with :mod:`tests.fuzz.invariants`; the parent kills it
after ``--limit`` seconds (a hang) and caps its address space at ``--mem-gb`` (so that a
runaway allocation fails instead of taking the machine; such a case shows as a
``MemoryError``). Peak RSS is the child's ``ru_maxrss`` from ``wait4``.

Outcomes: ``ok`` (invariants hold), ``refused`` (a clear ``XtalbaseError``, e.g. a path
that is not a file), ``wrong`` (something non-finite or inconsistent stored, or the
summary does not add up), ``silent`` (nothing read and nothing quarantined: the file
vanished without a word), ``crash`` (an unhandled exception or a non-zero exit),
``hang`` (killed at the limit). Run:
``python bench/fuzz_campaign.py [--per-format 25] [--seed 0] [--limit 60] [--mem-gb 4] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the mutations and invariants are the fuzz tests' own, not a copy

from tests.fuzz.mutations import mutate, random_ops, seed_bytes  # noqa: E402

SHARED = (ROOT / ".." / "shared" / "data").resolve()
SEEDS = ROOT / "tests" / "data" / "fuzz_seeds"
FORMATS = ("cif", "poscar", "extxyz", "outcar", "vasprun", "cdvae_csv", "mlip_json", "pmg_json")


# ---------------------------------------------------------------- corpus


def seed_files(work: Path) -> dict[str, list[Path]]:
    """Real files to mutate, per format: the test seeds plus a few small files of ``../shared/data``."""
    seeds = {
        "cif": [SEEDS / "cod_164.cif", SEEDS / "mp-91.cif"], "poscar": [SEEDS / "POSCAR-221-2"],
        "extxyz": [SEEDS / "sic_2frames.xyz"], "outcar": [SEEDS / "OUTCAR.gz"], "vasprun": [SEEDS / "vasprun.xml.gz"],
        "cdvae_csv": [SEEDS / "perov5_4rows.csv"], "mlip_json": [SEEDS / "mlearn_Mo_test_first2.json"],
        "pmg_json": [SEEDS / "mp-91.pmg.json"],
    }
    if not SHARED.exists():
        return seeds
    rng = random.Random(0)
    cod = sorted((SHARED / "cod_one_per_spacegroup/all_spacegroups/cifs").glob("*.cif"))
    seeds["cif"] += rng.sample([p for p in cod if p.stat().st_size < 4000], 4)
    seeds["cif"] += [SHARED / "mp_cgcnn/cifs" / f"mp-{i}.cif" for i in (1, 1000, 10003)]
    seeds["poscar"] += [SHARED / "spglib_poscars" / p for p in ("hexagonal/POSCAR-194", "triclinic/POSCAR-002",
                                                                 "monoclinic/POSCAR-014")]
    seeds["outcar"] += [SHARED / "vasp/large_cell_real_optlay/OUTCAR"]
    seeds["vasprun"] += [SHARED / "vasp/max_force/vasprun.xml"]
    mlip = json.loads((SHARED / "mlip/mlearn/Si/test.json").read_text())[:2]
    (work / "seeds").mkdir(parents=True, exist_ok=True)
    seeds["mlip_json"].append(_write(work / "seeds/mlearn_Si_test_first2.json", json.dumps(mlip, indent=1)))
    return {k: [p for p in v if p.exists()] for k, v in seeds.items()}


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def mutants(work: Path, per_format: int, seed: int) -> list[tuple[str, Path, str, str]]:
    """``(format, path, how, expectation)`` of the seeded mutants."""
    rng = random.Random(seed)
    out = []
    for fmt, files in seed_files(work).items():
        for i in range(per_format):
            src = rng.choice(files)
            ops = random_ops(rng)
            data, compressed = seed_bytes(src)
            path = _write(work / "mutants" / fmt / str(i) / src.name, mutate(data, ops, compressed=compressed))
            out.append((fmt, path, f"{src.name}: {', '.join(map(str, ops))}", "any"))
    return out


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def issue_cases(work: Path) -> list[tuple[str, Path, str, str]]:
    """The hand-made defects of issue 25, one small file each, with what must happen to it (see :func:`expectation`)."""
    d = work / "issue"
    cif = (SEEDS / "mp-91.cif").read_text()
    cod = (SEEDS / "cod_164.cif").read_text()
    xyz = (SEEDS / "sic_2frames.xyz").read_text()
    poscar = (SEEDS / "POSCAR-221-2").read_text()
    pmg = json.loads((SEEDS / "mp-91.pmg.json").read_text())
    lines = cif.splitlines(True)
    gamma = next(line for line in lines if line.startswith("_cell_angle_gamma"))
    a_len = next(line for line in lines if line.startswith("_cell_length_a"))
    cases = [
        ("cif", _write(d / "gamma_179.9999.cif", cif.replace(gamma, "_cell_angle_gamma   179.9999\n")), "gamma = 179.9999 deg", "rejected"),
        ("cif", _write(d / "cod_gamma_179.9999.cif", _cod_gamma(cod)), "gamma = 179.9999 deg (COD 164)", "rejected"),
        ("cif", _write(d / "a_1e-7.cif", cif.replace(a_len, "_cell_length_a   1e-7\n")), "a = 1e-7 A", "rejected"),
        ("cif", _write(d / "cut_before_cell.cif", cif[:cif.index("_cell_length_a")]), "cut before the cell", "rejected"),
        ("cif", _write(d / "symop_inf.cif", _symop_inf(cod)), "symmetry operation -x+1/inf", "rejected"),
        ("extxyz", _write(d / "atom_5e8.xyz", _extxyz_far_atom(xyz)), "an atom 5e8 A away (frame 1 of 2)", "some_rejected"),
        ("extxyz", _write(d / "species_i.xyz", _extxyz_species_i(xyz)), "species Si -> i (frame 1 of 2)", "some_rejected"),
        ("extxyz", _write(d / "count_short.xyz", _replace(xyz, "24\n", "23\n")), "frame count line 24 -> 23", "some_rejected"),
        ("extxyz", _write(d / "empty.xyz", ""), "empty file", "rejected"),
        ("poscar", _write(d / "POSCAR_lost_decimal", _poscar_lost_decimal(poscar)), "a lost decimal point in the cell", "rejected"),
        ("outcar", _write(d / "OUTCAR", _outcar_huge_ions()), "ions per type = 1000000000", "rejected"),
        ("pmg_json", _write(d / "lattice_1e308.json", json.dumps(_pmg_lattice(pmg, 1e308))), "lattice of 1e308 A", "rejected"),
        ("pmg_json", _write(d / "property_inf.json", json.dumps({**pmg, "formation_energy_per_atom": float("inf")})),
         "MP property Infinity", "stored"),
        ("pmg_json", _write(d / "deep.json", "[" * 2000 + "]" * 2000), "JSON nested 2000 deep", "rejected"),
        ("cif", _gzip_bomb(d / "bomb.cif.gz"), "a .cif.gz that expands to 1 GiB", "rejected"),
    ]
    return cases


def _cod_gamma(cod: str) -> str:
    import re

    return re.sub(r"_cell_angle_gamma\s+\S+", "_cell_angle_gamma 179.9999", cod, count=1)


def _symop_inf(cod: str) -> str:
    import re

    m = re.search(r"'?-x,\s*-y,\s*-z'?", cod) or re.search(r"-x,", cod)
    return cod[:m.start()] + "'-x+1/inf,-y,-z'" + cod[m.end():] if m else cod


def _extxyz_far_atom(xyz: str) -> str:
    lines = xyz.splitlines(True)
    parts = lines[2].split()
    parts[1] = "500000000.0"
    lines[2] = " ".join(parts) + "\n"
    return "".join(lines)


def _extxyz_species_i(xyz: str) -> str:
    lines = xyz.splitlines(True)
    lines[2] = "i" + lines[2][2:] if lines[2].startswith("Si") else lines[2]
    return "".join(lines)


def _poscar_lost_decimal(poscar: str) -> str:
    lines = poscar.splitlines(True)
    numbers = lines[2].split()
    numbers[0] = numbers[0].replace(".", "") + "00000"
    lines[2] = "  " + "  ".join(numbers) + "\n"
    return "".join(lines)


def _outcar_huge_ions() -> str:
    text = gzip.decompress((SEEDS / "OUTCAR.gz").read_bytes()).decode()
    import re

    return re.sub(r"ions per type =\s+\d+", "ions per type =  1000000000", text, count=1)


def _pmg_lattice(doc: dict, length: float) -> dict:
    doc = json.loads(json.dumps(doc))
    doc["structure"]["lattice"]["matrix"][0][0] = length
    return doc


def _gzip_bomb(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = (SEEDS / "mp-91.cif").read_bytes()
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(head)
        block = b"#" * (1 << 20)
        for _ in range(1024):
            fh.write(block)
    return path


def special_paths(work: Path) -> list[tuple[str, Path, str, str]]:
    """Folders holding one valid CIF and one hostile path each."""
    out = []

    def folder(name: str) -> Path:
        f = work / "special" / name
        f.mkdir(parents=True)
        shutil.copy(SEEDS / "mp-91.cif", f / "valid.cif")
        return f

    f = folder("symlink_loop")
    (f / "loop").symlink_to(f)
    (f / "self.cif").symlink_to(f / "self.cif")
    out.append(("folder", f, "a symlink loop (folder) and a self-referencing *.cif link", "folder"))
    f = folder("fifo")
    os.mkfifo(f / "pipe.cif")
    out.append(("folder", f, "a FIFO named pipe.cif", "folder"))
    f = folder("dev_zero")
    (f / "zero.cif").symlink_to("/dev/zero")
    out.append(("folder", f, "zero.cif -> /dev/zero", "folder"))
    f = folder("outside_link")
    (f / "os-release.cif").symlink_to("/etc/os-release")
    out.append(("folder", f, "os-release.cif -> /etc/os-release (outside the tree)", "folder"))
    f = folder("unreadable")
    (f / "locked").mkdir()
    shutil.copy(SEEDS / "cod_164.cif", f / "locked" / "hidden.cif")
    (f / "locked").chmod(0)
    # root reads a mode-000 folder: then its CIF is simply stored
    out.append(("folder", f, "an unreadable sub-folder (mode 000)", "stored" if os.geteuid() == 0 else "folder"))
    f = folder("big_file")
    with open(f / "big.cif", "wb") as fh:
        fh.write((SEEDS / "mp-91.cif").read_bytes())
        line = b"# " + b"x" * 1021 + b"\n"
        for _ in range(50 * 1024):
            fh.write(line)
    out.append(("folder", f, "a 50 MB CIF (valid block + 50 MB of comments)", "stored"))
    return out


# ---------------------------------------------------------------- one input, in a child process


def expectation(expect: str, report, folder: Path, conn) -> list[str]:
    """What the hand-made cases must end as: ``rejected`` (nothing stored, quarantined), ``some_rejected``, ``stored``,
    ``folder`` (its valid CIF stored, the hostile path quarantined or named in the summary, no text from outside the
    folder in the quarantine); ``any`` for the mutants (the invariants only)."""
    import sqlalchemy as sa

    problems = []
    if expect == "rejected" and (report.inserted or report.duplicates or not report.quarantined):
        problems.append(f"must be rejected: {report.inserted} inserted, {report.quarantined} quarantined")
    if expect == "some_rejected" and not report.quarantined:
        problems.append("a broken record must be quarantined: nothing was")
    if expect == "stored" and not report.inserted:
        problems.append(f"must be stored: {report.to_dict()}")
    if expect == "folder":
        if not report.inserted:
            problems.append("the folder's valid CIF must be stored: nothing inserted")
        extra = {k: v for k, v in report.to_dict().items() if k not in SUMMARY_KEYS and v}
        if not (report.quarantined or report.notes or extra):
            problems.append("silent: the hostile path is neither quarantined nor named in the summary")
        root = folder.resolve()
        for (file_path,) in conn.execute(sa.text("SELECT file_path FROM quarantine WHERE raw_text IS NOT NULL")):
            target = Path(file_path).resolve()
            if root not in target.parents and target != root:
                problems.append(f"quarantine stores the text of {target}, outside the given folder")
    return problems


SUMMARY_KEYS = {"read", "inserted", "duplicates", "quarantined", "quarantined_by_reason", "run_id", "seconds"}


def child(path: str, template: str, mem_gb: float, expect: str = "any") -> int:
    """Ingest ``path`` twice into a copy of ``template`` and print one JSON line; exit 0 unless it crashed."""
    import traceback
    import warnings

    cap = int(mem_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)
    import xtalbase
    from tests.fuzz.invariants import ingest_and_check
    from xtalbase.errors import XtalbaseError

    folder = tempfile.mkdtemp(prefix="fuzzchild")
    db_path = Path(folder) / "x.db"
    shutil.copy(template, db_path)
    db = xtalbase.connect(f"sqlite:///{db_path}")
    try:
        report, problems = ingest_and_check(db, Path(path))
        with db.engine.connect() as conn:
            expected = expectation(expect, report, Path(path), conn)
        silent = int((report.read == 0 and not report.quarantined) or any(p.startswith("silent") for p in expected))
        problems += [p for p in expected if not p.startswith("silent")]
        problems += [p for p in expected if p.startswith("silent")]
        result = {"outcome": "wrong" if len(problems) > silent else ("silent" if silent else "ok"), "problems": problems,
                  "summary": report.to_dict()}
        code = 0
    except XtalbaseError as exc:
        result, code = {"outcome": "refused", "error": f"{type(exc).__name__}: {exc}"[:300]}, 0
    except BaseException as exc:  # noqa: B036 - the campaign counts every escape, KeyboardInterrupt aside
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{tb[-1].filename.split('site-packages/')[-1]}:{tb[-1].lineno}" if tb else ""
        result, code = {"outcome": "crash", "error": f"{type(exc).__name__}: {str(exc)[:200]} at {where}"}, 3
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)
    print("FUZZRESULT " + json.dumps(result), flush=True)
    return code


def run_one(path: Path, template: Path, limit: float, mem_gb: float, expect: str) -> dict:
    """Run :func:`child` on ``path`` with a wall-clock limit; its result with ``seconds`` and ``peak_mb``."""
    start = time.perf_counter()
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(path), str(template), "--mem-gb", str(mem_gb),
                             "--expect", expect],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    hung = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > limit:
            os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: its workers go too
            pid, status, usage = os.wait4(proc.pid, 0)
            hung = True
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    out.seek(0)
    text = out.read().decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("FUZZRESULT ")), None)
    if hung:
        result = {"outcome": "hang", "error": f"killed after {limit:g} s"}
    elif line:
        result = json.loads(line[len("FUZZRESULT "):])
    else:
        tail = text.strip().splitlines()[-1:] or [""]
        result = {"outcome": "crash", "error": f"exit {proc.returncode}: {tail[0][:200]}"}
    result.update(seconds=round(seconds, 2), peak_mb=round(usage.ru_maxrss / 1024, 1))
    return result


# ---------------------------------------------------------------- report


OUTCOMES = ("ok", "refused", "wrong", "silent", "crash", "hang")


def table(rows: list[tuple[str, str, dict]]) -> str:
    """Per-group counts of each outcome, peak RSS (max, p95) and the slowest input."""
    import numpy as np

    groups: dict[str, list[dict]] = {}
    for group, _, result in rows:
        groups.setdefault(group, []).append(result)
    groups["all"] = [result for _, _, result in rows]
    head = (f"{'group':<12}{'inputs':>7}" + "".join(f"{o:>9}" for o in OUTCOMES)
            + f"{'>=1GiB':>8}{'peak MB':>9}{'p95 MB':>8}{'max s':>8}")
    lines = [head, "-" * len(head)]
    for group, results in groups.items():
        peaks = np.array([r["peak_mb"] for r in results])
        counts = {o: sum(r["outcome"] == o for r in results) for o in OUTCOMES}
        lines.append(f"{group:<12}{len(results):>7}" + "".join(f"{counts[o]:>9}" for o in OUTCOMES)
                     + f"{int((peaks >= 1024).sum()):>8}{peaks.max():>9.0f}{np.percentile(peaks, 95):>8.0f}{max(r['seconds'] for r in results):>8.1f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-format", type=int, default=25, help="mutants per reader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=60.0, help="wall-clock seconds per input")
    parser.add_argument("--mem-gb", type=float, default=4.0, help="address-space cap per input, GiB")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "TEMPLATE_DB"), help=argparse.SUPPRESS)
    parser.add_argument("--expect", default="any", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.mem_gb, args.expect)

    import xtalbase

    work = Path(tempfile.mkdtemp(prefix="xtalbase-fuzz-"))
    try:
        template = work / "template.db"
        with xtalbase.connect(f"sqlite:///{template}") as db:
            db.init()
        cases = mutants(work, args.per_format, args.seed)
        cases += [(f"issue:{fmt}", p, how, expect) for fmt, p, how, expect in issue_cases(work)]
        cases += [("special", p, how, expect) for _, p, how, expect in special_paths(work)]
        buf = io.StringIO()
        started = time.time()
        rows = []
        for i, (group, path, how, expect) in enumerate(cases, 1):
            result = run_one(path, template, args.limit, args.mem_gb, expect)
            rows.append(("issue" if group.startswith("issue") else group, how, result))
            print(f"[{i}/{len(cases)}] {group:<14} {result['outcome']:<8} {result['seconds']:>6.1f} s "
                  f"{result['peak_mb']:>7.0f} MB  {path.relative_to(work)}  ({how})", file=sys.stderr, flush=True)
            if result["outcome"] not in ("ok", "refused"):
                detail = result.get("error") or "; ".join(result.get("problems", []))
                detail = f"{detail} {json.dumps(result.get('summary'))}" if result.get("summary") else detail
                print(f"{group:<14} {result['outcome']:<7} {path.relative_to(work)} ({how}): {detail[:300]}", file=buf)
        report = [
            f"xtalbase fuzz campaign (bench/fuzz_campaign.py --per-format {args.per_format} --seed {args.seed} "
            f"--limit {args.limit:g} --mem-gb {args.mem_gb:g})",
            f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
            f"xtalbase {xtalbase.__version__}, git {_git_revision()}; {time.time() - started:.0f} s",
            f"inputs: {len(cases)} ({args.per_format} mutants x {len(FORMATS)} readers, {sum(g == 'issue' for g, _, _ in rows)} issue "
            f"cases, {sum(g == 'special' for g, _, _ in rows)} special folders); one fresh interpreter per input, ingested twice (workers=1)",
            "",
            table([(g, h, r) for g, h, r in rows]),
            "",
            "crash = unhandled exception or non-zero exit; hang = killed at the limit; wrong = non-finite or inconsistent "
            "values stored, a summary that does not add up, or a hand-made case not rejected; silent = nothing read and "
            "nothing quarantined, or a hostile path neither quarantined nor named in the summary; peak MB = the "
            "child's ru_maxrss, >=1GiB the inputs that reached 1 GiB (a MemoryError at the --mem-gb cap shows as a crash)",
            "",
            "every input that was not ok or refused:",
            buf.getvalue(),
        ]
        text = "\n".join(report)
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
    finally:
        locked = work / "special" / "unreadable" / "locked"
        if locked.exists():
            locked.chmod(0o755)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
