"""Real Perov-5 rows as arrays for the CSP tests (``tests/data/splits/perov5_220.csv``)."""

from __future__ import annotations

import csv
import functools
import json
import warnings
from pathlib import Path

import numpy as np

from xtalbase.platform.convert import StructureArrays

DATA = Path(__file__).parents[1] / "data"
PEROV5 = DATA / "splits" / "perov5_220.csv"
REFERENCE_PAIRS = DATA / "csp" / "reference_pairs.json"


@functools.lru_cache(maxsize=1)
def perov5_rows() -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with open(PEROV5, newline="") as fh:
        return list(csv.DictReader(fh))


def perov5_arrays(n: int = 220) -> list[StructureArrays]:
    """The first ``n`` Perov-5 rows as arrays."""
    from pymatgen.core import Structure

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in perov5_rows()[:n]:
            s = Structure.from_str(row["cif"], fmt="cif")
            out.append(StructureArrays(s.lattice.matrix, np.array(s.atomic_numbers, np.int64), s.frac_coords))
    return out


def arrays(doc: dict) -> StructureArrays:
    return StructureArrays(np.array(doc["lattice"], float), np.array(doc["numbers"], np.int64), np.array(doc["frac_coords"], float))


def reference_pairs() -> list[dict]:
    return json.loads(REFERENCE_PAIRS.read_text())["pairs"]
