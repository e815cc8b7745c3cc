"""Extended XYZ reader (ASE): every frame is a record ``frame=<i>``.

Energy (eV), forces (eV/Å) and stress become a calculation; stress is kept as
ASE reads it (eV/Å³, Voigt order made 3x3), ``stress_unit="eV/Å^3"``. Besides
ASE's own names (``energy``, ``forces``, ``stress``), the spellings of common
MLIP data sets are read (case ignored): ``REF_energy``/``dft_energy``/
``total_energy``, ``REF_forces``/``dft_forces``/``force``, ``REF_stress``/
``dft_stress``, and ``virial`` (eV per cell; stored as stress = -virial / volume).
All three quantities come from one family of names: a frame holding reference
(``REF_*``, ``DFT_*``) and plain values (a model's predictions beside the DFT
labels, as MACE and NequIP evaluation files do) is stored with the reference ones.
Frames are parsed one at a time, so a bad frame is quarantined on its own. A large file is shared among the
workers: the main process streams its frames (:func:`split`) and each worker parses a share of them.
"""

from __future__ import annotations

import io
import itertools
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xtalbase.ingest.formats import Reader, open_text, read_failure
from xtalbase.ingest.records import Calculation, Known, ReadError, Record, record_from_ase

#: Characters of one frame held in memory (about 600,000 atoms): past it the frame's lines are counted, not kept.
#: A count line gone wrong (``1000000000000``) would otherwise pull the rest of a gigabyte file into one frame.
FRAME_CHARS = 64 << 20


class _Lines:
    """A line iterator that can take a line back (to look at the line after a frame without losing it)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines, self._back = lines, []  # type: ignore[var-annotated]
        self.failure: Exception | None = None  # met while looking ahead; raised once the frame before it is out

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        return self._back.pop() if self._back else next(self._lines)

    def push(self, line: str) -> None:
        self._back.append(line)


def _count(line: str) -> int:
    """The atom count of a count line, or -1 when the line is not one."""
    try:
        return int(line.split()[0])
    except (ValueError, IndexError):
        return -1


def _is_count_line(line: str) -> bool:
    return len(line.split()) == 1 and _count(line) >= 0


def frames(path: Path) -> Iterator[tuple[int, str | None, str, str]]:
    """``(index, frame text, reason, message)`` per frame: the atom-count line tells where each frame ends.

    Streams the file (training sets run to gigabytes). A frame whose count line is not a
    whole number of atoms ends the file's readable part (text ``None``, ``parse_error``);
    one cut short comes as far as it goes (``truncated_file``); one larger than
    :data:`FRAME_CHARS` comes cut to its start (``too_many_sites``); one whose count
    line disagrees with the atom lines that follow it (a count of 23 before 24 atoms:
    read by the count it would pair 23 atoms with the energy of 24) is ``parse_error``,
    and reading resumes at the next count line. ``reason`` is empty for a whole frame.
    """
    with open_text(path) as fh:
        lines = _Lines(fh)
        i = number = 0
        for line in lines:
            number += 1
            if not line.strip():
                continue
            natoms = _count(line)
            if natoms < 0:
                yield i, None, "parse_error", f"line {number}: expected the atom count of frame {i}, found {line.strip()[:60]!r}"
                return
            body, size, taken = [], 0, 0
            for taken, row in enumerate(itertools.islice(lines, min(natoms + 1, sys.maxsize)), 1):
                if size <= FRAME_CHARS:
                    body.append(row)
                    size += len(row)
            number += taken
            text = line + "".join(body)
            if taken < natoms + 1:
                yield i, text, "truncated_file", "the file ends inside this frame"
            elif size > FRAME_CHARS:
                yield i, text[:65536], "too_many_sites", (f"the frame declares {natoms} atoms, more than {FRAME_CHARS >> 20} "
                                                           f"MiB of text: not read")
            else:
                extra = _atom_lines_after(body[1:], lines)
                number += extra
                mismatch = _count_mismatch(natoms, body[1:], extra)
                yield (i, text, "parse_error", mismatch) if mismatch else (i, text, "", "")
                if lines.failure is not None:
                    raise lines.failure
            i += 1


def _atom_lines_after(rows: list[str], lines: _Lines) -> int:
    """Skip (and count) atom lines that follow a frame's counted rows, up to the next count line or blank line."""
    width = len(rows[0].split()) if rows else 0
    skipped = 0
    try:
        for line in lines:
            if not line.strip() or _is_count_line(line) or len(line.split()) != width:
                lines.push(line)
                break
            skipped += 1
    except Exception as exc:  # noqa: BLE001 - a cut .gz: the frame before the cut is still whole
        lines.failure = exc
    return skipped


def _count_mismatch(natoms: int, rows: list[str], extra: int) -> str:
    """Why the atom rows of a frame disagree with its count line, or ``""``."""
    if extra:
        return (f"the count line says {natoms} atoms but {natoms + extra} atom lines follow; the frame is not re-cut "
                f"(its energy belongs to all of its atoms)")
    widths = {len(row.split()) for row in rows}
    if len(widths) > 1:
        short = next(k for k, row in enumerate(rows) if len(row.split()) != len(rows[0].split()))
        return (f"the count line says {natoms} atoms but atom line {short + 1} of the frame is not an atom line "
                f"({rows[short].strip()[:60]!r}): fewer atoms than counted")
    return ""


def split(path: Path) -> Iterator[tuple[int, str | ReadError | None, str, str]]:
    """The frames of ``path`` as :func:`frames` yields them, streamed: a large trajectory's shares for the workers.

    Lazy, unlike the other readers' ``split``: the main process reads a gigabyte file only as fast as the
    workers take its shares. A read that fails part-way (a ``.gz`` cut short) ends with an item holding the
    :class:`ReadError` that reading the file whole gives at that point (never the exception itself, which
    might not survive the trip to a worker).
    """
    following = 0
    try:
        for item in frames(path):
            following = item[0] + 1
            yield item
    except Exception as exc:  # noqa: BLE001 - classified as read_structures classifies it when reading whole
        reason, what = read_failure(path, "extxyz", exc)
        yield following, ReadError("file", reason, f"{path}: {what}"), "", ""


def locator_of(item: tuple[int, Any, str, str]) -> str:
    """The locator of one :func:`split` item."""
    return f"frame={item[0]}"


def read(path: Path, *, skip: frozenset[str] = frozenset(), rows_: list[tuple[int, Any, str, str]] | None = None,
         **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield one record per frame; ``rows_`` (a share of :func:`split`) parses only those frames."""
    import ase.io
    from ase.stress import voigt_6_to_full_3x3_stress

    for i, text, reason, message in frames(path) if rows_ is None else rows_:
        locator = f"frame={i}"
        if isinstance(text, ReadError):
            yield text
            return
        if text is None:
            yield ReadError(locator, reason, f"{path} [{locator}]: {message}; this frame and any after it cannot be read")
            return
        if locator in skip:
            yield Known(locator)
            continue
        if reason:
            yield ReadError(locator, reason, f"{path} [{locator}]: {message}", text[:65536])
            continue
        unknown = unknown_species(text)
        if unknown:
            yield ReadError(locator, "unknown_element", f"{path} [{locator}]: {unknown}", text[:65536])
            continue
        try:
            atoms = ase.io.read(io.StringIO(text), format="extxyz")
        except KeyError as exc:  # ASE looks up each species symbol
            yield ReadError(locator, "unknown_element", f"{path} [{locator}]: {exc} is not a chemical element", text[:65536])
            continue
        except Exception as exc:  # noqa: BLE001 - a malformed frame is this frame's problem only
            yield ReadError(locator, "parse_error", f"{path} [{locator}]: {type(exc).__name__}: {str(exc)[:300]}",
                            text[:65536])
            continue
        if atoms.cell.rank < 3:
            yield ReadError(locator, "missing_cell", f"{path} [{locator}]: frame has no periodic 3D cell (Lattice=...)")
            continue
        if not atoms.pbc.all():
            flags = " ".join("T" if p else "F" for p in atoms.pbc)
            yield ReadError(locator, "missing_cell", f"{path} [{locator}]: frame is not periodic along all three cell "
                                                     f"vectors (pbc=\"{flags}\"); only 3D-periodic crystals are stored")
            continue
        results, used = _results(atoms)
        calc = None
        if results:
            stress = results.get("stress")
            if stress is not None:
                stress = np.asarray(stress, dtype=float)
                stress = voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress.reshape(3, 3)
            parameters = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool)) and k not in used}
            if "free_energy" in results:  # VASP-derived frames: ASE's energy is sigma->0, free_energy matches the forces
                parameters["energies"] = {"energy": float(results["energy"]), "free_energy": float(results["free_energy"])}
            version = atoms.info.get("code_version")
            calc = Calculation(code=str(atoms.info.get("code", "DFT")), energy=results.get("energy"),
                               code_version=None if version is None else str(version)[:64],
                               forces=results.get("forces"), stress=stress, stress_unit="eV/Å^3" if stress is not None else None,
                               parameters=parameters)
        yield record_from_ase(atoms, locator, calculation=calc)


_PROPERTIES = re.compile(r"""(?i)(?:^|\s)properties=(?:"([^"]*)"|'([^']*)'|(\S+))""")


def unknown_species(text: str) -> str:
    """Why a frame's species column holds something other than element symbols spelt exactly, or ``""``.

    ASE capitalises what it reads: a species ``i`` (``Si`` with its ``S`` lost) became iodine.
    """
    from ase.data import chemical_symbols

    lines = text.splitlines()
    column = _species_column(lines[1] if len(lines) > 1 else "")
    if column is None:
        return ""
    known = set(chemical_symbols[1:])
    for k, row in enumerate(lines[2:], 1):
        tokens = row.split()
        if len(tokens) > column and tokens[column] not in known:
            return f"atom {k}: species {tokens[column]!r} is not a chemical element symbol (case matters: 'Si', not 'si')"
    return ""


def _species_column(comment: str) -> int | None:
    """The column of ``species`` in the atom lines (ASE's ``Properties=name:type:count:...``), ``None`` if none."""
    match = _PROPERTIES.search(comment)
    if match is None:
        return 0  # ASE's default: species:S:1:pos:R:3
    fields = next(g for g in match.groups() if g is not None).split(":")
    column = 0
    for k in range(0, len(fields) - 2, 3):
        name, _kind, count = fields[k:k + 3]
        if name.lower() == "species":
            return column
        if not count.isdigit():
            return None
        column += int(count)
    return None


#: Families of names for (energy, forces, stress, virial), most trusted first: reference labels before plain names,
#: which a file may use for a model's predictions. Keys are compared in lower case.
FAMILIES = (
    (("ref_energy", "ref_free_energy"), ("ref_forces", "ref_force"), ("ref_stress",), ("ref_virial",)),
    (("dft_energy",), ("dft_forces", "dft_force"), ("dft_stress",), ("dft_virial",)),
    (("energy_dft",), ("forces_dft",), ("stress_dft",), ()),
    (("energy", "free_energy", "total_energy"), ("forces", "force"), ("stress",), ("virial", "virials")),
)


def _results(atoms: object) -> tuple[dict[str, object], set[str]]:
    """Energy, forces and stress of a frame from one family of names, and the info keys they came from."""
    calc = getattr(atoms, "calc", None)
    info = {k.lower(): (k, v) for k, v in atoms.info.items()}  # type: ignore[attr-defined]
    arrays = {k.lower(): (k, v) for k, v in atoms.arrays.items()}  # type: ignore[attr-defined]
    # ASE moves the plain names into a calculator; they count only for the plain family
    results = {k: (None, v) for k, v in (calc.results.items() if calc is not None else ()) if v is not None}
    for energy_keys, force_keys, stress_keys, virial_keys in FAMILIES:
        plain = energy_keys[0] == "energy"
        used: set[str] = set()

        def lookup(keys: tuple[str, ...], table: dict) -> object:
            for key in keys:
                for source in ((results, table) if plain else (table,)):
                    if key in source:
                        name, value = source[key]
                        if name is not None and source is info:
                            used.add(name)
                        return value
            return None

        found: dict[str, object] = {}
        if (energy := lookup(energy_keys, info)) is not None:
            found["energy"] = float(energy)
        if (forces := lookup(force_keys, arrays)) is not None:
            found["forces"] = np.asarray(forces, dtype=float)
        if (stress := lookup(stress_keys, info)) is not None:
            found["stress"] = np.asarray(stress, dtype=float)
        elif (virial := lookup(virial_keys, info)) is not None:
            virial = np.asarray(virial, dtype=float)
            found["stress"] = -(virial.reshape(3, 3) if virial.size == 9 else virial) / atoms.get_volume()  # type: ignore[attr-defined]
        if "energy" in found or "forces" in found:
            if plain and "free_energy" in results and "energy" in results:
                found["free_energy"] = results["free_energy"][1]
            return found, used
    return {}, set()


def _sniff(head: str) -> bool:
    lines = head.splitlines()
    return len(lines) > 1 and lines[0].strip().isdigit() and "Lattice=" in lines[1]


READER = Reader("extxyz", read, ("*.xyz", "*.extxyz"), _sniff, "extended XYZ (energy/forces/stress -> calculation)",
                yields=frozenset({"structures", "calculations"}), split=split, locator_of=locator_of)
