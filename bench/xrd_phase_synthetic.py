"""Phase identification on simulated lab scans of precursor-like mixtures: the set the search defaults are tuned on.

The shared measured scans are the test; these mixtures are the tuning set. Each mixture takes 2-3 phases from the
shared Materials Project structures (at most 12 sites, distinct formulas, at most 4 elements together); the
candidates are every shared MP structure whose elements lie in the mixture's elements (as a lab would give them).

A "measured" scan is not made from the candidate itself: each phase's lattice is first strained anisotropically
(each cell length × (1 + N(−0.5 %, 0.7 %)), the size of DFT-vs-experiment lattice errors), its reflections get
preferred-orientation-like intensity factors (log-normal, σ = 0.3), its own peak width (0.08-0.4° FWHM), and the
scan gets Cu Kα1/Kα2, a zero shift (±0.15°), a curved background and Poisson noise (about 20,000 counts at the
strongest peak). Weight fractions are drawn from a Dirichlet distribution with every phase at least 15 %, and
intensities follow the Hill-Howard relation the search inverts (scale ∝ w / (ρ V²)).

    python bench/xrd_phase_synthetic.py [--mixtures 30] [--seeds 0 1 2] [--setting name=value ...]

Prints recall (phases returned / phases present), precision, exact-polymorph recall and the weight-fraction error
(mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MP = ROOT.parent / "shared" / "data" / "mp_cgcnn" / "cifs"
CU = ((1.54056, 1.0), (1.54439, 0.5))


def formula_index(limit_sites: int = 12) -> list[tuple[Path, frozenset[str], int]]:
    """(path, elements, sites) of every shared MP CIF, read from the CIF header (fast)."""
    out = []
    for path in sorted(MP.glob("*.cif")):
        elements, sites = None, 0
        with path.open() as fh:
            for line in fh:
                if line.startswith("_chemical_formula_sum"):
                    parts = re.findall(r"([A-Z][a-z]?)(\d*\.?\d*)", line.split(None, 1)[1])
                    elements = frozenset(p[0] for p in parts)
                    sites = int(sum(float(n or 1) for _, n in parts))
                    break
        if elements:
            out.append((path, elements, sites))
    return out


def simulate(structures, fractions, rng, x):
    """A measured-like scan (intensity on grid ``x``) of ``structures`` mixed at weight ``fractions``."""
    from xtalbase.xrd import compute_xrd
    from xtalbase.xrd.scan_profile import render

    total = np.zeros(len(x))
    for structure, w in zip(structures, fractions):
        s = structure.copy()
        lattice = s.lattice
        scale = 1 + rng.normal(-0.005, 0.007, 3)
        from pymatgen.core import Lattice

        s.lattice = Lattice.from_parameters(lattice.a * scale[0], lattice.b * scale[1], lattice.c * scale[2], *lattice.angles)
        pattern = compute_xrd(s, wavelength=1.54184, two_theta=(0, 100), scaled=False)[0]
        inten = pattern.intensity * rng.lognormal(0, 0.3, len(pattern))
        rho_v2 = s.density * s.volume ** 2
        fwhm = rng.uniform(0.08, 0.4)
        total += w / rho_v2 / fwhm * render(pattern.d_spacing, inten, x, CU, fwhm)  # intensities are peak areas
    shift = rng.uniform(-0.15, 0.15)
    total = np.interp(x - shift, x, total)
    total *= 20000 / total.max()
    background = 300 + 200 * np.exp(-((x - 25) / 15) ** 2) + 50 * (x - x[0]) / (x[-1] - x[0])
    return rng.poisson(total + background).astype(float), shift


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixtures", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--setting", nargs="*", default=[], help="SearchSettings overrides, name=value")
    parser.add_argument("--verbose", action="store_true", help="Print every mixture with a missed phase.")
    parser.add_argument("--axis-strain", action="store_true", help="Also fit a strain per cell axis (Miller indices recomputed).")
    args = parser.parse_args()
    if not MP.is_dir():
        print(f"skipped: {MP} is absent (shared data)")
        return 0
    from pymatgen.core import Composition, Structure

    from xtalbase.schema.arrays import pack
    from xtalbase.xrd import compute_xrd
    from xtalbase.xrd.identify import reflections_of, search_range
    from xtalbase.xrd.peak_index import build_index
    from xtalbase.xrd.phase_search import SearchSettings, search_phases
    from xtalbase.xrd.scan_profile import prepare_scan
    from xtalbase.xrd.scans import Scan

    overrides = {}
    for item in args.setting:
        key, value = item.split("=")
        overrides[key] = int(value) if key in ("max_phases", "shortlist", "exact", "beam", "top") else float(value)
    settings = SearchSettings(**overrides)
    index_rows = formula_index()
    simple = [r for r in index_rows if r[2] <= 12 and 2 <= len(r[1]) <= 3]
    cache: dict[Path, Structure] = {}

    def load(path: Path) -> Structure:
        if path not in cache:
            cache[path] = Structure.from_file(path)
        return cache[path]

    x = np.arange(10, 100.0001, 0.02)
    per_seed = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        found = present = returned = exact = 0
        wf_errors, seconds = [], []
        for _ in range(args.mixtures):
            k = int(rng.choice([2, 3]))
            while True:
                picks = [simple[i] for i in rng.choice(len(simple), k, replace=False)]
                elements = frozenset().union(*(p[1] for p in picks))
                formulas = {Composition(load(p[0]).composition).reduced_formula for p in picks}
                if len(elements) <= 4 and len(formulas) == k:
                    break
            candidates = [r for r in index_rows if r[1] <= elements and r[2] <= 60]
            structures = [load(p[0]) for p in picks]
            fractions = 0.15 + (1 - 0.15 * k) * rng.dirichlet(np.ones(k))
            y, _ = simulate(structures, fractions, rng, x)
            rows, raw = [], {}
            for sid, (path, els, _) in enumerate(candidates):
                s = load(path)
                pattern = compute_xrd(s, wavelength=1.54184, two_theta=(0, 90), scaled=False)[0]
                if not len(pattern):
                    continue
                raw[sid] = float(pattern.intensity.max())
                rows.append((sid, pack(pattern.d_spacing), pack(pattern.intensity / raw[sid] * 100), "-".join(sorted(els)),
                             s.composition.reduced_formula, 0, s.density, s.volume))
            index = build_index(1, 1.54184, (0, 90), "synthetic", rows)
            scan = Scan(x, y, 1.54184, "synthetic")
            started = time.perf_counter()
            options = {"wavelength": 1.54184, "two_theta": (0, 90), "merge_tol": 1e-5, "scaled_tol": 1e-3, "debye_waller": None}
            provider = (lambda sid: reflections_of(load(candidates[sid][0]), options)) if args.axis_strain else None  # noqa: B023
            result = search_phases(prepare_scan(scan, search_range(scan, index, settings)), index, np.arange(len(index)), settings,
                                   raw_max=lambda sid: raw[sid], reflections=provider)  # noqa: B023
            seconds.append(time.perf_counter() - started)
            truth = {Composition(s.composition).reduced_formula: w for s, w in zip(structures, fractions)}
            truth_paths = {str(p[0]) for p in picks}
            got = {p.formula: p for p in result.phases}
            present += k
            returned += len(got)
            found += sum(f in got for f in truth)
            exact += sum(str(candidates[p.structure_id][0]) in truth_paths for p in result.phases)
            wf_errors += [abs((got[f].weight_fraction or 0) - w) for f, w in truth.items() if f in got]
            if args.verbose and any(f not in got for f in truth):
                print("  missed:", {f: round(w, 2) for f, w in truth.items()}, "->",
                      [(p.formula, p.spacegroup, round(p.weight_fraction or 0, 2), [a["formula"] for a in p.alternatives]) for p in result.phases],
                      f"({len(candidates)} candidates)")
        per_seed.append((found / present, found / max(returned, 1), exact / present, float(np.mean(wf_errors)), float(np.median(seconds))))
        print(f"seed {seed}: recall {found}/{present} = {found / present:.2f}, precision {found}/{returned} = {found / max(returned, 1):.2f}, "
              f"exact polymorph {exact / present:.2f}, |Δw| {np.mean(wf_errors):.3f}, median {np.median(seconds):.2f} s", flush=True)
    arr = np.array(per_seed)
    names = ("recall", "precision", "exact", "|Δw|", "s/scan")
    print(f"settings {overrides or 'defaults'}: " + ", ".join(f"{n} {m:.3f} ± {s:.3f}" for n, m, s in zip(names, arr.mean(0), arr.std(0))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
