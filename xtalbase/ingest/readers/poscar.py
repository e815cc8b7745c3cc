"""VASP POSCAR/CONTCAR reader (pymatgen ``Poscar``), VASP 4 and 5 layouts.

Element names come from the species line (VASP 5); else from the comment line
when its first word, or the whole line, is element symbols with counts and
nothing else, one element per type (``Li4Mn2O6 (C2/m)``, ``Si O``: never an
ordinary word such as ``Primitive`` or ``Cubic``); else from per-site labels
after the coordinates (``0.5 0.5 0.5 Na1``, never selective-dynamics ``T``/``F``
flags); both are noted on the source; else from the
``TITEL`` lines of a ``POTCAR`` in the same folder (as VASP itself does; only the
element names are read). A file that names no elements anywhere is rejected as
``unknown_element`` unless the caller says what the types are (``species``):
a comma list in type order (``"Si,O"``, the POTCAR order), or ``"placeholder"``
to store atom type *i* as the element with atomic number *i* (H, He, Li, ...),
which keeps geometry and symmetry (spglib's own test cells are such files) and
is flagged on the source with a ``species_placeholder`` warning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from xtalbase.ingest.formats import open_text
from xtalbase.ingest.readers.cif import element_of
from xtalbase.ingest.records import ReadError, Record, record_from_pymatgen

_ELEMENT_AMOUNT = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d+)?)?")
#: A word that is only element symbols with optional counts (``Li4Mn2O6``, ``Si``, ``Fe0.5``).
_FORMULA_WORD = re.compile(r"^(?:[A-Z][a-z]?(?:\d+(?:\.\d+)?)?)+$")
_TITEL = re.compile(r"^\s*TITEL\s*=\s*\S+\s+([A-Za-z]{1,2})", re.MULTILINE)
LOCATOR = "index=0"
#: ``species`` value that stores atom type i as the element with atomic number i.
PLACEHOLDER = "placeholder"


def read(path: Path, *, species: str | None = None, **_: object) -> Iterator[Record | ReadError]:
    """Yield the single structure of a POSCAR/CONTCAR file (``species``: see the module notes)."""
    with open_text(path) as fh:
        text = fh.read()
    yield parse_poscar(text, str(path), species=species, folder=path.parent)


def parse_poscar(text: str, where: str, locator: str = LOCATOR, *, species: str | None = None,
                 folder: Path | None = None) -> Record | ReadError:
    """Parse POSCAR text; ``where`` names the record in messages.

    Only when the file itself names no elements are a POTCAR in ``folder`` and then
    ``species`` consulted (so a run folder's CONTCAR never costs a POTCAR read).
    """
    import warnings

    from pymatgen.io.vasp import Poscar

    lines = text.splitlines()
    if len(lines) < 8:
        return ReadError(locator, "missing_coordinates", f"{where}: POSCAR has {len(lines)} lines, too short for a cell and positions", text)
    cell_rows = lines[2:5]
    try:
        [float(x) for row in cell_rows for x in row.split()[:3]]
        if any(len(row.split()) < 3 for row in cell_rows):
            raise ValueError
    except ValueError:
        return ReadError(locator, "missing_cell", f"{where}: lines 3-5 are not three lattice vectors", text)
    counts_line = 5 if lines[5].split() and lines[5].split()[0].isdigit() else 6
    has_species_line = counts_line == 6
    names = None
    notes: list[str] = []
    if not has_species_line:
        try:
            counts = [int(x) for x in lines[counts_line].split()]
        except ValueError:
            return ReadError(locator, "parse_error", f"{where}: line {counts_line + 1} should hold the atom counts", text)
        names = _names_from_comment(lines[0], counts)
        if names is not None:
            notes = [f"poscar: element names read from the comment line ({' '.join(names)})"]
        else:
            names = _names_from_sites(lines, counts_line, counts)
            notes = [f"poscar: element names read from the site labels ({' '.join(names)})"] if names else []
        potcar = _potcar_names(folder) if names is None and folder is not None else None
        if names is None and potcar is not None and len(potcar) == len(counts):
            names, notes = potcar, ["poscar: element names taken from the POTCAR beside the file"]
        elif names is None:
            names, problem = _names_given(species, len(counts), where)
            if problem:
                return ReadError(locator, "unknown_element", problem, text)
            notes = [f"species_placeholder: the file names no elements; atom type i is stored as the element with "
                     f"atomic number i ({', '.join(names)}): geometry and symmetry are real, chemistry is not"] \
                if species == PLACEHOLDER else [f"poscar: element names given by the caller ({','.join(names)})"]
    else:
        for name in lines[5].split():
            if element_of(name) is None:
                return ReadError(locator, "unknown_element", f"{where}: species {name!r} is not a chemical element", text)
        names_count, counts_count = len(lines[5].split()), len(lines[6].split()) if len(lines) > 6 else 0
        if names_count != counts_count:
            return ReadError(locator, "parse_error", f"{where}: the species line names {names_count} elements but the "
                                                     f"counts line gives {counts_count} counts", text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            poscar = Poscar.from_str(text, default_names=names, read_velocities=False)
        except Exception as exc:  # noqa: BLE001 - pymatgen raises ValueError/IndexError for malformed files
            return ReadError(locator, "parse_error", f"{where}: cannot read POSCAR: {type(exc).__name__}: {str(exc)[:200]}", text)
    start, _ = _coordinate_lines(lines, counts_line)
    coords = [tok for line in lines[start:start + len(poscar.structure)] for tok in line.split()[:3]]
    return record_from_pymatgen(poscar.structure, locator, raw_text=text, warnings=notes,
                                raw_values={"cell_vectors": [t for row in cell_rows for t in row.split()[:3]], "coords": coords})


def _names_given(species: str | None, ntypes: int, where: str) -> tuple[list[str], str | None]:
    """Element names from the caller's ``species`` option, or the reason they cannot be used."""
    if not species:
        return [], (f"{where}: POSCAR names no elements (no species line, no element per type in the comment line, "
                    f"no site labels, no POTCAR beside it); give them with --poscar-species Si,O (type order) or "
                    f"--poscar-species placeholder")
    if species == PLACEHOLDER:
        from ase.data import chemical_symbols

        if ntypes >= len(chemical_symbols):
            return [], f"{where}: {ntypes} atom types is more than there are elements for placeholders"
        return list(chemical_symbols[1:ntypes + 1]), None
    names = [n.strip() for n in species.split(",") if n.strip()]
    bad = [n for n in names if element_of(n) != n]
    if bad:
        return [], f"{where}: --poscar-species names {', '.join(map(repr, bad))}, which are not chemical elements"
    if len(names) != ntypes:
        return [], f"{where}: --poscar-species gives {len(names)} element names but the file has {ntypes} atom types"
    return names, None


def _potcar_names(folder: Path) -> list[str] | None:
    """Element names from the ``TITEL`` lines of a POTCAR in ``folder`` (VASP's own source of names)."""
    for name in ("POTCAR", "POTCAR.gz"):
        candidate = folder / name
        if candidate.is_file():
            try:
                with open_text(candidate) as fh:
                    found = [element_of(m) for m in _TITEL.findall(fh.read())]
            except (OSError, EOFError, UnicodeDecodeError):
                return None
            return None if None in found else found
    return None


def _names_from_comment(comment: str, counts: list[int]) -> list[str] | None:
    """One element per type from a formula-only comment whose amounts (1 when omitted) are proportional to ``counts``."""
    words = comment.split()
    for candidate in (words, words[:1]):  # the whole line ("Si O"), or its first word ("Li4Mn2O6 (C2/m)")
        if not candidate or not all(_FORMULA_WORD.match(w) for w in candidate):
            continue
        amounts: dict[str, float] = {}
        for symbol, amount in _ELEMENT_AMOUNT.findall("".join(candidate)):
            amounts[symbol] = amounts.get(symbol, 0.0) + float(amount or 1)
        found = list(amounts)
        if len(found) != len(counts) or any(element_of(f) != f for f in found):
            continue
        ratio = counts[0] / amounts[found[0]]
        if all(abs(counts[i] - ratio * amounts[f]) < 1e-6 * max(counts[i], 1) for i, f in enumerate(found)):
            return found
    return None


def _coordinate_lines(lines: list[str], counts_line: int) -> tuple[int, bool]:
    """Index of the first coordinate line, and whether a ``Selective dynamics`` line precedes the mode line."""
    selective = lines[counts_line + 1].strip()[:1].lower() == "s"
    return counts_line + (3 if selective else 2), selective


def _names_from_sites(lines: list[str], counts_line: int, counts: list[int]) -> list[str] | None:
    start, selective = _coordinate_lines(lines, counts_line)
    names, row = [], start
    for count in counts:
        parts = lines[row].split() if row < len(lines) else []
        # after x y z (and the three T/F flags of selective dynamics, which are not fluorine labels)
        extra = [p.lstrip("!#") for p in parts[6 if selective else 3:]]
        extra = [p for p in extra if p]
        label = extra[0] if extra else ""
        element = element_of(label) if label else None
        if element is None:
            return None
        names.append(element)
        row += count
    return names
