"""Confirm canonical-hash candidates with pymatgen's ``StructureMatcher`` before collapsing two records.

The canonical hash (:mod:`xtalbase.ingest.identity`) is deliberately coarse, so
an equal key only nominates a candidate. Two structures are the same when
``StructureMatcher`` with its defaults (``ltol=0.2``, ``stol=0.3``,
``angle_tol=5``, primitive cells, volumes scaled) maps one onto the other:
the Materials Project's notion of one material.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Optional, TypeVar

from xtalbase.platform.convert import to_pymatgen

T = TypeVar("T")


@functools.cache
def _matcher() -> Any:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher()


def first_match(structure: Any, candidates: Iterable[tuple[T, Any]]) -> Optional[T]:
    """The key of the first candidate ``(key, row)`` whose structure matches ``structure``, else ``None``.

    Rows (dicts or SQL rows) are decoded only when compared.
    """
    matcher = _matcher()
    for key, other in candidates:
        try:
            if matcher.fit(structure, structure_of(other)):
                return key
        except Exception:  # noqa: BLE001 - a matcher failure means: not shown to be the same
            continue
    return None


class RowView:
    """Attribute access over a ``structures`` row dict so :func:`to_pymatgen` can decode it."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)


def structure_of(row: Any) -> Any:
    """A pymatgen ``Structure`` from a row dict or SQL row."""
    return to_pymatgen(RowView(row) if isinstance(row, dict) else row)
