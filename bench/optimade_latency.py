"""OPTIMADE API latency: p50/p95 of a fixed set of ``/v1/structures`` requests over HTTP, against the 100 ms target.

Starts ``xtalbase serve`` on the database in a subprocess on a free loopback port (or uses ``--url`` of a running
server), warms each request once, then sends each one ``--repeat`` times (interleaved, so a slow moment of the
machine spreads over all of them) through one keep-alive HTTP client, and prints one row per request:
structures matched (counted by the library afterwards), how often the answer carried ``meta.data_returned`` (the
server leaves it out when counting takes longer than its budget), p50, p95 and PASS/MISS against the target. Every request asks for
the default page (20 structures, default fields), so the time covers the filter, the count, loading the page
and serialising it.

Run: ``python bench/optimade_latency.py --db postgresql://...  [--repeat 30] [--out bench/results/x.md]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

TARGET_MS = 100.0

#: (label, filter) — None is the unfiltered first page.
REQUESTS: list[tuple[str, str | None]] = [
    ("first page, no filter", None),
    ("elements HAS ALL", 'elements HAS ALL "Ti","O"'),
    ("elements + nsites", 'elements HAS ALL "Sr","Ti" AND nsites <= 10'),
    ("chemical_formula_reduced", 'chemical_formula_reduced = "O3SrTi"'),
    ("space group", "_xtalbase_space_group_number = 221"),
    ("nsites range", "nsites >= 10 AND nsites <= 20"),
    ("XRD peak window", "_xtalbase_xrd_peak_2theta >= 31 AND _xtalbase_xrd_peak_2theta <= 33 "
                        "AND _xtalbase_xrd_peak_intensity > 50"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str) -> tuple[subprocess.Popen, str]:
    """``xtalbase serve`` on ``db`` in a subprocess; returns it and its base URL once it answers."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-c", "from xtalbase.cli import app; app()", "--db", db, "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"xtalbase serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.get(f"{url}/v1/info", timeout=5)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("xtalbase serve did not answer within 120 s")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation between order statistics."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure(url: str, repeat: int) -> Iterator[dict]:
    """One result per request: label, filter, matched count, every time in ms."""
    import httpx

    times: dict[str, list[float]] = {label: [] for label, _ in REQUESTS}
    counted: dict[str, int] = {label: 0 for label, _ in REQUESTS}
    with httpx.Client(base_url=url, timeout=60) as client:
        def once(filter_: str | None) -> tuple[float, dict]:
            t0 = time.perf_counter()
            r = client.get("/v1/structures", params={"filter": filter_} if filter_ else None)
            body = r.json()
            elapsed = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise SystemExit(f"{filter_!r}: HTTP {r.status_code}: {body}")
            return elapsed, body

        for _, filter_ in REQUESTS:  # warm-up: caches, pymatgen import, first plans
            once(filter_)
        for _ in range(repeat):
            for label, filter_ in REQUESTS:
                elapsed, body = once(filter_)
                times[label].append(elapsed)
                counted[label] += "data_returned" in body["meta"]
    for label, filter_ in REQUESTS:
        yield {"label": label, "filter": filter_, "times": times[label], "counted": counted[label]}


def table(results: list[dict], db: str, total: int, repeat: int) -> str:
    from xtalbase.platform.config import redact_url

    lines = [f"database: `{redact_url(db)}` ({total:,} structures); {repeat} repeats per request after one warm-up; "
             f"python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()})", "",
             "| request | filter | matched | data_returned given | p50 ms | p95 ms | target | |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        p50, p95 = statistics.median(r["times"]), percentile(r["times"], 0.95)
        verdict = "PASS" if p95 <= TARGET_MS else "MISS"
        shown = f"`{r['filter']}`" if r["filter"] else "—"
        lines.append(f"| {r['label']} | {shown} | {r['matched']:,} | {r['counted']}/{repeat} | {p50:.1f} | {p95:.1f} | "
                     f"{TARGET_MS:.0f} | {verdict} |")
    every = [t for r in results for t in r["times"]]
    lines.append(f"| **all requests** | | | | {statistics.median(every):.1f} | {percentile(every, 0.95):.1f} | "
                 f"{TARGET_MS:.0f} | {'PASS' if percentile(every, 0.95) <= TARGET_MS else 'MISS'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="database URL (the server is started on it unless --url is given)")
    parser.add_argument("--url", help="base URL of an already running xtalbase serve on the same database")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, help="append the markdown table to this file")
    args = parser.parse_args()

    import xtalbase

    proc, url = (None, args.url.rstrip("/")) if args.url else start_server(args.db)
    try:
        results = list(measure(url, args.repeat))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
    with xtalbase.connect(args.db) as db:  # the true counts, whether or not the API gave them
        total = db.query().count()
        for r in results:
            r["matched"] = db.query(r["filter"]).count()
    text = table(results, args.db, total, args.repeat)
    print(text)
    if args.out:
        with args.out.open("a") as fh:
            fh.write(f"\n### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{text}\n")


if __name__ == "__main__":
    main()
