"""The pure, per-record half of ingest that runs in worker processes: read, validate, symmetry, hash.

Nothing here touches the database (maggma's ``process_item``): a work unit goes
in, plain picklable dicts come out, ready for :mod:`xtalbase.ingest.writer`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np

from xtalbase.ingest.formats import MAX_DECOMPRESSED_BYTES, decompression_cap, read_structures
from xtalbase.ingest.identity import (
    DEFAULT_ENGINE,
    DEFAULT_SYMPREC,
    HASH_VERSION,
    canonical_hash,
    exact_hash,
    letter_counts,
    site_labels,
    symmetry,
)
from xtalbase.ingest.records import Known, ReadError, Record
from xtalbase.ingest.validate import ValidationOptions, check, warnings_for
from xtalbase.platform.budgets import BudgetExceeded, mark, retire
from xtalbase.platform.hashing import sha256_bytes
from xtalbase.schema.arrays import F8, U1, pack

#: Quarantined records keep their text when at most this many characters; else only hash and size.
MAX_RAW_TEXT = 65_536
AMU_TO_G_PER_CM3 = 1.66053906660  # (amu / Å^3) -> g/cm^3; masses are pymatgen's, as in Structure.density


@dataclass(frozen=True)
class PrepareOptions:
    """Per-run settings the workers need (picklable)."""

    symprec: float = DEFAULT_SYMPREC
    symmetry_engine: str = DEFAULT_ENGINE
    all_steps: bool = False
    poscar_species: Optional[str] = None
    validation: ValidationOptions = field(default_factory=ValidationOptions)
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES


@dataclass
class WorkUnit:
    """One file, or a share of the rows of a multi-record file, for one worker call."""

    path: str
    format: str
    skip: frozenset[str] = frozenset()
    rows: Optional[list] = None
    #: ``(where, reason, message)`` of records passed over after they ran past a budget (:func:`pass_over`).
    passed: tuple[tuple[str, str, str], ...] = ()


def prepare_unit(unit: WorkUnit, options: PrepareOptions) -> list[dict[str, Any]]:
    """Read ``unit`` and turn each record into a ``record``, ``quarantine`` or ``known`` item (dicts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library notes (pymatgen, ASE) are not the user's business; readers record their own
        with decompression_cap(options.max_decompressed_bytes):
            return _prepare_unit(unit, options)


def _prepare_unit(unit: WorkUnit, options: PrepareOptions) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # readers take the validation bounds to refuse a bad cell or site count before parsing builds it
    for item in _watched(unit, read_structures(unit.path, unit.format, skip=unit.skip, all_steps=options.all_steps,
                                               rows_=unit.rows, species=options.poscar_species,
                                               validation=options.validation)):
        if isinstance(item, Known):
            out.append({"kind": "known", "locator": item.locator})
        elif isinstance(item, ReadError):
            out.append(quarantine_item(item.locator, item.reason, item.message, item.raw_text))
        else:
            try:
                out.append(prepare_record(item, options, unit.path))
            except Exception as exc:  # noqa: BLE001 - one odd record must not stop the file
                out.append(quarantine_item(item.locator, failure_reason(exc),
                                           f"{unit.path} [{item.locator}]: {type(exc).__name__}: {str(exc)[:300]}", item.raw_text))
    return out


#: The label of the work between two records (what a reader does to reach the next one), before the locator of the
#: record it follows ("" before the first).
READING = "reading after "


def _watched(unit: WorkUnit, items: Iterator[Any]) -> Iterator[Any]:
    """``items`` read from ``unit`` with each record's time budget started (:func:`~xtalbase.platform.budgets.mark`):
    one for reading up to the record, one for preparing it. Records of ``unit.passed`` come out quarantined."""
    passed = {where: (reason, message) for where, reason, message in unit.passed}
    previous = ""
    while True:
        where = READING + previous
        if where in passed:  # the reader itself hung here: what follows in the file cannot be reached
            yield ReadError(f"after={previous}"[:255] if previous else "file", *passed[where])
            return
        mark(f"{unit.path}\n{where}")
        try:
            item = next(items)
        except StopIteration:
            return
        if isinstance(item, ReadError) and item.reason == "memory_limit":
            retire()
        if isinstance(item, Record) and item.locator in passed:
            yield ReadError(item.locator, *passed[item.locator], item.raw_text)
        else:
            mark(f"{unit.path}\n{item.locator}")
            yield item
        previous = item.locator


def failure_reason(exc: BaseException) -> str:
    """The quarantine reason of an exception met while reading or preparing: ``memory_limit`` (and the worker
    retired) for a ``MemoryError``, else ``parse_error``."""
    if isinstance(exc, MemoryError):  # the worker's memory cap: the record is at fault, the worker is replaced
        retire()
        return "memory_limit"
    return "parse_error"


def pass_over(args: tuple, exceeded: BudgetExceeded) -> Optional[tuple]:
    """The arguments of :func:`xtalbase.ingest.pipeline.prepare_units` to run a task again with after one of its
    records ran past the time budget (reason ``timeout``) or its worker died on it (``memory_limit``); ``None``
    when the record cannot be told (it is then an error of the run)."""
    units, options = args
    path, newline, where = exceeded.label.partition("\n")
    index = next((i for i, u in enumerate(units) if u.path == path), None)
    if not newline or index is None or any(where == w for w, _, _ in units[index].passed):
        return None
    at = f"{path} [{where}]"
    if exceeded.reason == "timeout":
        entry = (where, "timeout", f"{at}: stopped after {exceeded.seconds:.1f} s, past the per-record budget "
                                   f"(record_timeout); the worker was replaced")
    else:
        entry = (where, "memory_limit", f"{at}: the worker process died on this record ({exceeded.detail}): out of "
                                        f"memory, or a crash in compiled code; the worker was replaced")
    unit = units[index]
    units = [*units[:index], dataclasses.replace(unit, passed=(*unit.passed, entry)), *units[index + 1:]]
    return units, options


def quarantine_item(locator: str, reason: str, message: str, raw_text: Optional[str]) -> dict[str, Any]:
    """A quarantine item; large raw records, and POTCAR text (licensed), keep only their hash and size."""
    item: dict[str, Any] = {"kind": "quarantine", "locator": locator[:255], "reason": reason, "message": message,
                            "raw_text": None, "raw_hash": None, "raw_size": None}
    if raw_text is not None:
        if len(raw_text) <= MAX_RAW_TEXT and not ("TITEL" in raw_text and "POMASS" in raw_text):  # never POTCAR text
            item["raw_text"] = raw_text
        else:
            item["raw_hash"] = sha256_bytes(raw_text.encode())
            item["raw_size"] = len(raw_text)
    return item


def prepare_record(record: Record, options: PrepareOptions, path: str) -> dict[str, Any]:
    """Validate one record and compute its ``structures`` row, element amounts, source and calculation fields."""
    problem = check(record, options.validation)
    if problem:
        return quarantine_item(record.locator, problem[0], f"{path} [{record.locator}]: {problem[1]}", record.raw_text)
    cell = np.ascontiguousarray(record.cell, dtype=float)
    frac = np.ascontiguousarray(record.frac_coords, dtype=float)
    numbers = np.array([_atomic_number(max(occ, key=occ.get)) for occ in record.species], dtype=np.uint8)
    ordered = all(len(o) == 1 and abs(next(iter(o.values())) - 1.0) < 1e-6 for o in record.species)
    occupancies = None if ordered else [{k: float(v) for k, v in occ.items()} for occ in record.species]
    labels = site_labels(record.species)
    lattice = _lattice(cell)
    elements: dict[str, float] = {}
    for occ in record.species:
        for el, amount in occ.items():
            elements[el] = elements.get(el, 0.0) + float(amount)
    formulas = dict(_formulas(tuple(elements.items())))
    weight = formulas.pop("weight")  # amu per cell
    derived = {**lattice, "density": weight * AMU_TO_G_PER_CM3 / lattice["volume"]}
    bad = [name for name, value in derived.items() if not math.isfinite(value)]
    if bad:  # validation bounds the cell; this guards the row itself, whatever the bounds are set to
        return quarantine_item(record.locator, "non_finite", f"{path} [{record.locator}]: derived "
                               f"{', '.join(f'{n}={derived[n]}' for n in bad)} not finite", record.raw_text)
    sym = symmetry(cell, frac, labels, options.symprec, options.symmetry_engine)
    row = {
        "exact_hash": exact_hash(cell, numbers, frac, occupancies),
        "canonical_hash": canonical_hash(labels, sym),
        "hash_version": HASH_VERSION,
        **formulas,
        "nsites": len(record.species),
        **lattice,
        "density": derived["density"],
        "cell": pack(cell, F8), "numbers": pack(numbers, U1), "frac_coords": pack(frac, F8),
        "site_occupancies": occupancies,
        "spacegroup_number": sym.number if sym else None,
        "spacegroup_symbol": sym.symbol if sym else None,
        "crystal_system": sym.crystal_system if sym else None,
        "symprec": options.symprec,
    }
    raw = record.raw_text
    return {
        "kind": "record", "locator": record.locator[:255], "structure": row, "elements": elements,
        "source": {"database": record.database, "external_id": record.external_id,
                   "raw_hash": sha256_bytes(raw.encode()) if raw is not None else row["exact_hash"],
                   "warnings": (record.warnings + warnings_for(record, elements)) or None},
        "properties": finite_properties(record.properties),
        "calculation": _calculation(record),
        # per-primitive-cell counts of (label, Wyckoff letter): lets the writer tell apart arrangements of one key
        "letters": None if sym is None else [sym.number, sorted([label, letter, n] for (label, letter), n in
                                                                letter_counts(labels, sym.wyckoffs, sym.n_primitive).items())],
    }


def finite_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """``properties`` with non-finite numbers as text (``Infinity``, ``-Infinity``, ``NaN``, as JSON writes them).

    Stored as numbers they would vanish (SQLite keeps NaN as NULL) or pass range filters (``inf > 0``);
    ``docs/ingest.md`` promises text.
    """
    return {k: (json.dumps(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in properties.items()}


def _calculation(record: Record) -> Optional[dict[str, Any]]:
    calc = record.calculation
    if calc is None:
        return None
    n = len(record.species)
    return {
        "code": calc.code, "code_version": calc.code_version, "functional": calc.functional,
        "parameters": calc.parameters or {}, "ionic_step": calc.ionic_step,
        "energy": None if calc.energy is None else float(calc.energy),
        "energy_per_atom": None if calc.energy is None else float(calc.energy) / n,
        "forces": None if calc.forces is None else pack(np.asarray(calc.forces, dtype=float).reshape(n, 3), F8),
        "stress": None if calc.stress is None else pack(np.asarray(calc.stress, dtype=float).reshape(3, 3), F8),
        "energy_unit": "eV", "forces_unit": "eV/Å", "stress_unit": calc.stress_unit if calc.stress is not None else None,
        "converged": calc.converged, "electronic_converged": calc.electronic_converged,
        "ionic_converged": calc.ionic_converged,
    }


@functools.lru_cache(maxsize=None)
def _atomic_number(symbol: str) -> int:
    from ase.data import atomic_numbers

    return atomic_numbers[symbol]


@functools.lru_cache(maxsize=65536)  # data sets repeat compositions (AIMD frames, Perov-5); Composition is slow
def _formulas(amounts: tuple[tuple[str, float], ...]) -> dict[str, Any]:
    from pymatgen.core import Composition

    elements = dict(amounts)
    comp = Composition(elements)
    return {"formula_reduced": comp.reduced_formula, "formula_anonymous": comp.anonymized_formula,
            "chemical_system": "-".join(sorted(elements)), "nelements": len(elements),
            "weight": sum(_atomic_mass(el) * amount for el, amount in elements.items())}


@functools.lru_cache(maxsize=None)
def _atomic_mass(symbol: str) -> float:
    """pymatgen's atomic mass in amu (cached: ``Element.atomic_mass`` carries units and is slow)."""
    from pymatgen.core import Element

    return float(Element(symbol).atomic_mass)


def _lattice(cell: np.ndarray) -> dict[str, float]:
    # Plain floats: numpy's per-call overhead on a 3x3 cell outweighs the arithmetic (0.039 -> 0.008 ms per record).
    rows = cell.tolist()
    lengths = [math.sqrt(x * x + y * y + z * z) for x, y, z in rows]

    def angle(i: int, j: int) -> float:
        cos = sum(u * v for u, v in zip(rows[i], rows[j])) / (lengths[i] * lengths[j])
        return math.degrees(math.acos(min(1.0, max(-1.0, cos))))

    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = rows
    volume = abs(ax * (by * cz - bz * cy) - ay * (bx * cz - bz * cx) + az * (bx * cy - by * cx))
    return {"a": lengths[0], "b": lengths[1], "c": lengths[2],
            "alpha": angle(1, 2), "beta": angle(0, 2), "gamma": angle(0, 1), "volume": volume}
