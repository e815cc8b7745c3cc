"""Symmetry and the two identities of a structure: exact hash and canonical hash.

* ``symmetry``: space group, symbol, crystal system and Wyckoff letters of a cell
  at ``symprec`` (Å), from one of two engines of the spglib project: ``spglib``
  itself (the default: the reference pymatgen, ASE and the Materials Project use)
  or ``moyo`` (moyopy, its Rust successor, several times faster per cell; its
  tolerance is effectively looser: at 0.01 Å it reports another space group for
  0.1% of the shared MP cells and 3.6% of the slightly distorted Perov-5 cells,
  nearly always a higher one, see ``docs/ingest.md``). The symbol is always
  spglib's international short symbol of the number (``P2_1/c``, ``Fm-3m``),
  whichever engine found it.
* ``exact_hash``: SHA-256 of the stored arrays (cell, numbers, fractional
  coordinates, occupancies) as written to the database. Two rows share it only
  when they are bit-for-bit the same configuration.
* ``canonical_hash`` (version :data:`HASH_VERSION`): SHA-256 of the structure's
  *type* at the run's ``symprec``: space group number plus the sorted list of
  (species, site-symmetry symbol, sites per primitive cell). It holds no continuous parameters, so a structure
  measured at two temperatures, or entered twice with slightly different digits,
  gets the same key without any rounding-boundary splits. Equal keys are
  *candidates*; :mod:`xtalbase.ingest.matching` confirms them with pymatgen's
  ``StructureMatcher`` before collapsing. Version 1 used Wyckoff letters instead
  of site symmetries: letters depend on which of several equivalent origins the
  engine picks, and noise of 1e-5 Å in the coordinates already changes that pick
  for 20% of MP and 60% of Perov-5 cells (stored twice); site symmetries are the
  same from every equivalent origin.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np

from xtalbase.ingest.cif_settings import spglib_module, spglib_symbol
from xtalbase.ingest.engines import DEFAULT_ENGINE, DEFAULT_SYMPREC, SYMMETRY_ENGINES  # noqa: F401 - also this module's names
from xtalbase.schema.arrays import F8, U1, pack

HASH_VERSION = 2
CRYSTAL_SYSTEMS = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                   (167, "trigonal"), (194, "hexagonal"), (230, "cubic"))


@dataclass
class Symmetry:
    """A symmetry engine's verdict on one cell at ``symprec`` (Å); per input site: Wyckoff letter and site-symmetry symbol."""

    number: int
    symbol: str
    crystal_system: str
    wyckoffs: list[str]
    n_primitive: int
    site_symmetries: list[str]


def crystal_system(number: int) -> str:
    """Crystal system name of an international space-group number (1-230)."""
    return next(name for top, name in CRYSTAL_SYSTEMS if number <= top)


def site_labels(species: list[dict[str, float]]) -> list[str]:
    """One label per site: the element for ordered sites, ``Fe0.5Ni0.5``-style (sorted, 3 decimals) otherwise."""
    labels = []
    for occ in species:
        if len(occ) == 1 and abs(next(iter(occ.values())) - 1.0) < 1e-6:
            labels.append(next(iter(occ)))
        else:
            labels.append("".join(f"{el}{round(v, 3):g}" for el, v in sorted(occ.items())))
    return labels


def symmetry(cell: np.ndarray, frac_coords: np.ndarray, labels: list[str], symprec: float = DEFAULT_SYMPREC,
             engine: str = DEFAULT_ENGINE) -> Optional[Symmetry]:
    """Space group of a cell whose sites of equal label are equivalent candidates; ``None`` if the engine finds none."""
    kinds = {label: i + 1 for i, label in enumerate(sorted(set(labels)))}
    types = [kinds[label] for label in labels]
    if engine == "moyo":
        return _moyo(cell, frac_coords, types, symprec)
    if engine == "spglib":
        return _spglib(cell, frac_coords, types, symprec)
    raise ValueError(f"unknown symmetry engine {engine!r}: choose one of {', '.join(SYMMETRY_ENGINES)}")


def _moyo(cell: np.ndarray, frac_coords: np.ndarray, types: list[int], symprec: float) -> Optional[Symmetry]:
    import moyopy

    try:
        dataset = moyopy.MoyoDataset(moyopy.Cell(np.asarray(cell).tolist(), np.asarray(frac_coords).tolist(), types),
                                     symprec=symprec)
    except Exception:  # noqa: BLE001 - moyopy raises when no consistent space group exists at this tolerance
        return None
    number = int(dataset.number)
    return Symmetry(number, spglib_symbol(number), crystal_system(number), list(dataset.wyckoffs),
                    len(dataset.prim_std_cell.numbers), list(dataset.site_symmetry_symbols))


def _spglib(cell: np.ndarray, frac_coords: np.ndarray, types: list[int], symprec: float) -> Optional[Symmetry]:
    spglib = spglib_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's notice about its old error handling
        try:
            dataset = spglib.get_symmetry_dataset((cell, frac_coords, np.array(types, dtype=np.intc)), symprec=symprec)
        except Exception:  # noqa: BLE001 - newer spglib raises SpglibError where older returned None
            dataset = None
    if dataset is None:
        return None
    number = int(dataset.number)
    n_primitive = len(set(np.asarray(dataset.mapping_to_primitive).tolist()))
    return Symmetry(number, spglib_symbol(number), crystal_system(number), list(dataset.wyckoffs), n_primitive,
                    list(dataset.site_symmetry_symbols))


def wyckoff_arrangement(cell: np.ndarray, frac_coords: np.ndarray, labels: list[str], symprec: float = DEFAULT_SYMPREC,
                        maps: Optional[dict] = None) -> Optional[tuple[int, tuple]]:
    """``(space group, arrangement)`` of a cell by moyo, the same from every equivalent origin; ``None`` if none.

    The arrangement is the smallest sorted ``((label, Wyckoff letter), sites per primitive cell)`` list over the
    Euclidean normalizer's relabellings of the letters (rock salt with Na on 4a or on 4b reads
    alike), so two arrangements that differ are different structures (A and B swapped around
    the anions of a perovskite), which site symmetries alone cannot tell. ``maps`` caches the
    normalizer's letter relabellings per (space group, letters present): computing them is
    most of the cost.
    """
    import moyopy

    kinds = {label: i + 1 for i, label in enumerate(sorted(set(labels)))}
    try:
        dataset = moyopy.MoyoDataset(moyopy.Cell(np.asarray(cell).tolist(), np.asarray(frac_coords).tolist(),
                                                 [kinds[label] for label in labels]), symprec=symprec)
    except Exception:  # noqa: BLE001 - moyopy raises when no consistent space group exists at this tolerance
        return None
    number, letters = int(dataset.number), list(dataset.wyckoffs)
    counts = letter_counts(labels, letters, len(dataset.prim_std_cell.numbers))
    cache_key = (number, frozenset(letter for _, letter in counts))
    relabellings = None if maps is None else maps.get(cache_key)
    if relabellings is None:
        relabellings = []
        try:
            descriptions = dataset.normalizer_wyckoff_positions().coset_representatives
        except Exception:  # noqa: BLE001 - no normalizer: compare the letters as they are
            descriptions = []
        own = [w.letter for w in descriptions[0][1]] if descriptions else []  # the first description is the identity
        for _, sequence in descriptions:
            relabellings.append(dict(zip(own, (w.letter for w in sequence))))
        relabellings = relabellings or [{}]
        if maps is not None:
            maps[cache_key] = relabellings
            for m in relabellings:  # the same relabellings, seen from each equivalent set of letters
                back = {image: letter for letter, image in m.items()}
                image_key = (number, frozenset(m.get(letter, letter) for letter in cache_key[1]))
                maps.setdefault(image_key, [{x: r.get(back.get(x, x), back.get(x, x)) for x in image_key[1]}
                                            for r in relabellings])
    return number, _smallest(counts, relabellings)


def letter_counts(labels: list[str], letters: list[str], n_primitive: int) -> dict[tuple[str, str], int]:
    """Sites per primitive cell of each (label, Wyckoff letter), from per-site letters of a cell of ``len(labels)`` sites."""
    cells = max(len(labels) // max(n_primitive, 1), 1)  # primitive cells in the input cell
    return {key: n // cells for key, n in Counter(zip(labels, letters)).items()}


def arrangement_from_letters(number: int, counts: dict[tuple[str, str], int], maps: dict) -> Optional[tuple[int, tuple]]:
    """:func:`wyckoff_arrangement` from letters already known (any engine's, ITA letters), if ``maps`` holds the
    normalizer's relabellings for this space group and set of letters; else ``None``."""
    relabellings = maps.get((number, frozenset(letter for _, letter in counts)))
    return None if relabellings is None else (number, _smallest(counts, relabellings))


def _smallest(counts: dict[tuple[str, str], int], relabellings: list[dict[str, str]]) -> tuple:
    return min(tuple(sorted(((label, m.get(letter, letter)), n) for (label, letter), n in counts.items()))
               for m in relabellings)


def exact_hash(cell: np.ndarray, numbers: np.ndarray, frac_coords: np.ndarray, occupancies: list | None) -> str:
    """SHA-256 (hex) of the arrays exactly as stored (see :mod:`xtalbase.schema.arrays`)."""
    h = hashlib.sha256()
    h.update(pack(cell, F8))
    h.update(pack(numbers, U1))
    h.update(pack(frac_coords, F8))
    if occupancies:
        h.update(json.dumps(occupancies, sort_keys=True).encode())
    return h.hexdigest()


def canonical_hash(labels: list[str], sym: Optional[Symmetry]) -> str:
    """SHA-256 (hex) of the structure type: space group + sorted (label, site symmetry, sites per primitive cell)."""
    if sym is None:  # no symmetry found: fall back to the composition of the cell as given
        counts = Counter(labels)
        key = {"v": HASH_VERSION, "sg": 0, "sites": sorted([label, "", n] for label, n in counts.items())}
    else:
        cells = max(len(labels) // sym.n_primitive, 1) if sym.n_primitive else 1  # primitive cells in the input cell
        # counted per site, not per orbit: in a supercell the engines split an orbit by the input lattice's translations
        counts = Counter(zip(labels, sym.site_symmetries))
        key = {"v": HASH_VERSION, "sg": sym.number,
               "sites": sorted([label, site, n // cells] for (label, site), n in counts.items())}
    return hashlib.sha256(json.dumps(key, separators=(",", ":")).encode()).hexdigest()
