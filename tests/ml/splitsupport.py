"""Helpers for the split, dataset and export tests: hand-made structure rows.

``add_synthetic`` writes hand-made ``structures`` rows (cubic cells with chosen
formulas, space groups, canonical hashes and source properties), for cases real
data cannot plant on purpose (two structures sharing a canonical hash, a chosen
leak) and for fast dataset tests. Real-data tests ingest
``tests/data/splits/perov5_220.csv`` through ``db.ingest``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from xtalbase.schema import Source, SourceProperty, Structure, StructureElement
from xtalbase.schema.arrays import U1, pack

Z = {"H": 1, "Li": 3, "C": 6, "N": 7, "O": 8, "F": 9, "Na": 11, "Mg": 12, "Cl": 17, "K": 19, "Ca": 20, "Ti": 22,
     "Fe": 26, "Sr": 38, "Ba": 56}


def spec(i: int, formula: str = "NaCl", sg: int = 225, canonical: str | None = None, **props: Any) -> dict[str, Any]:
    """One synthetic structure: ``formula`` like ``NaCl`` or ``Fe2O3`` (element symbols and counts)."""
    return {"i": i, "formula": formula, "sg": sg, "canonical": canonical, "props": props}


def _parse(formula: str) -> list[tuple[str, int]]:
    import re

    return [(el, int(n or 1)) for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", formula)]


def add_synthetic(db, specs: Sequence[dict[str, Any]], run_kind: str = "test-ingest") -> list[int]:
    """Insert hand-made structures (one run for the batch); returns their ids in order."""
    ids = []
    with db.run(run_kind, {"n": len(specs)}) as run:
        s = run.session
        for sp in specs:
            parts = _parse(sp["formula"])
            numbers = [Z[el] for el, n in parts for _ in range(n)]
            nsites = len(numbers)
            frac = (np.arange(nsites * 3).reshape(nsites, 3) * 0.137 + sp["i"] * 1e-3) % 1.0
            cell = np.eye(3) * (4.0 + 0.001 * sp["i"])
            exact = hashlib.sha256(f"exact-{sp['i']}-{sp['formula']}".encode()).hexdigest()
            canonical = sp["canonical"] or hashlib.sha256(f"canon-{sp['i']}-{sp['formula']}".encode()).hexdigest()
            letters = "ABCDEFG"
            counts = sorted((n for _, n in parts), reverse=True)
            anonymous = "".join(f"{letters[j]}{c if c > 1 else ''}" for j, c in enumerate(counts))
            row = Structure(
                exact_hash=exact, canonical_hash=canonical, formula_reduced=sp["formula"], formula_anonymous=anonymous,
                chemical_system="-".join(sorted(el for el, _ in parts)), nelements=len(parts), nsites=nsites,
                a=cell[0, 0], b=cell[1, 1], c=cell[2, 2], alpha=90.0, beta=90.0, gamma=90.0,
                volume=float(np.linalg.det(cell)), density=1.0, cell=pack(cell), numbers=pack(numbers, U1),
                frac_coords=pack(frac), spacegroup_number=sp["sg"], spacegroup_symbol=None,
                crystal_system="cubic" if sp["sg"] >= 195 else "tetragonal" if sp["sg"] >= 75 else "orthorhombic",
                symprec=0.01, run_id=run.id,
                elements=[StructureElement(element=el, amount=float(n)) for el, n in parts],
            )
            s.add(row)
            s.flush()
            if sp["props"]:
                src = Source(structure_id=row.id, database="synthetic", external_id=f"syn-{sp['i']}",
                             file_path="synthetic", file_hash="0" * 64, record_locator=f"row={sp['i']}-{run.id}",
                             format="synthetic", raw_hash="0" * 64, run_id=run.id)
                s.add(src)
                s.flush()
                for name, value in sp["props"].items():
                    num = isinstance(value, (int, float))
                    s.add(SourceProperty(source_id=src.id, name=name, value_float=float(value) if num else None,
                                         value_text=None if num else str(value)))
            ids.append(row.id)
    return ids


FORMULAS = ["NaCl", "KCl", "LiF", "MgO", "CaO", "SrO", "BaO", "NaF", "KF", "LiCl", "Fe2O3", "TiO2", "CaTiO3",
            "SrTiO3", "BaTiO3", "MgF2", "CaF2", "Li2O", "Na2O", "K2O"]


def population(n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` synthetic structures over 20 formulas and a few space groups, with a numeric property."""
    return [spec(i, FORMULAS[(i * 7) % len(FORMULAS)], [225, 221, 62, 136, 12][i % 5], band_gap=round((i % 11) * 0.5, 2),
                 tag=f"t{i % 4}") for i in range(start, start + n)]

