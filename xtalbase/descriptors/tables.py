"""Element property tables vendored in the package, each checked against its sha256 when loaded.

* ``xenonpy``: the 58 element properties of XenonPy's ``elements_completed`` table for H-Pu (Z 1-94), as
  shipped (MIT) in the ElementEmbeddings 0.8.0 wheel, ``xenonpy_element_features.csv``. XenonPy itself
  fetches its table on first use, which this package may not do.
* ``magpie``: the 22 Magpie property tables of matminer's ``magpie`` preset, copied from the matminer 0.10.1
  wheel (modified BSD; data from Ward et al., npj Comput. Mater. 2, 16028 (2016)). One value per line for
  Z = 1, 2, ...; a line that is not a number (``Missing``) or beyond the end of the file is NaN.

``xtalbase/data/README.md`` records where each file came from and its licence. A table is read once per
process (:func:`element_table` caches it) and is immutable.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from xtalbase.errors import XtalbaseError
from xtalbase.platform.hashing import file_sha256

#: Highest atomic number a table row exists for (rows 0..MAX_Z; row 0 is all NaN).
MAX_Z = 118
#: Where the vendored files live: ``xtalbase/data/elements`` (read as files, never imported).
ELEMENTS_DIR = Path(__file__).resolve().parent.parent / "data" / "elements"

XENONPY_FILE = "xenonpy_element_features.csv"
XENONPY_SHA256 = "4bb9e660fe1ee6123fac014d77056ec6aad1b917c7c4ac6a5af006c3721983f7"

#: matminer's ``ElementProperty.from_preset("magpie")`` properties, in its order.
MAGPIE_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius", "Electronegativity",
    "NsValence", "NpValence", "NdValence", "NfValence", "NValence", "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled",
    "NUnfilled", "GSvolume_pa", "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)
MAGPIE_SHA256 = {
    "AtomicWeight": "8ce536156435dbf45f41ae91d96a2bff8139dbec8bbf0f74bfc412db9cfd7049",
    "Column": "8f74e08e661510c6623dda8ea18e191ad82186d6a23559a79555c4e59e06a24e",
    "CovalentRadius": "a291a255ae3a9fef4f73a9cd873fb1aba482066b1e1f373477c5b164c910d8dc",
    "Electronegativity": "c1801e33c604750c4d7e93765fa008c7f7e501ddbf328a0b180af42cc088f64b",
    "GSbandgap": "d8036ebdfa12754bafd0ee94063027009ea0020c95ed14d88359edc6af0163d8",
    "GSmagmom": "f7e358df6982f25835706bf766281df3c65858534500a47f18737cacc4a4cf16",
    "GSvolume_pa": "3bb7a4d5951ac6a7e55908231bd108fd3531a1b3c04fafe7b4e553c799a3df96",
    "MeltingT": "d5d52d5292dd9788bd326543a1f33219b34c141b863d5594ca212ca63205f02f",
    "MendeleevNumber": "0169c98f87bc2069239122e122cbee13d95097e60debdf281b2202e6b785bf83",
    "NUnfilled": "bbece39935e94c5f8b9636b3d5e6cd5791e8816f883a9c41deecd9b1280169fc",
    "NValence": "a5dc833fd5f660d233cc752fece5501a81d61ad69120ee3736cd059979047b4b",
    "NdUnfilled": "63ae6f8c059d282822359092324714908a7438bde7a18f4b50545dc9a5d1cc3b",
    "NdValence": "b9a3f4ee220653c1d955aec3e1158a10dc2cd69258a2de5571e4aebd670234f0",
    "NfUnfilled": "99439efb794eae0b974838b065fdc31fc1f81242a1086df6a3c38dd22182619d",
    "NfValence": "80869e70654b4151c6be142847f56de1966323685071c21a1bbcd16437d2a2e2",
    "NpUnfilled": "b810d9973da04e3b840d94d9dbdf8a96f0e49a6610ae1fffeed48a244ee8e8b9",
    "NpValence": "f4984b992230957bdd90ee7e1d83232966928840aec0a3e0d917148ceadc5817",
    "NsUnfilled": "bbdfa61b8a94af91763255315f3040aa4afa0e3acae56a45e9ade8a8bab03c8f",
    "NsValence": "71b75922317cb942599b198fb26155dfb5cadcfe45d08a28361997dec03a663e",
    "Number": "8fc501dc139d079d940dfeb1e9e56b2b32a9f935fc11d1eaac409ae2947ba045",
    "Row": "a6e0f8a4fd85b4cb74dd57a35513d2f348d054b056b6f781c8da6803c86c961c",
    "SpaceGroupNumber": "5bdba4df7fb2c6d86990cc1e500685c21e39d0ed7b771a8810d88c3e97d7092a",
}


class TableError(XtalbaseError):
    """A vendored element table is missing, altered (sha256 differs) or asked for an unknown name."""


@dataclass(frozen=True)
class ElementTable:
    """Element properties: ``values[Z, j]`` is property ``properties[j]`` of element ``Z`` (NaN where unknown)."""

    name: str
    properties: tuple[str, ...]
    values: np.ndarray
    source: str
    licence: str
    files: dict[str, str]

    def covered(self) -> np.ndarray:
        """Atomic numbers with at least one known property (``xenonpy``: 1-94)."""
        return np.flatnonzero(~np.isnan(self.values).all(axis=1))

    def column(self, prop: str) -> np.ndarray:
        """One property for every ``Z`` (index = atomic number)."""
        try:
            return self.values[:, self.properties.index(prop)]
        except ValueError:
            raise TableError(f"table {self.name!r} has no property {prop!r}; it has {', '.join(self.properties)}") from None

    def imputed(self) -> np.ndarray:
        """``values`` with each NaN replaced by its property's mean over Z = 1..118 (matminer's ``impute_nan``)."""
        means = np.nanmean(self.values[1:], axis=0)
        return np.where(np.isnan(self.values), means[None, :], self.values)


def _checked(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise TableError(f"vendored element table {path} is missing (reinstall xtalbase)")
    digest = file_sha256(path)
    if digest != expected:
        raise TableError(f"vendored element table {path} was altered: sha256 {digest}, expected {expected}")
    return path


def _xenonpy() -> ElementTable:
    from pymatgen.core import Element

    path = _checked(ELEMENTS_DIR / XENONPY_FILE, XENONPY_SHA256)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    props = tuple(header[1:])
    values = np.full((MAX_Z + 1, len(props)), np.nan)
    for row in body:
        values[Element(row[0]).Z] = [float(v) for v in row[1:]]
    return ElementTable("xenonpy", props, values, "XenonPy elements_completed (58 properties, H-Pu) via ElementEmbeddings 0.8.0",
                        "MIT", {XENONPY_FILE: XENONPY_SHA256})


def _parse_table_line(line: str) -> float:
    try:
        return float(line)
    except ValueError:
        return float("nan")


def _magpie() -> ElementTable:
    values = np.full((MAX_Z + 1, len(MAGPIE_PROPERTIES)), np.nan)
    files = {}
    for j, prop in enumerate(MAGPIE_PROPERTIES):
        name = f"magpie/{prop}.table"
        lines = _checked(ELEMENTS_DIR / name, MAGPIE_SHA256[prop]).read_text().splitlines()[:MAX_Z]
        values[1:len(lines) + 1, j] = [_parse_table_line(line) for line in lines]
        files[name] = MAGPIE_SHA256[prop]
    return ElementTable("magpie", MAGPIE_PROPERTIES, values, "Magpie element data as shipped in matminer 0.10.1",
                        "modified BSD (matminer); Ward et al. 2016", files)


_LOADERS = {"xenonpy": _xenonpy, "magpie": _magpie}
#: Names :func:`element_table` accepts.
TABLES = tuple(_LOADERS)


@lru_cache(maxsize=None)
def element_table(name: str) -> ElementTable:
    """The vendored table ``name`` (``xenonpy`` or ``magpie``), read and sha256-checked once per process."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise TableError(f"unknown element table {name!r}; choose one of {', '.join(TABLES)}") from None
    table = loader()
    table.values.setflags(write=False)
    return table
