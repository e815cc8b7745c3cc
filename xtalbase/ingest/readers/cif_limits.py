"""Checks on a CIF block's raw values that must pass before pymatgen builds its structure.

pymatgen expands every listed atom by every symmetry operation and only then can the
site cap or the cell be judged: a block whose symmetry expands to 576,000 sites, or
whose cell is a = 1e-7 Å, took gigabytes on the way. These checks cost microseconds
and name the record and the reason instead.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Optional

from xtalbase.ingest.validate import Problem, ValidationOptions, cell_problem

#: One signed term of a symmetry-operation component: ``x``, ``-y``, ``+1/2``, ``0.25``, ``2x``, ``1/2*z``.
_TERM = re.compile(r"[+-]?[^+-]+")
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_TERM_BODY = re.compile(rf"(?P<num>{_NUMBER})(?:/(?P<den>{_NUMBER}))?(?:\*?(?P<axis>[xyz]))?|(?P<bare>[xyz])(?:/(?P<div>\d+))?")
#: The most symmetry operations any site can be fixed by (point group m-3m): an atom has at least
#: (operations / 48) images, the lower bound used on the site count before expansion.
MAX_SITE_SYMMETRY = 48


def operation_problem(op: str) -> Optional[str]:
    """Why one ``x,y,z``-style operation is not an affine map with finite rational translations, else ``None``.

    ``-x+1/inf`` (a corrupted ``1/4``) was accepted by pymatgen and generated an extra atom.
    A fourth component (``+1``/``-1``, time reversal of magnetic CIFs) is allowed.
    """
    parts = op.replace(" ", "").replace("'", "").replace('"', "").lower().split(",")
    if len(parts) == 4 and parts[3] in ("1", "+1", "-1"):
        parts = parts[:3]
    if len(parts) != 3:
        return f"symmetry operation {op!r} has {len(parts)} components, not 3"
    for part in parts:
        terms = _TERM.findall(part)
        if not terms or "".join(terms) != part:
            return f"symmetry operation {op!r}: component {part!r} is not a sum of terms"
        axes = 0
        for term in terms:
            match = _TERM_BODY.fullmatch(term.lstrip("+-"))
            if match is None:
                return f"symmetry operation {op!r}: term {term!r} is neither a coordinate nor a number"
            if match["den"] is not None and float(match["den"]) == 0 or match["div"] is not None and int(match["div"]) == 0:
                return f"symmetry operation {op!r}: term {term!r} divides by zero"
            if match["axis"] or match["bare"]:
                axes += 1
            elif not math.isfinite(float(Fraction(match["num"]) / Fraction(match["den"] or "1"))):
                return f"symmetry operation {op!r}: translation {term!r} is not finite"
        if axes == 0:
            return f"symmetry operation {op!r}: component {part!r} names no coordinate (the map would not be invertible)"
    return None


def operations_problem(ops: list[str], where: str) -> Problem:
    """``parse_error`` naming the first listed operation that is not a finite affine map."""
    for op in ops:
        problem = operation_problem(op)
        if problem:
            return "parse_error", f"{where}: {problem}"
    return None


def expansion_problem(positions: list[tuple[str, str, str]], n_ops: int, where: str, opts: ValidationOptions) -> Problem:
    """``too_many_sites`` when the expanded cell must hold more than ``opts.max_sites`` sites.

    Each distinct listed position has at least ``n_ops / 48`` images (no site symmetry is larger
    than m-3m's 48 operations), so a block refused here is refused for certain, before any expansion.
    """
    distinct = len(set(positions))
    at_least = distinct * max(1, n_ops // MAX_SITE_SYMMETRY)
    if at_least > opts.max_sites:
        return "too_many_sites", (f"{where}: {distinct} distinct atom positions x {n_ops} symmetry operations expand "
                                  f"to at least {at_least} sites, above the cap of {opts.max_sites} (--max-sites); "
                                  f"not expanded")
    return None


def cell_parameters_problem(values: list[float], where: str, opts: ValidationOptions) -> Problem:
    """``bad_cell`` for cell parameters (a, b, c in Å, angles in degrees) outside the validation bounds."""
    if not all(math.isfinite(v) for v in values):
        named = ", ".join(f"{k}={v}" for k, v in zip(("a", "b", "c", "alpha", "beta", "gamma"), values) if not math.isfinite(v))
        return "non_finite", f"{where}: cell parameters {named} are not finite"
    a, b, c = values[:3]
    cosines = [math.cos(math.radians(v)) for v in values[3:]]
    shape = 1 - sum(x * x for x in cosines) + 2 * cosines[0] * cosines[1] * cosines[2]
    volume = a * b * c * math.sqrt(max(shape, 0.0))
    problem = cell_problem((a, b, c), volume, 0, opts)
    return (problem[0], f"{where}: {problem[1]}") if problem else None
