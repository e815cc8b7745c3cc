"""VASP POSCAR/CONTCAR reader (pymatgen ``Poscar``), VASP 4 and 5 layouts.

Element names come from the species line (VASP 5). Without one (VASP 4), from
per-site labels after the coordinates (``0.5 0.5 0.5 Na1``, never
selective-dynamics ``T``/``F`` flags); else from the ``TITEL`` lines of a
``POTCAR`` in the same folder (what VASP itself uses; only the element names are
read); else from the comment line, which is free text: used when it is one bare
element symbol per type (``Ti O``, as ASE writes VASP 4 files) or a formula whose
amounts are proportional to the counts (``Li4Mn2O6 (C2/m)``), never an ordinary
word such as ``Primitive``; pymatgen's spaced formula (``Sr1 Ti1 O3``, in
electronegativity order) cannot order types with equal counts and is refused. The
source notes where the names came from, and a comment that disagrees. A file that
names no elements anywhere is rejected as ``unknown_element`` unless the caller
says what the types are (``species``): a comma list in type order (``"Si,O"``,
the POTCAR order), or ``"placeholder"`` to store atom type *i* as the element with
atomic number *i* (H, He, Li, ...), which keeps geometry and symmetry (spglib's own
test cells are such files) and is flagged with a ``species_placeholder`` warning.

The layout is checked before pymatgen reads it: an empty file, or one that ends
before all counted positions, is ``truncated_file``; position lines beyond the
counts (without the blank line that starts a velocity block) are a
``parse_error``. Three scaling factors (per Cartesian axis, VASP wiki) are applied
as ASE applies them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from xtalbase.ingest.formats import Reader, open_text
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

    Only when the file has no species line are the per-site labels, then a POTCAR
    in ``folder``, then the comment line, then ``species`` consulted (so a VASP 5
    CONTCAR never costs a POTCAR read).
    """
    import warnings

    from pymatgen.io.vasp import Poscar

    lines = text.splitlines()
    header = _check_header(lines, where)
    if header is not None:
        return ReadError(locator, header[0], header[1], text)
    cell_rows = lines[2:5]
    counts_line = 5 if lines[5].split() and lines[5].split()[0].isdigit() else 6
    try:
        counts = [int(x) for x in lines[counts_line].split()]
        if not counts or min(counts) < 0:
            raise ValueError
    except (ValueError, IndexError):
        return ReadError(locator, "parse_error", f"{where}: line {counts_line + 1} should hold the atom counts", text)
    if len(lines) <= counts_line + 1:
        return ReadError(locator, "missing_coordinates", f"{where}: no coordinate mode line or positions after the "
                                                         f"atom counts", text)
    start, _ = _coordinate_lines(lines, counts_line)
    positions = _check_positions(lines, start, sum(counts), where)
    if positions is not None:
        return ReadError(locator, positions[0], positions[1], text)
    names = None
    notes: list[str] = []
    if counts_line == 5:
        names, notes, problem = _vasp4_names(lines, counts, species, folder, where)
        if problem:
            return ReadError(locator, "unknown_element", problem, text)
    else:
        for name in lines[5].split():
            if element_of(name) is None:
                return ReadError(locator, "unknown_element", f"{where}: species {name!r} is not a chemical element", text)
        if len(lines[5].split()) != len(counts):
            return ReadError(locator, "parse_error", f"{where}: the species line names {len(lines[5].split())} elements "
                                                     f"but the counts line gives {len(counts)} counts", text)
    scale = scale_tokens(lines[1])
    cartesian = lines[start - 1].strip()[:1].lower() in ("c", "k")
    if len(scale) == 3:
        parsed = _with_scale_applied(lines, scale, start, sum(counts), cartesian)
    elif len(lines[1].split()) > 1:  # "1.0  ! lattice constant": pymatgen reads only a bare number
        parsed = "\n".join(lines[:1] + scale + lines[2:]) + "\n"
    else:
        parsed = text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            poscar = Poscar.from_str(parsed, default_names=names, read_velocities=False)
        except Exception as exc:  # noqa: BLE001 - pymatgen raises ValueError/IndexError for malformed files
            return ReadError(locator, "parse_error", f"{where}: cannot read POSCAR: {type(exc).__name__}: {str(exc)[:200]}", text)
    coords = [tok for line in lines[start:start + len(poscar.structure)] for tok in line.split()[:3]]
    raw = {"scale": scale, "cell_vectors": [t for row in cell_rows for t in row.split()[:3]],
           ("cart_coords" if cartesian else "coords"): coords}
    return record_from_pymatgen(poscar.structure, locator, raw_text=text, warnings=notes, raw_values=raw)


def _check_header(lines: list[str], where: str) -> tuple[str, str] | None:
    """``(reason, message)`` when the comment, scale and lattice lines are not a POSCAR header."""
    if not any(line.strip() for line in lines):
        return "truncated_file", f"{where}: the file is empty (a CONTCAR of a job stopped before its first ionic step?)"
    scale = scale_tokens(lines[1]) if len(lines) > 1 else []
    if not scale:
        return "parse_error", f"{where}: line 2 should be the scaling factor (one number, or three): not a POSCAR"
    if len(scale) == 3 and any(float(x) <= 0 for x in scale):
        return "parse_error", f"{where}: three scaling factors must all be positive (line 2)"
    if len(lines) < 6:
        return "truncated_file", f"{where}: the file ends after {len(lines)} lines, before the lattice vectors and counts"
    if not all(len(row.split()) >= 3 and _floats(row.split()[:3]) for row in lines[2:5]):
        return "missing_cell", f"{where}: lines 3-5 are not three lattice vectors"
    return None


def _check_positions(lines: list[str], start: int, total: int, where: str) -> tuple[str, str] | None:
    """``(reason, message)`` when the position block does not hold exactly the counted atoms."""
    found = 0
    for line in lines[start:start + total]:
        if not _floats(line.split()[:3]) or len(line.split()) < 3:
            break
        found += 1
    if found == 0:
        return "missing_coordinates", f"{where}: the counts line gives {total} atoms but no positions follow"
    if found < total:
        return "truncated_file", f"{where}: {found} of {total} positions (the file ends early or a position line is cut)"
    after = lines[start + total].split() if start + total < len(lines) else []
    if len(after) >= 3 and _floats(after[:3]):
        return "parse_error", (f"{where}: the counts line gives {total} atoms but more position lines follow (a velocity "
                               f"block starts after a blank line): the counts and positions disagree")
    return None


def scale_tokens(line: str) -> list[str]:
    """The scaling factor tokens of line 2: one number (a negative one is the volume) or three; ``[]`` if neither."""
    tokens = line.split()
    if len(tokens) >= 3 and _floats(tokens[:3]):
        return tokens[:3]
    if len(tokens) >= 2 and _floats(tokens[:2]):
        return []
    return tokens[:1] if _floats(tokens[:1]) else []


def _floats(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return bool(tokens)


def _with_scale_applied(lines: list[str], scale: list[str], start: int, total: int, cartesian: bool) -> str:
    """The text with VASP's three per-axis scaling factors multiplied into the vectors (and Cartesian positions)."""
    factors = [float(x) for x in scale]
    out = list(lines)
    out[1] = "1.0"

    def scaled(line: str) -> str:
        parts = line.split()
        return " ".join([f"{float(v) * f:.12g}" for v, f in zip(parts[:3], factors)] + parts[3:])

    for i in range(2, 5):
        out[i] = scaled(lines[i])
    if cartesian:
        for i in range(start, start + total):
            out[i] = scaled(lines[i])
    return "\n".join(out) + "\n"


def _vasp4_names(lines: list[str], counts: list[int], species: str | None, folder: Path | None,
                 where: str) -> tuple[list[str] | None, list[str], str | None]:
    """Element names of a file without a species line: ``(names, source notes, problem)``.

    Site labels first (they sit on the very atoms), then a POTCAR beside the file
    (what VASP itself uses), then the comment line (free text: only element symbols,
    or a formula whose amounts fix the type order), then the caller's ``species``.
    """
    comment, ambiguous = _names_from_comment(lines[0], counts)
    for source, found in (("the site labels", lambda: _names_from_sites(lines, 5, counts)),
                          ("the POTCAR beside the file", lambda: _potcar_names(folder) if folder is not None else None)):
        names = found()
        if names is not None and len(names) == len(counts):
            notes = [f"poscar: element names read from {source} ({' '.join(names)})"]
            if comment is not None and comment != names:
                notes.append(f"poscar: the comment line names {' '.join(comment)}; the names from {source} are used")
            return names, notes, None
    if comment is not None:
        return comment, [f"poscar: element names read from the comment line ({' '.join(comment)})"], None
    names, problem = _names_given(species, len(counts), where)
    if problem and ambiguous and not species:
        problem += (f" (the comment's formula {lines[0].strip()!r} cannot tell the order of atom types with equal "
                    f"counts)")
    if problem:
        return None, [], problem
    notes = [f"species_placeholder: the file names no elements; atom type i is stored as the element with "
             f"atomic number i ({', '.join(names)}): geometry and symmetry are real, chemistry is not"] \
        if species == PLACEHOLDER else [f"poscar: element names given by the caller ({','.join(names)})"]
    return names, notes, None


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


def _names_from_comment(comment: str, counts: list[int]) -> tuple[list[str] | None, bool]:
    """Element names per type from the comment line, and whether a formula there was refused as ambiguous.

    A comment of bare element symbols, one per type (``Ti O``, as ASE writes VASP 4
    files), names the types in order whatever the counts. A formula (``Li4Mn2O6 (C2/m)``,
    ``Cu3Au``) is used when its amounts are proportional to the counts. A compact formula
    (one word, as spglib's test cells and hand-written files have) is taken in type
    order; a spaced one with two types of equal count is refused: that is pymatgen's
    ``Structure.formula`` (``Sr1 Ti1 O3``), written in electronegativity order, not type order.
    """
    words = comment.split()
    if words and len(words) == len(counts) and all(element_of(w) == w for w in words):
        return words, False
    for candidate in (words, words[:1]):  # the whole line ("Si1 O2"), or its first word ("Li4Mn2O6 (C2/m)")
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
            if len(candidate) > 1 and len(set(counts)) < len(counts):
                return None, True  # "Sr1 Ti1 O3": pymatgen's spaced formula, in electronegativity order
            return found, False
    return None, False


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


def _sniff(head: str) -> bool:
    lines = head.splitlines()
    if len(lines) < 8:
        return False
    try:
        float(lines[1].split()[0])
        vectors = all(len(lines[i].split()) >= 3 and all(_is_float(x) for x in lines[i].split()[:3]) for i in (2, 3, 4))
    except (IndexError, ValueError):
        return False
    # the coordinate mode line (Direct / Cartesian, after an optional Selective dynamics line) follows the counts
    modes = [lines[i].strip()[:1].lower() for i in (6, 7) if i < len(lines) and lines[i].strip()]
    return vectors and any(m in ("d", "c", "k", "s") for m in modes)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


READER = Reader("poscar", read, ("POSCAR*", "CONTCAR*", "*.vasp", "*.poscar"), _sniff, "VASP POSCAR/CONTCAR",
                name_needs_content=True, name_decides_on_doubt=True)
