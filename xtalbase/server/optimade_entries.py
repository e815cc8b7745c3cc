"""Stored structures as OPTIMADE ``structures`` resources, and the catalogue of their properties.

:data:`PROPERTIES` is the one list of the fields a resource carries: ``/v1/info/structures`` describes it, the
resources are built from it and ``response_fields`` picks from it. A page is built from rows loaded in one
batch (:mod:`xtalbase.platform.repositories.optimade`); nothing here reads the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import numpy as np

from xtalbase.platform.convert import decode_batch
from xtalbase.platform.optimade_filter import DISORDER, optimade_anonymous, optimade_reduced


@dataclass(frozen=True)
class Property:
    """One attribute of a structure resource as ``/v1/info/structures`` lists it."""

    name: str
    type: str  # OPTIMADE data type: string, integer, float, boolean, timestamp, list, dictionary
    description: str
    unit: Optional[str] = None
    sortable: bool = False
    default: bool = True  # returned without response_fields; large fields come only when asked for

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description, "type": self.type, "sortable": self.sortable}
        if self.unit:
            out["unit"] = self.unit
        return out


PROPERTIES: tuple[Property, ...] = (
    Property("id", "string", "The structure's id in this database (the integer key as a string).", sortable=True),
    Property("type", "string", "Always \"structures\"."),
    Property("immutable_id", "string", "The SHA-256 hash of the stored cell, species and coordinates; never changes.",
             sortable=True),
    Property("last_modified", "timestamp", "When the structure was stored (stored structures never change).",
             sortable=True),
    Property("elements", "list", "Element symbols, alphabetical."),
    Property("nelements", "integer", "Number of distinct elements.", sortable=True),
    Property("elements_ratios", "list", "Fraction of the atoms that each element of `elements` makes up."),
    Property("chemical_formula_descriptive", "string", "The reduced formula as stored (pymatgen's element order).",
             sortable=True),
    Property("chemical_formula_reduced", "string", "Reduced formula, elements alphabetical (OPTIMADE's spelling)."),
    Property("chemical_formula_anonymous", "string", "Anonymous reduced formula, largest count first (A3BC)."),
    Property("dimension_types", "list", "Periodicity along each lattice vector: always [1, 1, 1]."),
    Property("nperiodic_dimensions", "integer", "Number of periodic dimensions: always 3."),
    Property("lattice_vectors", "list", "The three lattice vectors (rows), Å.", unit="Å"),
    Property("cartesian_site_positions", "list", "Cartesian position of each site, Å.", unit="Å"),
    Property("nsites", "integer", "Number of sites in the cell.", sortable=True),
    Property("species", "list", "The species the sites refer to (partial occupancies as concentrations)."),
    Property("species_at_sites", "list", "Name of the species at each site."),
    Property("structure_features", "list", "[\"disorder\"] for structures with partially occupied or mixed sites, "
             "otherwise []."),
    Property("space_group_it_number", "integer", "International Tables space-group number (1-230), from spglib; "
             "null where symmetry detection failed.", sortable=True),
    Property("_xtalbase_space_group_number", "integer", "International space-group number (1-230) as stored; "
             "null where symmetry detection failed.", sortable=True),
    Property("_xtalbase_space_group_symbol", "string", "Hermann-Mauguin space-group symbol as stored (e.g. \"Fm-3m\")."),
    Property("_xtalbase_crystal_system", "string", "Crystal system: cubic, hexagonal, trigonal, tetragonal, "
             "orthorhombic, monoclinic or triclinic.", sortable=True),
    Property("_xtalbase_volume", "float", "Cell volume.", unit="Å^3", sortable=True),
    Property("_xtalbase_density", "float", "Density.", unit="g/cm^3", sortable=True),
    Property("_xtalbase_xrd_peaks", "dictionary", "The computed powder XRD peaks of the default recipe (Cu Kα, "
             "2θ 0-90°): {\"recipe_id\", \"wavelength\" (Å), \"two_theta\" (degrees), \"intensity\" (max 100)}; null "
             "without a pattern. Returned only when named in response_fields.", default=False),
    Property("_xtalbase_predictions", "list", "Stored model predictions on the structure, oldest first: "
             "{\"model_id\", \"model_name\", \"algorithm\", \"target\", \"value\", \"label\", \"run_id\"}. Returned only "
             "when named in response_fields.", default=False),
)

BY_NAME = {p.name: p for p in PROPERTIES}
DEFAULT_FIELDS = tuple(p.name for p in PROPERTIES if p.default and p.name not in ("id", "type"))
#: Fields loaded from other tables, read only when a page asks for them.
PEAKS, PREDICTIONS = "_xtalbase_xrd_peaks", "_xtalbase_predictions"


@dataclass
class Page:
    """What a page of resources is built from: rows in order, element amounts, and the optional extras."""

    ids: list[int]
    rows: dict[int, Any]
    amounts: dict[int, dict[str, float]]
    peaks: Optional[dict[int, tuple[np.ndarray, np.ndarray]]] = None
    recipe: Optional[tuple[int, float]] = None  # (id, wavelength Å) of the recipe the peaks come from
    predictions: Optional[dict[int, list[dict[str, Any]]]] = None


def timestamp(value: Any) -> Optional[str]:
    """An RFC 3339 UTC timestamp to the second (SQLite returns naive UTC datetimes, PostgreSQL aware ones)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def resources(page: Page, fields: tuple[str, ...], base_url: str) -> list[dict[str, Any]]:
    """The resource objects of ``page`` in order, each with the attributes ``fields`` (unknown ones null)."""
    rows = [page.rows[i] for i in page.ids if i in page.rows]
    if not rows:
        return []
    batch = decode_batch([r.nsites for r in rows], [r.cell for r in rows], [r.numbers for r in rows],
                         [r.frac_coords for r in rows])
    positions = batch.cartesian()
    offsets = batch.offsets.tolist()
    from ase.data import chemical_symbols

    symbols = np.asarray(chemical_symbols)[batch.numbers]
    out = []
    for i, row in enumerate(rows):
        site = slice(offsets[i], offsets[i + 1])
        geometry = {"cell": batch.cells[i], "positions": positions[site], "symbols": symbols[site]}
        attributes = {name: _attribute(name, row, page, geometry) for name in fields}
        out.append({"id": str(row.id), "type": "structures", "attributes": attributes,
                    "links": {"self": f"{base_url}/v1/structures/{row.id}"}})
    return out


def _attribute(name: str, row: Any, page: Page, geometry: dict[str, Any]) -> Any:
    getter = _GETTERS.get(name)
    return getter(row, page, geometry) if getter is not None else None


def _elements(row: Any, page: Page) -> list[str]:
    return sorted(page.amounts.get(row.id, {}))


def _ratios(row: Any, page: Page, _: Any) -> list[float]:
    amounts = page.amounts.get(row.id, {})
    total = sum(amounts.values())
    return [amounts[el] / total for el in sorted(amounts)] if total else []


def _integer_counts(amounts: dict[str, float]) -> bool:
    return bool(amounts) and all(float(a).is_integer() for a in amounts.values())


def _formula(convert: Callable[[dict[str, float]], str]) -> Callable[[Any, Page, Any], Optional[str]]:
    def get(row: Any, page: Page, _: Any) -> Optional[str]:
        amounts = page.amounts.get(row.id, {})
        return convert(amounts) if _integer_counts(amounts) else None  # OPTIMADE formulas hold integer counts
    return get


def _species(row: Any, geometry: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """OPTIMADE ``species`` and ``species_at_sites``: one species per element, or per distinct occupancy."""
    occupancies = row.site_occupancies
    if not occupancies:
        names = geometry["symbols"].tolist()
        return ([{"name": el, "chemical_symbols": [el], "concentration": [1.0]} for el in sorted(set(names))], names)
    species: dict[tuple, dict[str, Any]] = {}
    at_sites = []
    for occ in occupancies:
        key = tuple(sorted((el, round(float(c), 6)) for el, c in occ.items()))
        if key not in species:
            symbols = [el for el, _ in key]
            conc = [c for _, c in key]
            if sum(conc) < 1 - 1e-6:
                symbols.append("vacancy")
                conc.append(round(1 - sum(conc), 6))
            name = "".join(f"{el}{c:g}" for el, c in key) if len(key) > 1 or key[0][1] != 1 else key[0][0]
            species[key] = {"name": name, "chemical_symbols": symbols, "concentration": conc}
        at_sites.append(species[key]["name"])
    return list(species.values()), at_sites


def _peaks(row: Any, page: Page, _: Any) -> Optional[dict[str, Any]]:
    if page.peaks is None or page.recipe is None or row.id not in page.peaks:
        return None
    two_theta, intensity = page.peaks[row.id]
    return {"recipe_id": page.recipe[0], "wavelength": page.recipe[1],
            "two_theta": [round(float(x), 4) for x in two_theta], "intensity": [round(float(x), 3) for x in intensity]}


_GETTERS: dict[str, Callable[[Any, Page, dict[str, Any]], Any]] = {
    "immutable_id": lambda r, p, g: r.exact_hash,
    "last_modified": lambda r, p, g: timestamp(r.created_at),
    "elements": lambda r, p, g: _elements(r, p),
    "nelements": lambda r, p, g: r.nelements,
    "elements_ratios": _ratios,
    "chemical_formula_descriptive": lambda r, p, g: r.formula_reduced,
    "chemical_formula_reduced": _formula(optimade_reduced),
    "chemical_formula_anonymous": _formula(optimade_anonymous),
    "dimension_types": lambda r, p, g: [1, 1, 1],
    "nperiodic_dimensions": lambda r, p, g: 3,
    "lattice_vectors": lambda r, p, g: g["cell"].tolist(),
    "cartesian_site_positions": lambda r, p, g: g["positions"].tolist(),
    "nsites": lambda r, p, g: r.nsites,
    "species": lambda r, p, g: _species(r, g)[0],
    "species_at_sites": lambda r, p, g: _species(r, g)[1],
    "structure_features": lambda r, p, g: [DISORDER] if r.site_occupancies else [],
    "space_group_it_number": lambda r, p, g: r.spacegroup_number,
    "_xtalbase_space_group_number": lambda r, p, g: r.spacegroup_number,
    "_xtalbase_space_group_symbol": lambda r, p, g: r.spacegroup_symbol,
    "_xtalbase_crystal_system": lambda r, p, g: r.crystal_system,
    "_xtalbase_volume": lambda r, p, g: r.volume,
    "_xtalbase_density": lambda r, p, g: r.density,
    PEAKS: _peaks,
    PREDICTIONS: lambda r, p, g: (p.predictions or {}).get(r.id, []) if p.predictions is not None else None,
}
