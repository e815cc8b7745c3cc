"""Confirm canonical-hash candidates with pymatgen's ``StructureMatcher`` before collapsing two records.

The canonical hash (:mod:`xtalbase.ingest.identity`) is deliberately coarse, so
an equal key only nominates a candidate. Two structures are the same when
``StructureMatcher`` with its defaults (``ltol=0.2``, ``stol=0.3``,
``angle_tol=5``, primitive cells, volumes scaled) maps one onto the other:
the Materials Project's notion of one material.

:class:`Matcher` gives exactly ``StructureMatcher().fit``'s answer but reduces
each structure (Niggli, then primitive, as ``fit`` does) once and keeps it:
one record is often compared with several stored polymorphs of the same key,
and ``fit``'s own reduced-cell cache confirms every hit by comparing the two
structures site by site, which costs seconds per batch on 40-site cells.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Hashable, Iterable, Optional, TypeVar

from xtalbase.platform.convert import to_pymatgen

T = TypeVar("T")
#: Reduced structures kept per :class:`Matcher` (least recently used dropped first).
CACHE_SIZE = 4096


class Matcher:
    """``StructureMatcher()`` with each structure's reduced cell computed once, keyed by the caller's id."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.cache_size = cache_size
        self._reduced: OrderedDict[Hashable, Any] = OrderedDict()
        self._arrangements: OrderedDict[Hashable, Any] = OrderedDict()
        self._letters: OrderedDict[Hashable, Any] = OrderedDict()
        self._letter_maps: dict = {}
        self._matcher: Any = None

    @property
    def matcher(self) -> Any:
        """The ``StructureMatcher`` (made on first use: importing it takes a second)."""
        if self._matcher is None:
            from pymatgen.analysis.structure_matcher import StructureMatcher

            self._matcher = StructureMatcher()
        return self._matcher

    def reduced(self, key: Hashable, row: Any) -> Any:
        """The Niggli-reduced primitive ``Structure`` of ``row`` (a row dict, SQL row or pymatgen structure)."""
        found = self._reduced.get(key)
        if found is not None:
            self._reduced.move_to_end(key)
            return found
        from pymatgen.core import IStructure

        structure = row if isinstance(row, IStructure) else structure_of(row)
        # the same two steps, with the same defaults, as fit's own reduction (which skip_structure_reduction turns off)
        structure = structure.get_reduced_structure(reduction_algo="niggli").get_primitive_structure()
        self._reduced[key] = structure
        if len(self._reduced) > self.cache_size:
            self._reduced.popitem(last=False)
        return structure

    def fit(self, key1: Hashable, row1: Any, key2: Hashable, row2: Any) -> bool:
        """``StructureMatcher().fit`` of the two structures; a matcher error means: not shown to be the same."""
        try:
            s1, s2 = self.reduced(key1, row1), self.reduced(key2, row2)
            return bool(self.matcher.fit(s1, s2, skip_structure_reduction=True))
        except Exception:  # noqa: BLE001 - pymatgen raises many types on degenerate cells
            return False

    def rekey(self, old: Hashable, new: Hashable) -> None:
        """What is known of ``old`` is now known under ``new`` (a new row's exact hash, then its id once inserted)."""
        for cache in (self._reduced, self._arrangements, self._letters):
            if old in cache:
                cache[new] = cache.pop(old)

    def note_letters(self, key: Hashable, letters: Any) -> None:
        """Remember the Wyckoff letters a worker found for ``key`` (``[number, [[label, letter, n], ...]]``)."""
        if letters:
            self._letters[key] = letters
            if len(self._letters) > 16 * self.cache_size:  # forgotten letters cost a moyo call, never a wrong answer
                self._letters.popitem(last=False)

    def arrangement(self, key: Hashable, row: Any) -> Any:
        """The origin-free Wyckoff arrangement of ``row`` (:func:`~xtalbase.ingest.identity.wyckoff_arrangement`).

        From the letters noted for ``key`` when the normalizer's relabellings for them are known;
        else by moyo on the structure (which learns those relabellings for the next ones).
        """
        if key in self._arrangements:
            self._arrangements.move_to_end(key)
            return self._arrangements[key]
        from xtalbase.ingest.identity import arrangement_from_letters

        found, letters = None, self._letters.pop(key, None)
        if letters:
            number, counts = letters
            found = arrangement_from_letters(number, {(label, letter): n for label, letter, n in counts}, self._letter_maps)
        if found is None:
            found = self._moyo_arrangement(row)
        self._arrangements[key] = found
        if len(self._arrangements) > self.cache_size:
            self._arrangements.popitem(last=False)
        return found

    def _moyo_arrangement(self, row: Any) -> Any:
        from pymatgen.core import IStructure

        from xtalbase.ingest.identity import DEFAULT_SYMPREC, site_labels, wyckoff_arrangement
        from xtalbase.ingest.records import species_from_pymatgen

        structure = row if isinstance(row, IStructure) else structure_of(row)
        symprec = (row.get("symprec") if isinstance(row, dict) else getattr(row, "symprec", None)) or DEFAULT_SYMPREC
        return wyckoff_arrangement(structure.lattice.matrix, structure.frac_coords,
                                   site_labels(species_from_pymatgen(structure)), symprec, self._letter_maps)

    def first_match(self, key: Hashable, row: Any, candidates: Iterable[tuple[T, Any]]) -> Optional[T]:
        """The key of the first candidate ``(key, row)`` that matches ``row``, else ``None``.

        Keys are the cache's keys: hashable, one structure each (a row id, an exact hash).
        A candidate whose Wyckoff arrangement differs (same space group by moyo, letters
        not related by any equivalent origin) is a different structure and skips the
        ``StructureMatcher`` call: a full search that fails costs tens of ms on cubic cells.
        """
        for other_key, other in candidates:
            mine, theirs = self.arrangement(key, row), self.arrangement(other_key, other)
            if mine is not None and theirs is not None and mine[0] == theirs[0] and mine[1] != theirs[1]:
                continue
            if self.fit(key, row, other_key, other):
                return other_key
        return None


def first_match(structure: Any, candidates: Iterable[tuple[T, Any]]) -> Optional[T]:
    """The key of the first candidate ``(key, row)`` whose structure matches ``structure``, else ``None``.

    A one-off comparison; hold a :class:`Matcher` to compare many records.
    """
    pairs = list(candidates)  # the cache is keyed by position: callers' keys may repeat or be unhashable
    found = Matcher().first_match(-1, structure, ((i, row) for i, (_, row) in enumerate(pairs)))
    return None if found is None else pairs[found][0]


class RowView:
    """Attribute access over a ``structures`` row dict so :func:`to_pymatgen` can decode it."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)


def structure_of(row: Any) -> Any:
    """A pymatgen ``Structure`` from a row dict or SQL row."""
    return to_pymatgen(RowView(row) if isinstance(row, dict) else row)
