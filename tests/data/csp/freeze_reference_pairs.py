"""Freeze ``reference_pairs.json``: (prediction, reference) pairs from Perov-5 rows and the RMS the reference formula gives.

The expected value is computed here with pymatgen alone, exactly as the CDVAE/DiffCSP evaluation code does
(``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3).get_rms_dist(pred, gt)[0]``, ``None`` for no match), so the
test compares xtalbase's matching with the reference formula, not with itself. Run from the repository root:
``python tests/data/csp/freeze_reference_pairs.py``.
"""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pymatgen
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

HERE = Path(__file__).parent
ROWS = HERE.parent / "splits" / "perov5_220.csv"


def main() -> None:
    warnings.simplefilter("ignore")
    csv.field_size_limit(1 << 30)
    with open(ROWS, newline="") as fh:
        rows = list(csv.DictReader(fh))[:40]
    gts = [Structure.from_str(r["cif"], fmt="cif") for r in rows]
    rng = np.random.default_rng(7)
    matcher = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    pairs = []
    for i, gt in enumerate(gts):
        kind = ("noise", "scaled", "other_template", "random", "swapped")[i % 5]
        if kind == "noise":
            pred = Structure(gt.lattice, gt.species, gt.frac_coords + rng.normal(0, 0.03, gt.frac_coords.shape))
        elif kind == "scaled":
            pred = gt.copy()
            pred.scale_lattice(gt.volume * (2.0 if i % 2 else 0.5))
        elif kind == "other_template":
            other = gts[(i + 7) % len(gts)]
            pred = Structure(other.lattice, gt.species, other.frac_coords)
        elif kind == "random":
            pred = Structure(gt.lattice, gt.species, rng.random(gt.frac_coords.shape))
        else:
            species = list(gt.species)
            species[0], species[1] = species[1], species[0]
            pred = Structure(gt.lattice, species, gt.frac_coords)
        found = matcher.get_rms_dist(pred, gt)
        pairs.append({"material_id": rows[i]["material_id"], "kind": kind,
                      "pred": {"lattice": pred.lattice.matrix.tolist(), "numbers": list(pred.atomic_numbers),
                               "frac_coords": pred.frac_coords.tolist()},
                      "ref": {"lattice": gt.lattice.matrix.tolist(), "numbers": list(gt.atomic_numbers),
                              "frac_coords": gt.frac_coords.tolist()},
                      "rms": None if found is None else float(found[0])})
    doc = {"pymatgen": pymatgen.core.__version__, "matcher": {"stol": 0.5, "ltol": 0.3, "angle_tol": 10}, "pairs": pairs}
    (HERE / "reference_pairs.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
