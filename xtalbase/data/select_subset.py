"""Rebuild the vendored demo subset from ``../shared/data`` (run once by a maintainer; the demo never runs it).

The rule, seeded and documented so the subset can be re-derived exactly:

1. list ``mp_cgcnn/cifs/*.cif``, sort the names, shuffle them with ``numpy.random.default_rng(SEED)``;
2. walk that order, read each CIF with pymatgen and keep it when it has at most ``MAX_SITES`` sites;
   its crystal system is spglib's (through pymatgen ``SpacegroupAnalyzer``, ``symprec=0.1``);
3. take the first ``PER_SYSTEM`` structures of each of the seven crystal systems (a balanced set, so the
   majority-class baseline is 1/7 and every class has enough examples for a meaningful model);
4. copy those CIFs and their ``properties.csv`` rows, plus ``xrd_experimental/Example`` (scans and reference CIFs).

Usage: ``python -m xtalbase.data.select_subset ../shared/data``
"""

from __future__ import annotations

import csv
import shutil
import sys
import warnings
from pathlib import Path

SEED = 7
MAX_SITES = 24
PER_SYSTEM = 50
SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
HERE = Path(__file__).resolve().parent


def select(shared: Path) -> dict[str, list[str]]:
    """Material ids chosen per crystal system by the rule in the module docstring."""
    import numpy as np
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    names = sorted(p.name for p in (shared / "mp_cgcnn" / "cifs").glob("*.cif"))
    order = np.random.default_rng(SEED).permutation(len(names))
    chosen: dict[str, list[str]] = {s: [] for s in SYSTEMS}
    for i in order:
        if all(len(v) >= PER_SYSTEM for v in chosen.values()):
            break
        path = shared / "mp_cgcnn" / "cifs" / names[i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_file(path)
        if len(s) > MAX_SITES:
            continue
        system = SpacegroupAnalyzer(s, symprec=0.1).get_crystal_system()
        if len(chosen[system]) < PER_SYSTEM:
            chosen[system].append(path.stem)
    return chosen


def main(shared: Path) -> None:
    chosen = select(shared)
    ids = sorted(i for v in chosen.values() for i in v)
    mp_out = HERE / "mp_subset"
    shutil.rmtree(mp_out, ignore_errors=True)
    (mp_out / "cifs").mkdir(parents=True)
    for mid in ids:
        shutil.copy(shared / "mp_cgcnn" / "cifs" / f"{mid}.cif", mp_out / "cifs" / f"{mid}.cif")
    wanted = set(ids)
    with open(shared / "mp_cgcnn" / "properties.csv") as fin, open(mp_out / "properties.csv", "w", newline="") as fout:
        reader = csv.reader(fin)
        writer = csv.writer(fout)
        writer.writerow(next(reader))
        writer.writerows(sorted((r for r in reader if r[0] in wanted), key=lambda r: r[0]))
    for name in ("LICENSE", "SOURCE_COMMIT"):
        shutil.copy(shared / "mp_cgcnn" / name, mp_out / name)
    xrd_out = HERE / "xrd_experimental"
    shutil.rmtree(xrd_out, ignore_errors=True)
    shutil.copytree(shared / "xrd_experimental" / "Example", xrd_out)
    for name in ("LICENSE", "SOURCE_COMMIT"):
        shutil.copy(shared / "xrd_experimental" / name, xrd_out / name)
    for system in SYSTEMS:
        print(f"{system:>13}: {len(chosen[system])}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
