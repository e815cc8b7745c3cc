"""spglib's table of the 530 space-group settings, as CIF readers and the symmetry code need it.

Data, not algorithm: the settings by Hall number, each setting's operations as CIF ``x,y,z`` strings,
and the international short symbol of each space-group number in its default setting.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any


def spglib_module() -> Any:
    """The ``spglib`` module (its C-level notes are switched off by the ``xtalbase`` command, not here)."""
    import spglib

    return spglib


@functools.cache
def hall_settings() -> list[Any]:
    """spglib's 530 space-group settings (``SpaceGroupType``: number, symbols, ``hall_symbol``, ``choice``), by Hall number."""
    spglib = spglib_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's notice about its old error handling
        return [spglib.get_spacegroup_type(hall) for hall in range(1, 531)]


def setting_operations(hall_number: int) -> list[str]:
    """The symmetry operations of one spglib setting as CIF ``x,y,z`` strings (``-y+1/4,x,z+3/4``)."""
    from fractions import Fraction

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ops = spglib_module().get_symmetry_from_database(hall_number)
    out = []
    for rotation, translation in zip(ops["rotations"], ops["translations"]):
        parts = []
        for row, shift in zip(rotation.tolist(), translation.tolist()):
            term = "".join(f"{'+' if c > 0 else '-'}{'' if abs(c) == 1 else abs(c)}{axis}"
                           for c, axis in zip(row, "xyz") if c)
            fraction = Fraction(shift % 1.0).limit_denominator(24)
            parts.append(term.lstrip("+") + (f"+{fraction}" if fraction else ""))
        out.append(",".join(parts))
    return out


@functools.cache
def _symbols() -> dict[int, str]:
    table: dict[int, str] = {}
    for entry in hall_settings():  # the first Hall setting of each number is spglib's default (standardised) one
        table.setdefault(int(entry.number), str(entry.international_short))
    return table


def spglib_symbol(number: int) -> str:
    """spglib's international short symbol of a space-group number in its default setting (``14`` -> ``P2_1/c``)."""
    return _symbols()[number]
