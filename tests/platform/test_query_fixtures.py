"""A small real database shared by the query, view and SQL tests (one per backend per module).

62 real structures from ``tests/data/query`` (30 Perov-5 rows with their
``heat_ref``/``heat_all``... properties, 24 Materials Project CIFs with
``formation_energy_per_atom``, 8 symmetrised COD CIFs of elements in
high-symmetry space groups) are ingested once; the oracle reads the same files with pymatgen, independently of
xtalbase, so filter answers are checked against Python evaluation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import TEST_DATA

QUERY_DATA = TEST_DATA / "query"
N_STRUCTURES = 62
STRUCTURE_FOLDERS = ("perov5", "mp_cgcnn", "cod")
#: 8 SiC DFT frames (energy, forces, stress) for calculation tests, ingested apart.
CALC_FILE = QUERY_DATA / "calc" / "sic_dft.xyz"


@dataclass
class Truth:
    """What pymatgen says about one stored record, keyed by structure id."""

    id: int
    database: str
    structure: object  # pymatgen Structure
    properties: dict

    @property
    def elements(self) -> set[str]:
        return {str(e) for e in self.structure.composition.elements}


def _pymatgen_records() -> dict[tuple[str, str], tuple[object, dict]]:
    """(database, key) -> (pymatgen Structure, properties); key = external id or file name."""
    from pymatgen.core import Structure

    out = {}
    with open(QUERY_DATA / "perov5" / "test.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            s = Structure.from_str(row["cif"], fmt="cif")
            props = {k: float(row[k]) for k in ("heat_all", "heat_ref", "dir_gap", "ind_gap")}
            out[("perov5", row["material_id"])] = (s, props)
    with open(QUERY_DATA / "mp_cgcnn" / "properties.csv", newline="") as fh:
        mp_props = {r["material_id"]: {"formation_energy_per_atom": float(r["formation_energy_per_atom"])} for r in csv.DictReader(fh)}
    for path in sorted((QUERY_DATA / "mp_cgcnn").glob("*.cif")):
        out[("MP", path.stem)] = (Structure.from_file(path), mp_props.get(path.stem, {}))
    for path in sorted((QUERY_DATA / "cod").glob("*.cif")):
        out[("COD", path.name)] = (Structure.from_file(path), {})
    return out


def build_truth(db) -> dict[int, Truth]:
    """Ingested structure id -> Truth, joined through ``sources`` (database + external id or file name)."""
    from sqlalchemy import select

    from xtalbase.schema import Source

    records = _pymatgen_records()
    truth = {}
    with db.session() as s:
        for src in s.scalars(select(Source)):
            key = (src.database, src.external_id)
            structure, props = records[key if key in records else (src.database, Path(src.file_path).name)]
            truth[src.structure_id] = Truth(src.structure_id, src.database, structure, props)
    return truth


