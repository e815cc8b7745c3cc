"""The reader registry and the single entry point :func:`read_structures` (ASE ``ase.io.formats`` style).

Each format is one :class:`Format` line: its name, the reader module under
:mod:`xtalbase.ingest.readers` (imported only when used), file-name patterns and
a content sniffer. The format is guessed from the name first (a trailing
``.gz``, ``.bz2`` or ``.xz`` is ignored: such files are decompressed as they are
read), then from the first bytes.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import importlib
import io
import lzma
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Optional

from xtalbase.errors import XtalbaseError
from xtalbase.ingest.records import ReadError, Record


@dataclass(frozen=True)
class Format:
    """One registered format: ``module`` holds ``read(path, **options)``."""

    name: str
    module: str
    globs: tuple[str, ...]
    sniff: Callable[[str], bool]
    description: str


def _has(*needles: str) -> Callable[[str], bool]:
    return lambda head: all(n in head for n in needles)


def _sniff_cif(head: str) -> bool:
    lines = [line.lstrip().lower() for line in head.splitlines()]
    first = next((i for i, line in enumerate(lines) if line.startswith("data_")), None)
    # IUCr and SHELX CIFs may carry kilobytes of _publ_ text before the cell: any tag after the data_ line will do
    return first is not None and any(line.startswith("_") for line in lines[first + 1:])


def _sniff_json_list(head: str) -> bool:
    return head.lstrip().startswith("[") and '"structure"' in head and '"outputs"' in head


def _sniff_json_structure(head: str) -> bool:
    return head.lstrip().startswith("{") and '"lattice"' in head and '"sites"' in head


#: JSON files up to this size are classified by their parsed content when the first bytes do not tell.
MAX_JSON_SNIFF_BYTES = 256 * 2**20


def json_kind(document: object) -> str | None:
    """Which JSON reader a parsed document belongs to: ``mlip_json`` (``[{structure, outputs}]``), ``pmg_json``
    (a ``Structure`` dict, an MP document or ``ComputedStructureEntry`` with a ``structure``, or a list of those)."""
    items = document if isinstance(document, list) else [document]
    first = next((x for x in items if isinstance(x, dict)), None)
    if first is None:
        return None
    if isinstance(first.get("structure"), dict) and "outputs" in first:
        return "mlip_json"
    if isinstance(first.get("structure"), dict) or "sites" in first or "lattice" in first:
        return "pmg_json"
    return None


def _json_kind_of_file(path: Path) -> str | None:
    import json

    try:
        if path.stat().st_size > MAX_JSON_SNIFF_BYTES:
            return None
        with open_text(path) as fh:
            return json_kind(json.load(fh))
    except (OSError, EOFError, ValueError, lzma.LZMAError):
        return None


def _sniff_csv(head: str) -> bool:
    first = head.splitlines()[0] if head else ""
    return "cif" in [c.strip().strip('"').strip().lower() for c in first.split(",")]


def _sniff_extxyz(head: str) -> bool:
    lines = head.splitlines()
    return len(lines) > 1 and lines[0].strip().isdigit() and "Lattice=" in lines[1]


def _sniff_poscar(head: str) -> bool:
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


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("cif", "cif", ("*.cif", "*.mcif"), _sniff_cif, "CIF, single or multi-block, P1 or with symmetry operations"),
    Format("vasprun", "vasprun", ("vasprun*.xml*", "*.vasprun.xml"), _has("<modeling>"), "VASP vasprun.xml"),
    Format("outcar", "outcar", ("OUTCAR*", "*.OUTCAR", "*OUTCAR"), _has("vasp."), "VASP OUTCAR"),
    Format("poscar", "poscar", ("POSCAR*", "CONTCAR*", "*.vasp", "*.poscar"), _sniff_poscar, "VASP POSCAR/CONTCAR"),
    Format("extxyz", "extxyz", ("*.xyz", "*.extxyz"), _sniff_extxyz, "extended XYZ (energy/forces/stress -> calculation)"),
    Format("cdvae_csv", "cdvae_csv", ("*.csv",), _sniff_csv, "CDVAE-style CSV: a cif column plus property columns"),
    Format("mlip_json", "mlip_json", ("*.json",), _sniff_json_list, "SNAP/mlearn JSON list of structure + outputs"),
    Format("pmg_json", "pmg_json", ("*.json",), _sniff_json_structure, "pymatgen Structure JSON (as_dict)"),
)}


#: One compiled pattern per format; names are compared in lower case (``DATA.CSV``, ``NaCl.CIF`` from Windows tools).
_NAME_PATTERNS = {f.name: re.compile("|".join(f"(?:{fnmatch.translate(g.lower())})" for g in f.globs))
                  for f in FORMATS.values()}
#: Formats whose name patterns are loose (``POSCAR*``, ``*.vasp``, ``*.csv``): the content must agree.
_CONFIRM_BY_CONTENT = ("poscar", "cdvae_csv")
#: Content sniffing order when the name does not decide: a CDVAE CSV holds CIF text in its cells, so it goes first.
_SNIFF_ORDER = ("cdvae_csv",) + tuple(name for name in FORMATS if name != "cdvae_csv")
#: Extensions of files that sit beside structures in run folders but are never one (``CONTCAR.png``,
#: ``POSCAR.vesta``, ``POSCAR_maker.py``): a ``POSCAR*`` name with one of these is judged by content alone.
FOREIGN_SUFFIXES = frozenset((".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".svg", ".pdf", ".eps", ".ps",
                              ".py", ".ipynb", ".sh", ".bash", ".pl", ".md", ".rst", ".txt", ".log", ".html", ".htm",
                              ".tex", ".doc", ".docx", ".xls", ".xlsx", ".vesta", ".xsf", ".xcrysden", ".mp4"))


#: Compressed-file suffixes and how to open them (VASP run folders and custodian keep ``.gz``, ``.bz2``, ``.xz``).
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_COMPRESSION_NAMES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}


def uncompressed_name(name: str) -> str:
    """A file name without its compression suffix (``OUTCAR.relax2.bz2`` -> ``OUTCAR.relax2``)."""
    for suffix in COMPRESSED:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def open_text(path: str | Path) -> IO[str]:
    """Open ``path`` as text, decompressing ``*.gz``, ``*.bz2`` and ``*.xz``; a leading UTF-8 byte-order mark is dropped.

    (Windows tools and Excel write the mark; left in, it hides a CIF's first ``data_``
    line, a JSON document's opening brace and a CSV's first column name.)
    """
    path = Path(path)
    if path.suffix in COMPRESSED:
        return io.TextIOWrapper(COMPRESSED[path.suffix](path, "rb"), encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


def _head(path: Path, size: int = 4096) -> str:
    try:
        with open_text(path) as fh:
            return fh.read(size)
    except (OSError, EOFError):
        return ""


#: VASP files of a run folder that are not structures to store, though volumetric data and trajectories open
#: with a POSCAR-like header: never detected (an explicit ``--format poscar`` still reads one).
NOT_STRUCTURES = re.compile(r"^(CHGCAR|CHG|LOCPOT|ELFCAR|AECCAR\d|PARCHG|XDATCAR|WAVECAR|WAVEDER|PROCAR|DOSCAR|EIGENVAL"
                            r"|IBZKPT|OSZICAR|PCDAT|REPORT|INCAR|KPOINTS|POTCAR)([._-].*)?$")


def never_a_structure(path: str | Path) -> bool:
    """True for files of a run folder that are never structures to store (INCAR, POTCAR, CHGCAR, ``*.png``, ...)."""
    name = uncompressed_name(Path(path).name)
    return bool(NOT_STRUCTURES.match(name)) or Path(name).suffix.lower() in FOREIGN_SUFFIXES


def detect_format(path: str | Path) -> str | None:
    """The registered format name for ``path`` (by name, then content), or ``None``.

    A loose name match (``POSCAR*``, ``*.vasp``, ``*.csv``) must be confirmed by the
    content; a file named ``POSCAR`` that holds a CIF or a JSON structure is read as
    what it holds, and one that looks like nothing (empty, cut short) stays a POSCAR
    so that its reader says what is wrong.
    """
    path = Path(path)
    name = uncompressed_name(path.name)
    if NOT_STRUCTURES.match(name):
        return None
    lowered = name.lower()
    foreign = Path(lowered).suffix in FOREIGN_SUFFIXES
    by_name = [] if foreign else [f.name for f in FORMATS.values() if _NAME_PATTERNS[f.name].match(lowered)]
    if len(by_name) == 1 and by_name[0] not in _CONFIRM_BY_CONTENT:
        return by_name[0]
    head = _head(path)
    for fmt in by_name:
        if FORMATS[fmt].sniff(head):
            return fmt
    if by_name == ["poscar"]:
        other = next((f for f in _SNIFF_ORDER if f != "poscar" and FORMATS[f].sniff(head)), None)
        return other or _json_kind_of(path, head) or "poscar"
    if not by_name:
        other = next((f for f in _SNIFF_ORDER if FORMATS[f].sniff(head)), None)
        if other is not None:
            return other
    return _json_kind_of(path, head)


def _json_kind_of(path: Path, head: str) -> str | None:
    if head.lstrip()[:1] in ("[", "{"):  # JSON whose first bytes do not say (sorted keys, long metadata first)
        return _json_kind_of_file(path)
    return None


def reader(format: str) -> Callable[..., Iterator[Record | ReadError]]:
    """The ``read`` function of a registered format."""
    return _reader_module(format).read


def splitter(format: str) -> Callable[[Path], Optional[Iterable[Any]]] | None:
    """The ``split`` function of a multi-record format (its records, for ``read(path, rows_=share)``), or ``None``."""
    return getattr(_reader_module(format), "split", None)


def share_locator(format: str) -> Callable[[Any], str] | None:
    """The ``locator_of`` function of a multi-record format (the locator of one ``split`` item), or ``None``."""
    return getattr(_reader_module(format), "locator_of", None)


def _reader_module(format: str) -> Any:
    if format not in FORMATS:
        raise XtalbaseError(f"unknown format {format!r}: choose one of {', '.join(sorted(FORMATS))}")
    return importlib.import_module(f"xtalbase.ingest.readers.{FORMATS[format].module}")


def read_structures(path: str | Path, format: str | None = None, **options: object) -> Iterator[Record | ReadError]:
    """Read every record of ``path``: yields :class:`Record` or :class:`ReadError` (never raises for bad content).

    Parameters
    ----------
    path : str or Path
        A structure or DFT file (``.gz``, ``.bz2``, ``.xz`` allowed).
    format : str, optional
        One of :data:`FORMATS`; detected from the name and content when omitted.
    **options
        Passed to the reader: ``all_steps`` (VASP: every ionic step), ``skip``
        (locators to leave out, used to resume).
    """
    if Path(path).is_symlink() and not Path(path).exists():
        yield ReadError("file", "parse_error", f"{path}: broken symbolic link: it points to {os.readlink(path)}, "
                                               f"which does not exist")
        return
    fmt = format or detect_format(path)
    if fmt is None:
        yield ReadError("file", "parse_error", f"{path}: cannot tell the format from the name or content; give --format")
        return
    read = reader(fmt)
    try:
        yield from read(Path(path), **options)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes a quarantined file, not a crash
        reason, what = read_failure(path, fmt, exc)
        yield ReadError("file", reason, f"{path}: {what}")


def read_failure(path: str | Path, format: str, exc: Exception) -> tuple[str, str]:
    """``(reason code, what went wrong)`` for an exception raised while reading ``path`` with the ``format`` reader.

    Used by :func:`read_structures`, and by readers that meet the failure in the main process
    (a streamed or split file) and hand the workers its classification instead of the exception.
    """
    suffix = Path(path).suffix
    if isinstance(exc, (gzip.BadGzipFile, lzma.LZMAError)):  # not compressed data at all, or a failed checksum: damaged
        return "parse_error", f"not readable as {_COMPRESSION_NAMES[suffix]} ({exc})"
    if isinstance(exc, EOFError):
        return "truncated_file", f"file ends early ({exc or type(exc).__name__})"
    if suffix == ".bz2" and type(exc) is OSError:  # bz2 raises a bare OSError for data that is not bzip2
        return "parse_error", f"not readable as bzip2 ({exc})"
    return "parse_error", f"{format} reader failed: {type(exc).__name__}: {str(exc)[:300]}"
