"""The validity gates of the CDVAE/DiffCSP evaluation code, as decided in ``docs/csp.md``.

- **Structure**: the cell can be built (finite numbers, positive lengths), its volume is at least
  ``min_volume`` (0.1 Å³) and no two distinct sites are closer than ``min_distance`` (0.5 Å) under periodic
  boundaries (pymatgen's ``distance_matrix``, as the reference; a site's distance to its own image does not count).
- **Composition**: SMACT charge neutrality plus the Pauling electronegativity test on the composition reduced by
  the gcd of its counts; a single element or an all-metal composition passes; a product of oxidation-state counts
  above 1e7 fails (the cap of DiffCSP's copy). The result depends on SMACT's oxidation-state table: the reference
  code reads ``Element.oxidation_states``, whose contents changed in SMACT 3 (1.40 % of the Perov-5 test compositions
  fail under 2.x, 1.69 % under 3.x/4.x). ``oxidation_states="installed"`` (default) is the reference code under the
  installed SMACT; ``"smact14"`` uses the SMACT 2.x table (kept by SMACT 3+ as ``oxidation_states_smact14``), which
  reproduces the published ceilings. The version and the table are recorded with every evaluation.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Sequence

import numpy as np

from xtalbase.platform.convert import StructureArrays

MIN_DISTANCE = 0.5
MIN_VOLUME = 0.1
#: Which oxidation-state table the composition gate reads (see the module docstring).
OXIDATION_TABLES = {"installed": "oxidation_states", "smact14": "oxidation_states_smact14"}
#: Oxidation-state combinations above this are judged invalid without enumeration (DiffCSP's cap).
MAX_OXIDATION_COMBINATIONS = 1e7


def build_structure(arrays: StructureArrays) -> Any | None:
    """A pymatgen ``Structure`` of ``arrays``, or ``None`` when it cannot be built (non-finite values, a flat cell)."""
    from pymatgen.core import Lattice, Structure

    cell, numbers, frac = (np.asarray(a) for a in arrays)
    if not (np.isfinite(cell).all() and np.isfinite(frac).all()) or len(numbers) == 0:
        return None
    lattice = Lattice(cell)
    if min(lattice.abc) <= 0 or not np.isfinite(lattice.volume):
        return None
    try:
        return Structure(lattice, [int(z) for z in numbers], frac, coords_are_cartesian=False)
    except (ValueError, KeyError):
        return None


def structure_validity(structure: Any | None, min_distance: float = MIN_DISTANCE, min_volume: float = MIN_VOLUME) -> bool:
    """The reference structure gate: built, volume ≥ ``min_volume``, every interatomic distance ≥ ``min_distance``."""
    if structure is None or not structure.volume >= min_volume:
        return False
    if len(structure) < 2:
        return True
    distances = structure.distance_matrix + np.diag(np.full(len(structure), min_distance + 10.0))
    return bool(distances.min() >= min_distance)


def reduced_counts(numbers: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(elements, counts)`` of a cell, elements sorted by atomic number, counts divided by their gcd."""
    elements, counts = np.unique(np.asarray(numbers, dtype=int), return_counts=True)
    g = int(np.gcd.reduce(counts)) if len(counts) else 1
    return tuple(int(e) for e in elements), tuple(int(c) // g for c in counts)


def composition_validity(numbers: Sequence[int], oxidation_states: str = "installed") -> bool:
    """The reference composition gate (SMACT neutrality + Pauling test) for the atoms of a cell."""
    if oxidation_states not in OXIDATION_TABLES:
        raise ValueError(f"oxidation_states must be one of {', '.join(OXIDATION_TABLES)} (got {oxidation_states!r})")
    return _smact_valid(*reduced_counts(numbers), OXIDATION_TABLES[oxidation_states])


@functools.lru_cache(maxsize=65536)
def _smact_valid(elements: tuple[int, ...], counts: tuple[int, ...], table: str) -> bool:
    import smact
    from pymatgen.core.periodic_table import Element

    symbols = tuple(Element.from_Z(z).symbol for z in elements)
    if len(symbols) == 1:
        return True
    if all(s in smact.metals for s in symbols):
        return True
    space = smact.element_dictionary(symbols)
    electronegativities = [space[s].pauling_eneg for s in symbols]
    try:
        oxidation_states = [getattr(space[s], table) or [] for s in symbols]
    except AttributeError:
        raise ValueError(f"SMACT {smact_version()} has no {table} table (SMACT 3 or newer keeps the 2.x table)") from None
    if math.prod(len(o) for o in oxidation_states) > MAX_OXIDATION_COMBINATIONS:
        return False
    for states in itertools.product(*oxidation_states):
        # smact.neutral_ratios(states, stoichs=[(c,) for c in counts]) with one stoichiometry per site is this sum
        if sum(o * c for o, c in zip(states, counts)) != 0:
            continue
        if _pauling_ok(states, electronegativities):
            return True
    return False


def _pauling_ok(states: Sequence[int], electronegativities: Sequence[float | None]) -> bool:
    from smact.screening import pauling_test

    try:
        return bool(pauling_test(states, electronegativities))
    except TypeError:  # an element without a Pauling electronegativity: the reference counts it as passing
        return True


def smact_version() -> str:
    """The installed SMACT version (its oxidation-state tables decide the composition gate)."""
    from importlib.metadata import version

    return version("smact")
