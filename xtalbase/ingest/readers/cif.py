"""CIF reader (pymatgen ``CifParser``): single and multi-block files, symmetry operations, occupancies.

Blocks are split on ``data_`` lines so that every block is its own record
(``block=<name>``) and one bad block never hides the others. Before parsing, the
raw block is checked for a cell, coordinates and element symbols so that those
failures get their own reason codes; the numbers exactly as written are kept for
the ``low_precision`` check.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from pathlib import Path
from typing import Any, Iterator

from xtalbase.ingest.formats import Reader, open_text
from xtalbase.ingest.readers.cif_limits import cell_parameters_problem, expansion_problem, operations_problem
from xtalbase.ingest.records import Known, ReadError, Record, record_from_pymatgen
from xtalbase.ingest.validate import ValidationOptions

CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
FRACT_TAGS = ("_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")
CARTN_TAGS = ("_atom_site_cartn_x", "_atom_site_cartn_y", "_atom_site_cartn_z")
MISSING = {"?", ".", ""}
#: Hydrogen isotopes that neutron-diffraction CIFs name as atom types (ICSD: ``D1 D``); stored as H, as pymatgen does.
ISOTOPES = {"D": "H", "T": "H"}
_SYMBOL = re.compile(r"([A-Za-z]{1,2})")
_PLAIN_ELEMENT = re.compile(
    r"^(H|He|Li|Be|B|C|N|O|F|Ne|Na|Mg|Al|Si|P|S|Cl|Ar|K|Ca|Sc|Ti|V|Cr|Mn|Fe|Co|Ni|Cu|Zn|Ga|Ge|As|Se|Br|Kr|Rb|Sr|Y|Zr|Nb|Mo|Tc|Ru"
    r"|Rh|Pd|Ag|Cd|In|Sn|Sb|Te|I|Xe|Cs|Ba|La|Ce|Pr|Nd|Pm|Sm|Eu|Gd|Tb|Dy|Ho|Er|Tm|Yb|Lu|Hf|Ta|W|Re|Os|Ir|Pt|Au|Hg|Tl|Pb|Bi|Po"
    r"|At|Rn|Fr|Ra|Ac|Th|Pa|U|Np|Pu|Am|Cm|Bk|Cf|Es|Fm|Md|No|Lr)$")
_BLOCK_START = re.compile(r"^\s*data_", re.MULTILINE)
_ANY_BLOCK_START = re.compile(r"^\s*data_", re.MULTILINE | re.IGNORECASE)
#: pymatgen ``CifBlock``'s token pattern (bare word | 'quoted' | "quoted").
_CIF_TOKEN = re.compile(r"""([^'"\s][\S]*)|'(.*?)'(?!\S)|"(.*?)"(?!\S)""")
_UNCERTAINTY_SUFFIX = re.compile(r"\(.+\)*")
#: Tags that name the database a block came from, and the name xtalbase gives that database.
DATABASE_TAGS = {"_cod_database_code": "COD", "_database_code_icsd": "ICSD", "_database_code_amcsd": "AMCSD"}


def split_blocks(text: str) -> list[tuple[str, str]]:
    """``[(block name, block text)]`` in file order; text before the first ``data_`` line is ignored.

    A ``data_`` line inside a ``;``-delimited text field (a comment that begins
    "data_ collected at 100 K") is text, not the start of a block. When a text field
    is never closed that pairing cannot be trusted, so every ``data_<name>`` line
    starts a block instead: the field cannot swallow the blocks after it, and the
    block that opened it is quarantined (:func:`unclosed_text_field`).
    """
    lines = text.splitlines(keepends=True)
    blocks, open_at_end = _scan_blocks(lines, text_fields=True)
    if open_at_end:
        blocks, _ = _scan_blocks(lines, text_fields=False)
    return [(name, "".join(block)) for name, block in blocks]


_BLOCK_HEADER = re.compile(r"^data_\S+\s*$", re.IGNORECASE)


def _scan_blocks(lines: list[str], text_fields: bool) -> tuple[list[tuple[str, list[str]]], bool]:
    """Blocks of ``lines`` (``data_`` lines in text fields skipped, or only ``data_<name>`` lines heeded), and
    whether a text field is still open at the end."""
    blocks: list[tuple[str, list[str]]] = []
    in_text_field = False
    for line in lines:
        if line.startswith(";"):
            in_text_field = not in_text_field
        stripped = line.lstrip()
        starts = (not in_text_field and stripped[:5].lower() == "data_") if text_fields else bool(_BLOCK_HEADER.match(stripped))
        if starts:
            blocks.append((stripped[5:].strip() or f"#{len(blocks)}", [line]))
        elif blocks:
            blocks[-1][1].append(line)
    return blocks, in_text_field


def block_count(text: str) -> int:
    """How many data blocks ``text`` holds, as :func:`split_blocks` counts them (one regex pass when it is one)."""
    starts = _ANY_BLOCK_START.search(text)
    if starts is None or _ANY_BLOCK_START.search(text, starts.end()) is None:
        return 1 if starts else 0
    return len(split_blocks(text))


def unclosed_text_field(block: str) -> int | None:
    """The line number (1-based, within the block) of a ``;`` text field that never closes, else ``None``."""
    if "\n;" not in block and not block.startswith(";"):
        return None  # no text field at all (MP, CDVAE and most database exports): skip the line scan
    opened = None
    for number, line in enumerate(block.splitlines(), 1):
        if line.startswith(";"):
            opened = None if opened is not None else number
    return opened


def located_blocks(text: str) -> list[tuple[str, str]] | None:
    """``[(locator, block text)]`` of the blocks of a CIF text that hold a structure; ``None`` if it has no block.

    IUCr ``data_global`` and powder-pattern blocks (publication data, no structure) are left out, as pymatgen
    leaves them. A name used twice gets ``#2``, ``#3`` on its later blocks.
    """
    blocks = split_blocks(text)
    if not blocks:
        return None
    out = []
    seen: dict[str, int] = {}
    for name, block in blocks:
        lowered = block.lower()
        if "_cell_" not in lowered and "_atom_site" not in lowered:
            continue
        seen[name] = seen.get(name, 0) + 1
        out.append((f"block={name}" if seen[name] == 1 else f"block={name}#{seen[name]}", block))
    return out


def split(path: Path) -> list[tuple[str, str]] | None:
    """The structure blocks of the CIF at ``path`` (:func:`located_blocks`): a large file's shares for the workers."""
    with open_text(path) as fh:
        return located_blocks(fh.read())


def locator_of(item: tuple[Any, Any]) -> str:
    """The locator of one :func:`split` item."""
    return item[0]


def read(path: Path, *, skip: frozenset[str] = frozenset(), rows_: list[tuple[str, str]] | None = None,
         validation: ValidationOptions | None = None, **_: object) -> Iterator[Record | ReadError | Known]:
    """Yield one record per data block of the CIF at ``path``; ``rows_`` (from :func:`split`) parses only a share.

    ``validation`` bounds the cell and the expanded site count before pymatgen expands the symmetry (defaults
    when ``None``).
    """
    if rows_ is None:
        with open_text(path) as fh:
            text = fh.read()
        rows_ = located_blocks(text)
        if rows_ is None:
            yield ReadError("file", "parse_error", f"{path}: no data_ block found", text[:2000])
            return
    for locator, block in rows_:
        if locator in skip:
            yield Known(locator)
            continue
        yield parse_block(block, locator, f"{path} [{locator}]", validation)


def parse_block(block: str, locator: str, where: str, validation: ValidationOptions | None = None) -> Record | ReadError:
    """Parse one CIF data block into a record, or say why it cannot be read (``validation``: see :func:`read`)."""
    unclosed = unclosed_text_field(block)
    if unclosed is not None:
        return ReadError(locator, "parse_error", f"{where}: the ';' text field opened at line {unclosed} of the block "
                                                 f"is never closed", block)
    raw_text, block = block, _defuse_text_fields(block)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = plain_block_data(block)
        if raw is None:
            from pymatgen.io.cif import CifFile

            try:
                raw = next(iter(CifFile.from_str(block).data.values())).data  # raw strings, as written
            except Exception as exc:  # noqa: BLE001 - malformed CIF syntax
                return ReadError(locator, "parse_error", f"{where}: CIF syntax error: {_short(exc)}", raw_text)
        data = {k.lower(): v for k, v in raw.items()}
        problem = _check_raw(data, where) or _before_expansion(data, where, validation or ValidationOptions())
        if problem:
            return ReadError(locator, problem[0], problem[1], raw_text)
        database, external_id = _database(data)
        raw_values = {"cell": [_scalar(data, t) for t in CELL_TAGS], "coords": _coords(data)}
        fast = _p1_record(data, locator)
        if fast is not None:
            fast.raw_text, fast.raw_values, fast.database, fast.external_id = raw_text, raw_values, database, external_id
            return fast
        from pymatgen.io.cif import CifParser

        setting = _named_setting(data)
        if isinstance(setting, str):
            return ReadError(locator, "parse_error", f"{where}: {setting}", raw_text)
        if setting is not None:  # operations of a setting named by symbol, which pymatgen would not derive
            problem = expansion_problem(_positions(data), len(setting[1]), where, validation or ValidationOptions())
            if problem:
                return ReadError(locator, problem[0], problem[1], raw_text)
            block += "\nloop_\n_symmetry_equiv_pos_as_xyz\n" + "\n".join(f"'{op}'" for op in setting[1]) + "\n"
        try:
            parser = CifParser.from_str(block)
            cleaned = [_clean_sites(b.data, b.loops) for b in parser._cif.data.values()]
            structures = parser.parse_structures(primitive=False, check_occu=False, on_error="raise")
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for bad content
            return ReadError(locator, "parse_error", f"{where}: cannot build a structure: {_short(exc)}", raw_text)
    if not structures:
        return ReadError(locator, "parse_error", f"{where}: no structure in block", raw_text)
    messages = {str(w.message).splitlines()[0][:200] for w in caught if "rounded to ideal" not in str(w.message)}
    group = _group_name(data)
    if any("Defaulting to P1" in m for m in messages) and group is not None:
        return ReadError(locator, "parse_error", f"{where}: the block names space group {group} but lists no symmetry "
                                                 f"operations that can be used; expanding it as P1 would store only the "
                                                 f"asymmetric unit", raw_text)
    notes = [f"cif: {n}" for n in sorted(messages)] + ([f"cif: {setting[0]}"] if setting is not None else [])
    notes += cleaned[0] if cleaned else []
    isotopes = isotope_note(data)
    return record_from_pymatgen(structures[0], locator, raw_text=raw_text, database=database, external_id=external_id,
                                raw_values=raw_values, warnings=notes + ([isotopes] if isotopes else []))


SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz", "_space_group_symop.operation_xyz")
HALL_TAGS = ("_space_group_name_hall", "_symmetry_space_group_name_hall", "_space_group.name_hall")
HM_TAGS = ("_space_group_name_h-m_alt", "_symmetry_space_group_name_h-m", "_space_group.name_h-m_alt")
NUMBER_TAGS = ("_space_group_it_number", "_symmetry_int_tables_number", "_space_group.it_number")
#: Setting suffixes of Hermann-Mauguin symbols: ITA ``:1``/``:2``/``:H``/``:R``/``:b2``..., ICSD ``S``/``Z`` (origin
#: 1/2) and ``H``/``R`` (axes) after a space.
_AXES_NOTE = re.compile(r"\(\s*(hexagonal|rhombohedral)\s+axes\s*\)", re.IGNORECASE)
_SETTING_SUFFIX = re.compile(r"^(.*?)\s*(?::\s*(-?[A-Za-z0-9]+)|\s([SZHRszhr]))$")


def _group_name(data: dict) -> str | None:
    """How the block names its space group (``Hall '-P 4n 2n'``), unless it names none or P1."""
    for tags, kind in ((HALL_TAGS, "Hall"), (HM_TAGS, "H-M"), (NUMBER_TAGS, "number")):
        for tag in tags:
            value = _scalar(data, tag).strip()
            if value not in MISSING and _squash(value) not in ("p1", "1"):
                return f"{kind} '{value}'"
    return None


def _squash(symbol: str) -> str:
    return re.sub(r"[\s_'\"]", "", symbol).lower()


def _hall_key(symbol: str) -> str:
    # spaces and primes carry meaning in Hall symbols ("P 32" is not "P 3 2", "2'" is not "2"): only collapse spacing
    return " ".join(symbol.split()).lower()


def _named_setting(data: dict) -> tuple[str, list[str]] | str | None:
    """Symmetry operations for a block that lists none but names a Hall symbol or an H-M origin choice.

    pymatgen reads neither (a Hall-only block became the asymmetric unit in P1; ``F d -3 m:2``
    and ICSD's ``F d -3 m Z`` were expanded with origin-1 operations, doubling the atoms), so
    the operations come from spglib's table of the 530 settings. Returns ``(note, operations)``,
    ``None`` when pymatgen's own reading applies, or a message when the named setting is unknown.
    """
    if any(tag in data for tag in SYMOP_TAGS):
        return None
    from xtalbase.ingest.cif_settings import hall_settings, setting_operations

    for tag in HALL_TAGS:
        hall = _scalar(data, tag).strip()
        if hall not in MISSING:
            found = [t for t in hall_settings() if _hall_key(t.hall_symbol) == _hall_key(hall)]
            if not found:
                return f"Hall symbol '{hall}' is not one of the 530 settings and the block lists no symmetry operations"
            return f"symmetry operations of Hall '{hall}' from spglib's table (the block lists none)", \
                setting_operations(found[0].hall_number)
    for tag in HM_TAGS:
        value = _scalar(data, tag).strip()
        if value not in MISSING:
            return _hm_setting(value, data)
    return None


def _hm_setting(value: str, data: dict) -> tuple[str, list[str]] | str | None:
    """Operations for an H-M symbol whose setting pymatgen would not derive, from spglib's table.

    pymatgen knows standard symbols; for anything else it silently takes the standard
    setting of the IT number (a short ``P 21/n`` became ``P 1 21/c 1``, rhombohedral
    axes ``R -3 m :R`` got hexagonal operations, tripling the atoms). Suffixes ``:1``/
    ``:2`` and ICSD's ``S``/``Z`` pick the origin, ``:H``/``:R`` and ICSD's ``H``/``R``
    the axes (without one, a rhombohedral cell, a=b=c and equal angles other than 90,
    means rhombohedral axes); a short monoclinic symbol means unique axis b; no suffix
    means origin choice 1, as pymatgen reads it. ``None`` when the symbol is none of
    the 530 settings' names (pymatgen's reading, or the IT number, then applies).
    """
    axes = _AXES_NOTE.search(value)  # COD: 'R -3 2/c (hexagonal axes)'
    if axes:
        value = f"{value[:axes.start()].strip()} :{axes.group(1)[0].upper()}"
    match = _SETTING_SUFFIX.match(value)
    symbol, choice = (match.group(1), (match.group(2) or match.group(3))) if match else (value, None)
    choice = {"s": "1", "z": "2", "h": "H", "r": "R"}.get(choice.lower(), choice) if choice else None
    halls = _setting_names().get(_squash(symbol), [])
    if not halls:
        return None
    from xtalbase.ingest.cif_settings import hall_settings, setting_operations

    table = hall_settings()
    if choice is None and any(table[h - 1].choice in ("H", "R") for h in halls):
        choice = "R" if _rhombohedral_cell(data) else "H"
    if choice is not None:
        halls = [h for h in halls if table[h - 1].choice.lower() == choice.lower()]
        if not halls:
            return f"space group '{value}': no setting '{choice}' of that symbol in the 530 settings, and the block " \
                   f"lists no symmetry operations"
    unique_b = [h for h in halls if 3 <= table[h - 1].number <= 15 and re.fullmatch(r"-?b\d?", table[h - 1].choice)]
    hall = (unique_b or halls)[0]
    described = table[hall - 1].international_full + (f" :{table[hall - 1].choice}" if table[hall - 1].choice else "")
    return f"symmetry operations of '{value}' ({described}) from spglib's table (the block lists none)", \
        setting_operations(hall)


@functools.cache
def _setting_names() -> dict[str, list[int]]:
    """Squashed H-M names of the 530 settings -> their Hall numbers in table order.

    Names: the full symbol, each alternative spglib lists (``P 2_1/c = P 1 1 2_1/b = P 2_1/b``), the short
    symbol, for monoclinic settings the full symbol without its 1s (``P 1 2_1/n 1`` -> ``P 2_1/n``), and
    older cubic and e-glide spellings (``F d 3 m``, ``C m c a``) where they name nothing else.
    """
    from xtalbase.ingest.cif_settings import hall_settings

    names: dict[str, list[int]] = {}
    older: dict[str, list[int]] = {}
    for t in hall_settings():
        found = [t.international_full, t.international_short, *t.international.split("=")]
        if 3 <= t.number <= 15:
            found.append(" ".join(part for part in t.international_full.split() if part != "1"))
        for name in found:
            halls = names.setdefault(_squash(name), [])
            if t.hall_number not in halls:
                halls.append(t.hall_number)
        # symbols from before ITA 1983/2002, still in ICSD and COD: Fd3m for Fd-3m, Cmca for Cmce
        old = [n.replace("-3", "3") for n in found if t.number >= 195 and "-3" in n]
        old += [n.replace("e", glide) for n in found if t.number in (39, 41, 64, 67, 68) for glide in "ab" if "e" in n]
        for name in old:
            halls = older.setdefault(_squash(name), [])
            if t.hall_number not in halls:
                halls.append(t.hall_number)
    for name, halls in older.items():
        names.setdefault(name, halls)  # never shadows a current name
    return names


def _rhombohedral_cell(data: dict) -> bool:
    try:
        a, b, c, alpha, beta, gamma = (str2float(_scalar(data, t)) for t in CELL_TAGS)
    except ValueError:
        return False
    return max(a, b, c) - min(a, b, c) < 1e-3 * a and max(alpha, beta, gamma) - min(alpha, beta, gamma) < 1e-2 \
        and abs(alpha - 90) > 1e-2


#: ``_atom_site_calc_flag`` values of sites that are no atoms (CIF core: ``dum``, dummy site, meaningless coordinates).
DUMMY_FLAGS = {"dum", "dummy"}


def _clean_sites(data: dict, loops: list[list[str]]) -> list[str]:
    """Fix pymatgen's raw ``CifBlock`` data in place where it misreads the CIF; returns source notes.

    Dummy sites (``_atom_site_calc_flag dum``) are removed from the atom-site loop
    (pymatgen stores them as atoms), and an occupancy written ``.`` (inapplicable: the
    dictionary default, 1) is set to 1 (pymatgen reads it as 1e-8).
    """
    notes = []
    tags = {tag.lower(): tag for tag in data}
    flags = data.get(tags.get("_atom_site_calc_flag", ""))
    if isinstance(flags, list) and any(f.strip().lower() in DUMMY_FLAGS for f in flags):
        keep = [i for i, f in enumerate(flags) if f.strip().lower() not in DUMMY_FLAGS]
        labels = data.get(tags.get("_atom_site_label", ""), [])
        dropped = [labels[i] for i in range(len(flags)) if i not in keep and i < len(labels)]
        loop = next((columns for columns in loops if tags["_atom_site_calc_flag"] in columns), [])
        for tag in loop:
            if isinstance(data.get(tag), list) and len(data[tag]) == len(flags):
                data[tag] = [data[tag][i] for i in keep]
        notes.append(f"cif: dummy sites left out ({', '.join(dropped[:5])}: _atom_site_calc_flag dum)")
    occupancy = data.get(tags.get("_atom_site_occupancy", ""))
    if isinstance(occupancy, list) and any(v.strip() == "." for v in occupancy):
        data[tags["_atom_site_occupancy"]] = ["1" if v.strip() == "." else v for v in occupancy]
        notes.append("cif: occupancy '.' (the default) read as 1")
    return notes


def _defuse_text_fields(block: str) -> str:
    """``block`` with ``data_`` at the start of a line inside a ``;`` text field turned into ``.data_``.

    pymatgen's ``CifFile`` (like a plain line scan) would start a new block there and lose the rest of this one.
    """
    if block.count("data_") < 2:
        return block
    lines, in_text_field = block.splitlines(keepends=True), False
    for i, line in enumerate(lines):
        if line.startswith(";"):
            in_text_field = not in_text_field
        elif in_text_field and line.lstrip()[:5].lower() == "data_":
            lines[i] = "." + line.lstrip()
    return "".join(lines)


def plain_block_data(block: str) -> dict[str, str | list[str]] | None:
    """Tag values of a plain CIF block, exactly as pymatgen's ``CifBlock`` gives them, or ``None``.

    Text before the first ``data_`` line is ignored, as ``CifFile`` ignores it.
    Handles the common case (ASCII, no comments, no ``;`` text fields: what pymatgen,
    CDVAE and most databases write) with ``str.split`` per line, quoted values with
    pymatgen's own token pattern, at about 40% of ``CifFile``'s cost. ``None`` for
    anything else (and for anything ``CifBlock`` would warn about or reject), which
    then goes to ``CifFile``.
    """
    start = _BLOCK_START.search(block)  # CifFile ignores whatever precedes the first data_ line
    if start is None:
        return None
    if _BLOCK_START.search(block, start.end()) or "powder_pattern" in block[start.end():].split("\n", 1)[0]:
        return None  # CifFile keeps one of several blocks, and skips powder-pattern blocks: leave both to it
    block = block[start.end() - len("data_"):]
    if "#" in block or not block.isascii():
        return None
    # (text if unquoted else "", text): tags and loop_ are never quoted; tokens[0] is the data_ name
    tokens: list[tuple[str, str]] = []
    for line in block.splitlines():
        if line.startswith(";"):
            return None
        if "'" in line or '"' in line:
            tokens.extend((t[0], "".join(t)) for t in _CIF_TOKEN.findall(line))
        else:
            parts = line.split()
            tokens.extend(zip(parts, parts))
    data: dict[str, str | list[str]] = {}
    i, n = 1, len(tokens)
    while i < n:
        bare, _ = tokens[i]
        i += 1
        if bare == "_eof":
            break
        if bare.startswith("_"):
            data[bare] = tokens[i][1] if i < n else ""
            i += 1
        elif bare.startswith("loop_"):
            columns = []
            while i < n and tokens[i][0].startswith("_"):
                columns.append(tokens[i][1])
                i += 1
            first = i
            while i < n and not tokens[i][0].startswith(("loop_", "_")):
                i += 1
            items = [text.strip() for _, text in tokens[first:i]]
            if not columns or not items or len(items) % len(columns) or len(set(columns)) < len(columns):
                return None  # CifBlock raises or misreads these: let it say so
            for k, column in enumerate(columns):
                data[column] = items[k::len(columns)]
        else:
            return None  # a stray value: CifBlock warns about it
    return data


def _p1_record(data: dict, locator: str) -> Record | None:
    """Fast path for ordered P1 blocks (as pymatgen writes for MP and CDVAE): build the record directly.

    Gives the same cell (``Lattice.from_parameters``) and the same wrapped coordinates as
    ``CifParser``, in file order, without its symmetry expansion; ``None`` sends the block
    to ``CifParser`` (symmetry operations, occupancies, oxidation states, labels only...).
    """
    import numpy as np
    from pymatgen.core import Lattice

    ops = data.get("_symmetry_equiv_pos_as_xyz", data.get("_space_group_symop_operation_xyz"))
    if "_atom_site_calc_flag" in data:
        return None
    if ops is None or any(op.replace(" ", "").replace("'", "").lower() != "x,y,z" for op in _as_list(ops)):
        return None
    symbols = data.get("_atom_site_type_symbol")
    if not isinstance(symbols, list) or not all(_PLAIN_ELEMENT.match(x) for x in symbols):
        return None
    occupancy = data.get("_atom_site_occupancy")
    try:
        if occupancy is not None and any(str2float(x) != 1.0 for x in _as_list(occupancy)):
            return None
        frac = np.array([[str2float(v) for v in data[t]] for t in FRACT_TAGS], dtype=float).T
        cell = Lattice.from_parameters(*(str2float(_scalar(data, t)) for t in CELL_TAGS)).matrix
    except (ValueError, TypeError, KeyError):
        return None
    if frac.shape != (len(symbols), 3):
        return None
    for ideal in (1 / 3, 2 / 3):  # CifParser's own clean-up of 0.333333-style values (frac_tolerance 1e-4)
        frac[np.abs(frac / ideal - 1) <= 1e-4] = ideal
    return Record(locator=locator, cell=np.array(cell, dtype=float), species=[{x: 1.0} for x in symbols],
                  frac_coords=frac - np.floor(frac))


def str2float(text: str) -> float:
    """A CIF number without its standard uncertainty (``1.234(5)`` -> 1.234)."""
    return float(_UNCERTAINTY_SUFFIX.sub("", text) if "(" in text else text)


def _scalar(data: dict, tag: str) -> str:
    value = data.get(tag, "?")
    return value[0] if isinstance(value, list) else value


def _coords(data: dict) -> list[str]:
    tags = FRACT_TAGS if FRACT_TAGS[0] in data else ()
    return [v for t in tags for v in _as_list(data[t])]


def _check_raw(data: dict, where: str) -> tuple[str, str] | None:
    missing = [t for t in CELL_TAGS if _scalar(data, t).strip() in MISSING]
    if missing:
        return "missing_cell", f"{where}: cell not given ({', '.join(missing)} missing)"
    problem = _impossible_cell(data, where)
    if problem:
        return problem
    if all(t in data for t in FRACT_TAGS):
        values = _coords(data)
        if any(v.strip() in MISSING for v in values):
            return "missing_coordinates", f"{where}: some atom coordinates are '?' or '.'"
    elif all(t in data for t in CARTN_TAGS):
        return "missing_coordinates", (f"{where}: only Cartesian coordinates (_atom_site_Cartn_x/y/z) are given; their "
                                       f"axes depend on a convention the block does not state: give fractional ones")
    else:
        return "missing_coordinates", f"{where}: no _atom_site_fract_x/y/z loop"
    symbols = _as_list(data.get("_atom_site_type_symbol") or data.get("_atom_site_label") or [])
    labels = _as_list(data.get("_atom_site_label") or symbols)
    flags = _as_list(data.get("_atom_site_calc_flag") or [])
    for i, sym in enumerate(symbols):
        if i < len(flags) and flags[i].strip().lower() in DUMMY_FLAGS:
            continue
        if sym.strip() in MISSING and i < len(labels):
            sym = labels[i]  # a type symbol written '?' leaves the label to name the element, as CifParser does
        if element_of(sym) is None:
            return "unknown_element", f"{where}: atom type {sym!r} is not a chemical element"
    return None


def _before_expansion(data: dict, where: str, opts: ValidationOptions) -> tuple[str, str] | None:
    """The cell bounds, the listed symmetry operations and the site count they imply, checked before expansion."""
    problem = cell_parameters_problem([str2float(_scalar(data, t)) for t in CELL_TAGS], where, opts)
    if problem:
        return problem
    ops = next((_as_list(data[t]) for t in SYMOP_TAGS if t in data), None)
    if ops is None:
        return None
    return operations_problem(ops, where) or expansion_problem(_positions(data), len(ops), where, opts)


def _positions(data: dict) -> list[tuple[str, str, str]]:
    """The listed fractional positions as written (their count, not their values, bounds the expansion)."""
    columns = [_as_list(data.get(t, [])) for t in FRACT_TAGS]
    return list(zip(*columns))


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _impossible_cell(data: dict, where: str) -> tuple[str, str] | None:
    """``(reason, message)`` for cell parameters no crystal has (a typo): lengths <= 0, angles that close no cell."""
    try:
        values = [str2float(_scalar(data, t)) for t in CELL_TAGS]
    except ValueError:
        return "parse_error", f"{where}: cell parameters are not numbers ({', '.join(_scalar(data, t) for t in CELL_TAGS)})"
    named = dict(zip(("a", "b", "c", "alpha", "beta", "gamma"), values))
    if any(named[k] < 0 for k in "abc") or any(not 0 < named[k] < 180 for k in ("alpha", "beta", "gamma")):
        bad = [f"{k}={v:g}" for k, v in named.items() if (k in "abc" and v < 0) or (k not in "abc" and not 0 < v < 180)]
        return "parse_error", f"{where}: impossible cell parameters ({', '.join(bad)}): lengths must be positive and angles between 0 and 180 degrees"
    cosines = [math.cos(math.radians(named[k])) for k in ("alpha", "beta", "gamma")]
    shape = 1 - sum(c * c for c in cosines) + 2 * cosines[0] * cosines[1] * cosines[2]
    if min(named[k] for k in "abc") == 0 or shape <= 1e-12:
        return "zero_volume", (f"{where}: the cell has no volume (a={named['a']:g}, b={named['b']:g}, c={named['c']:g}, "
                               f"alpha={named['alpha']:g}, beta={named['beta']:g}, gamma={named['gamma']:g})")
    return None


@functools.lru_cache(maxsize=4096)
def element_of(symbol: str) -> str | None:
    """The element a CIF type symbol or label names (``Fe2+`` -> ``Fe``, ``O1`` -> ``O``), else ``None``."""
    from ase.data import atomic_numbers

    match = _SYMBOL.match(symbol.strip())
    if not match:
        return None
    letters = match.group(1)
    if letters.title() in ISOTOPES:  # D1, T: never Du (a dummy atom), Ta or Dy
        return ISOTOPES[letters.title()]
    for candidate in (letters.title(), letters[0].upper()):
        if candidate in atomic_numbers and candidate != "X":
            return candidate
    return None


def isotope_note(data: dict) -> str | None:
    """A source warning when the block's atom types name deuterium or tritium, which are stored as hydrogen."""
    symbols = data.get("_atom_site_type_symbol") or data.get("_atom_site_label") or []
    named = sorted({s for s in _as_list(symbols)
                    if element_of(s) == "H" and not s.strip().upper().startswith("H")})
    return f"cif: hydrogen isotopes ({', '.join(named[:5])}) stored as H" if named else None


def _database(data: dict) -> tuple[str | None, str | None]:
    for tag, name in DATABASE_TAGS.items():
        value = _scalar(data, tag).strip()
        if value not in MISSING:
            return name, value
    return None, None


def _short(exc: BaseException) -> str:
    """The exception and its causes on one line (pymatgen puts the real cause on a second line, or chains it)."""
    parts, seen = [], exc
    while seen is not None and len(parts) < 3:
        text = " ".join(line.strip() for line in str(seen).strip().splitlines() if line.strip())
        parts.append(f"{type(seen).__name__}: {text}" if text else type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(parts)[:400]


def _sniff(head: str) -> bool:
    lines = [line.lstrip().lower() for line in head.splitlines()]
    first = next((i for i, line in enumerate(lines) if line.startswith("data_")), None)
    # IUCr and SHELX CIFs may carry kilobytes of _publ_ text before the cell: any tag after the data_ line will do
    return first is not None and any(line.startswith("_") for line in lines[first + 1:])


READER = Reader("cif", read, ("*.cif", "*.mcif"), _sniff, "CIF, single or multi-block, P1 or with symmetry operations",
                split=split, locator_of=locator_of)
