"""Phase identification on the shared measured scans: recall of the phases named in each file name.

Candidates: the XRD-AutoAnalyzer reference CIFs (56 + 21) plus every shared Materials Project structure whose
elements lie in the scans' chemical space (Li, Mn, Ti, O, F, Zr, La, C), patterns computed with the default
recipe (Cu Kα, 2θ 0-90°). Each scan is searched with the elements of its file name (``TiO2+MnO`` → Ti, Mn, O),
the way a lab gives its precursors' elements. Reported per scan: the phases returned, their look-alike
alternatives, and the old peak-pairing score's top 5 (why it was replaced).

    python bench/xrd_phase_id.py [--out bench/results/xrd_phase_id.md]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SPACE = {"Li", "Mn", "Ti", "O", "F", "Zr", "La", "C"}


def elements_of(name: str) -> list[str]:
    return sorted(set(re.findall(r"[A-Z][a-z]?", name)))


def named_phases(name: str) -> list[str]:
    from pymatgen.core import Composition

    return [Composition(part).reduced_formula for part in re.split(r"[+\-]", name)]


def mp_in_space(folder: Path, out: Path) -> int:
    n = 0
    for path in folder.glob("*.cif"):
        with path.open() as fh:
            for line in fh:
                if line.startswith("_chemical_formula_sum"):
                    if set(re.findall(r"[A-Z][a-z]?", line.split(None, 1)[1])) <= SPACE:
                        shutil.copy(path, out / path.name)
                        n += 1
                    break
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Write the tables as markdown here.")
    args = parser.parse_args()
    example = DATA / "xrd_experimental" / "Example"
    if not example.is_dir():
        print(f"skipped: {example} is absent (shared data)")
        return 0
    from pymatgen.core import Composition

    from xtalbase.api import Database
    from xtalbase.xrd.builder import compute_missing
    from xtalbase.xrd.identify import identify_scan
    from xtalbase.xrd.match import match_scan
    from xtalbase.xrd.scans import find_peaks, read_scan, with_wavelength

    tmp = Path(tempfile.mkdtemp(prefix="xtalbase-phase-id-"))
    mp = tmp / "mp"
    mp.mkdir()
    n_mp = mp_in_space(DATA / "mp_cgcnn" / "cifs", mp) if (DATA / "mp_cgcnn" / "cifs").is_dir() else 0
    db = Database(f"sqlite:///{tmp / 'bench.db'}")
    db.init()
    report = db.ingest([example / "References", DATA / "xrd_experimental" / "PDF_Example" / "References", mp])
    compute_missing(db)
    print(f"candidates: {report.inserted} structures ({n_mp} MP files in the Li-Mn-Ti-O-F-Zr-La-C space + 77 references)")
    scans = sorted((example / "Spectra").glob("*.xy")) + sorted((DATA / "xrd_experimental" / "PDF_Example" / "Spectra").glob("*.xy"))
    rows, found_total, found_alt_total, named_total, seconds = [], 0, 0, 0, []
    for path in scans:
        name = path.stem
        expected = named_phases(name)
        result = identify_scan(db, path, elements=elements_of(name))
        seconds.append(result.seconds)
        ident = result.identification
        returned = {Composition(p.formula).reduced_formula for p in ident.phases}
        with_alts = returned | {Composition(a["formula"]).reduced_formula for p in ident.phases for a in p.alternatives}
        found = [f for f in expected if f in returned]
        found_alt = [f for f in expected if f in with_alts]
        found_total += len(found)
        found_alt_total += len(found_alt)
        named_total += len(expected)
        scan = with_wavelength(read_scan(path))
        old = match_scan(db, find_peaks(scan), scan.wavelength, (float(scan.two_theta[0]), float(scan.two_theta[-1])), top=5)
        rows.append({
            "scan": name, "named": ", ".join(expected),
            "returned": " + ".join(f"{p.formula} ({p.spacegroup}){' ~' + format(p.weight_fraction, '.0%') if p.weight_fraction else ''}"
                                   for p in ident.phases),
            "alternatives": "; ".join(f"{p.formula}: " + ", ".join(f"{a['formula']} ({a['spacegroup']})" for a in p.alternatives)
                                      for p in ident.phases if p.alternatives) or "-",
            "found": f"{len(found)}/{len(expected)}", "found_with_alternatives": f"{len(found_alt)}/{len(expected)}",
            "residual": f"{ident.residual:.3f}", "seconds": f"{result.seconds:.2f}",
            "old_top5": ", ".join(m.formula for m in old),
        })
        print(f"{name:22s} found {len(found)}/{len(expected)} ({len(found_alt)} with alternatives): {rows[-1]['returned']}  |  old: "
              f"{rows[-1]['old_top5']}", flush=True)
    summary = (f"recall (returned phases): {found_total}/{named_total} = {found_total / named_total:.0%}; "
               f"with look-alike alternatives: {found_alt_total}/{named_total} = {found_alt_total / named_total:.0%}; "
               f"median search {sorted(seconds)[len(seconds) // 2]:.2f} s/scan")
    print(summary)
    if args.out:
        cols = list(rows[0])
        lines = ["# Phase identification on the shared measured scans", "", f"Run: `python bench/xrd_phase_id.py` on {time.strftime('%Y-%m-%d')}.",
                 "", summary, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
        args.out.write_text("\n".join(lines) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
