"""The reader registry and the single entry point :func:`read_structures` (ASE ``ase.io.formats`` style).

Each format is one line of :data:`READERS`: its name and its module under
:mod:`xtalbase.ingest.readers`, imported only when used, which declares a
:class:`Reader` (file-name patterns, content sniffer, what it yields, how its
records are shared among workers). The format is guessed from the name first (a
trailing ``.gz``, ``.bz2`` or ``.xz`` is ignored: such files are decompressed as
they are read), then from the first bytes.
"""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import fnmatch
import functools
import gzip
import importlib
import io
import lzma
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Optional

from xtalbase.errors import XtalbaseError
from xtalbase.ingest.records import ReadError, Record

#: What a reader can yield: structure records, calculations (energy, forces, stress) on them, source properties.
YIELDS = ("structures", "calculations", "properties")


@dataclass(frozen=True)
class Reader:
    """What one format's module declares as its ``READER``: how to recognise its files and what it can read.

    Attributes
    ----------
    name : str
        The format name (``--format``).
    read : callable
        ``read(path, *, skip, rows_, all_steps, species, ...)`` yielding :class:`Record`, :class:`Known`
        or :class:`ReadError`; options it does not use are ignored.
    globs : tuple of str
        File-name patterns (compared in lower case, compression suffix removed).
    sniff : callable
        ``sniff(head)``: True when the first 4 kB of text are this format's.
    description : str
        One line for help and docs.
    yields : frozenset of str
        Which of :data:`YIELDS` its records can carry.
    split, locator_of : callable, optional
        For multi-record files: ``split(path)`` lists the records (or streams them; ``None`` when the
        file holds no list), any share of which ``read(path, rows_=share)`` reads alone, and
        ``locator_of(item)`` is the locator ``read`` gives that record.
    always_split : bool
        Split every file, whatever its size (one CSV row is cheap, a file of them is one task each).
    name_needs_content : bool
        The name patterns are loose (``POSCAR*``, ``*.csv``): the content must agree.
    name_decides_on_doubt : bool
        A file with this format's name whose content no format recognises (empty, cut short) is still
        read as this format, so that its reader says what is wrong (rather than skipped as unknown).
    sniff_first : bool
        Tried before the others when the content decides (a CSV holding CIF text in its cells).
    sniff_json : callable, optional
        ``sniff_json(document)``: True for a parsed JSON document of this format, for files whose
        first bytes do not tell (sorted keys, long metadata first).
    """

    name: str
    read: Callable[..., Iterator[Any]]
    globs: tuple[str, ...]
    sniff: Callable[[str], bool]
    description: str
    yields: frozenset[str] = frozenset({"structures"})
    split: Optional[Callable[[Path], Optional[Iterable[Any]]]] = None
    locator_of: Optional[Callable[[Any], str]] = None
    always_split: bool = False
    name_needs_content: bool = False
    name_decides_on_doubt: bool = False
    sniff_first: bool = False
    sniff_json: Optional[Callable[[object], bool]] = None

    def __post_init__(self) -> None:
        unknown = set(self.yields) - set(YIELDS)
        if unknown or not self.yields:
            raise ValueError(f"reader {self.name!r}: yields must be some of {YIELDS}, got {sorted(self.yields)}")
        if (self.split is None) != (self.locator_of is None):
            raise ValueError(f"reader {self.name!r}: split and locator_of come together")


#: The registry: format name -> its module under :mod:`xtalbase.ingest.readers` (which declares ``READER``),
#: imported when first needed. Adding a format is one module and one line here; detection tries them in this order.
READERS: dict[str, str] = {
    "cif": "cif",
    "vasprun": "vasprun",
    "outcar": "outcar",
    "poscar": "poscar",
    "extxyz": "extxyz",
    "cdvae_csv": "cdvae_csv",
    "mlip_json": "mlip_json",
    "pmg_json": "pmg_json",
}


class _Registry(Mapping[str, Reader]):
    """``FORMATS``: names without importing anything; ``FORMATS[name]`` imports that reader's module."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = modules

    def __getitem__(self, name: str) -> Reader:
        return _load(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, name: object) -> bool:
        return name in self._modules


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Reader:
    if name not in READERS:
        raise XtalbaseError(f"unknown format {name!r}: choose one of {', '.join(sorted(READERS))}")
    spec = importlib.import_module(f"xtalbase.ingest.readers.{READERS[name]}").READER
    if spec.name != name:
        raise XtalbaseError(f"reader module {READERS[name]!r} declares format {spec.name!r}, registered as {name!r}")
    return spec


#: Every registered format by name (a read-only mapping of :class:`Reader`).
FORMATS: Mapping[str, Reader] = _Registry(READERS)


def has_all(*needles: str) -> Callable[[str], bool]:
    """A sniffer: True when the head contains every one of ``needles``."""
    return lambda head: all(n in head for n in needles)


#: JSON files up to this size are classified by their parsed content when the first bytes do not tell.
MAX_JSON_SNIFF_BYTES = 256 * 2**20


def first_object(document: object) -> dict[str, Any] | None:
    """The first JSON object of a document that is one object or a list of them (what ``sniff_json`` looks at)."""
    items = document if isinstance(document, list) else [document]
    return next((x for x in items if isinstance(x, dict)), None)


def json_kind(document: object) -> str | None:
    """The format whose ``sniff_json`` claims a parsed JSON document (``mlip_json``, ``pmg_json``), or ``None``."""
    return next((f.name for f in FORMATS.values() if f.sniff_json is not None and f.sniff_json(document)), None)


def _json_kind_of_file(path: Path) -> str | None:
    import json

    try:
        if path.stat().st_size > MAX_JSON_SNIFF_BYTES:
            return None
        with open_text(path) as fh:
            return json_kind(json.load(fh))
    # its reader says what is wrong; a file past the decompression cap is not swallowed: detect_format turns it
    # into UndetectableFormat, and the ingest quarantines it (too_large) instead of leaving it out unseen
    except (OSError, EOFError, ValueError, lzma.LZMAError):
        return None


@functools.lru_cache(maxsize=None)
def _name_pattern(name: str) -> re.Pattern[str]:
    """One compiled pattern per format; names are compared in lower case (``DATA.CSV``, ``NaCl.CIF`` from Windows tools)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(g.lower())})" for g in FORMATS[name].globs))


def _sniff_order() -> list[str]:
    # a format that holds another's text (CIF in CSV cells) must be asked first
    return sorted(FORMATS, key=lambda name: not FORMATS[name].sniff_first)


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


#: Default cap on the bytes a compressed file may expand to (``max_decompressed_mb``): a 3 MB ``.cif.gz`` of
#: one repeated line expands to 1 GiB, and the readers that hold a file's text took 10 GB for it.
MAX_DECOMPRESSED_BYTES = 512 << 20
_DECOMPRESSED_CAP: contextvars.ContextVar[int] = contextvars.ContextVar("decompressed_cap", default=MAX_DECOMPRESSED_BYTES)


class TooLargeError(XtalbaseError):
    """A compressed file expands past the decompression cap (quarantine reason ``too_large``)."""


@contextlib.contextmanager
def decompression_cap(max_bytes: int) -> Iterator[None]:
    """Within the block, :func:`open_text` stops a compressed file at ``max_bytes`` decompressed bytes."""
    token = _DECOMPRESSED_CAP.set(max_bytes)
    try:
        yield
    finally:
        _DECOMPRESSED_CAP.reset(token)


class _Capped(io.RawIOBase):
    """A binary stream that raises :class:`TooLargeError` once more than ``cap`` bytes have been read from it."""

    def __init__(self, stream: IO[bytes], cap: int, path: Path) -> None:
        self._stream, self._cap, self._path, self._read = stream, cap, path, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # read1: what is decompressed so far, so that a cut file still yields its whole first part
        data = self._stream.read1(min(len(buffer), self._cap + 1 - self._read))  # type: ignore[attr-defined]
        self._read += len(data)
        if self._read > self._cap:
            raise TooLargeError(f"{self._path}: expands past {self._cap >> 20} MiB when decompressed "
                                f"(--max-decompressed-mb): not read")
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def open_text(path: str | Path) -> IO[str]:
    """Open ``path`` as text, decompressing ``*.gz``, ``*.bz2`` and ``*.xz``; a leading UTF-8 byte-order mark is dropped.

    (Windows tools and Excel write the mark; left in, it hides a CIF's first ``data_``
    line, a JSON document's opening brace and a CSV's first column name.) A compressed
    file raises :class:`TooLargeError` when it expands past the cap of :func:`decompression_cap`.
    """
    path = Path(path)
    if path.suffix in COMPRESSED:
        raw = _Capped(COMPRESSED[path.suffix](path, "rb"), _DECOMPRESSED_CAP.get(), path)
        return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", errors="replace")
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


class UndetectableFormat(XtalbaseError):
    """Reading a file's content to tell its format failed (a JSON document nested 1,000 levels deep, memory):
    the file is quarantined as a ``parse_error`` naming the exception, and the other files are read."""


def detect_format(path: str | Path) -> str | None:
    """The registered format name for ``path`` (by name, then content), or ``None``.

    A loose name match (``POSCAR*``, ``*.vasp``, ``*.csv``: :attr:`Reader.name_needs_content`)
    must be confirmed by the content; a file named ``POSCAR`` that holds a CIF or a JSON
    structure is read as what it holds, and one that looks like nothing (empty, cut short)
    stays a POSCAR (:attr:`Reader.name_decides_on_doubt`) so that its reader says what is wrong.

    Raises :class:`UndetectableFormat` when looking at the content itself fails (any exception but an
    interrupt: ``RecursionError``, ``MemoryError``), naming the file and the exception.
    """
    path = Path(path)
    name = uncompressed_name(path.name)
    if NOT_STRUCTURES.match(name):
        return None
    lowered = name.lower()
    foreign = Path(lowered).suffix in FOREIGN_SUFFIXES
    by_name = [] if foreign else [name for name in FORMATS if _name_pattern(name).match(lowered)]
    if len(by_name) == 1 and not FORMATS[by_name[0]].name_needs_content:
        return by_name[0]
    try:
        return _detect_by_content(path, by_name)
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop the walk that is detecting a whole folder
        raise UndetectableFormat(f"{path}: cannot tell the format: reading its content failed: "
                                 f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def _detect_by_content(path: Path, by_name: list[str]) -> str | None:
    head = _head(path)
    if by_name and not head.strip():  # an empty file with a structure's name: its reader says so, never a silent skip
        return by_name[0]
    for fmt in by_name:
        if FORMATS[fmt].sniff(head):
            return fmt
    if len(by_name) == 1 and FORMATS[by_name[0]].name_decides_on_doubt:  # what it holds, else its reader says why
        other = next((f for f in _sniff_order() if f != by_name[0] and FORMATS[f].sniff(head)), None)
        return other or _json_kind_of(path, head) or by_name[0]
    if not by_name:
        other = next((f for f in _sniff_order() if FORMATS[f].sniff(head)), None)
        if other is not None:
            return other
    return _json_kind_of(path, head)


def _json_kind_of(path: Path, head: str) -> str | None:
    if head.lstrip()[:1] in ("[", "{"):  # JSON whose first bytes do not say (sorted keys, long metadata first)
        return _json_kind_of_file(path)
    return None


def reader(format: str) -> Callable[..., Iterator[Record | ReadError]]:
    """The ``read`` function of a registered format."""
    return FORMATS[format].read


def splitter(format: str) -> Callable[[Path], Optional[Iterable[Any]]] | None:
    """The ``split`` function of a multi-record format (its records, for ``read(path, rows_=share)``), or ``None``."""
    return FORMATS[format].split


def share_locator(format: str) -> Callable[[Any], str] | None:
    """The ``locator_of`` function of a multi-record format (the locator of one ``split`` item), or ``None``."""
    return FORMATS[format].locator_of


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
    try:
        fmt = format or detect_format(path)
    except UndetectableFormat as exc:
        yield ReadError("file", "parse_error", str(exc))
        return
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
    if isinstance(exc, TooLargeError):
        return "too_large", str(exc).removeprefix(f"{path}: ")
    if isinstance(exc, (gzip.BadGzipFile, lzma.LZMAError)):  # not compressed data at all, or a failed checksum: damaged
        return "parse_error", f"not readable as {_COMPRESSION_NAMES[suffix]} ({exc})"
    if isinstance(exc, MemoryError):  # the worker's memory cap (record_timeout/worker_memory in docs/ingest.md)
        return "memory_limit", f"{format} reader ran out of memory (MemoryError: {str(exc)[:200]})"
    if isinstance(exc, EOFError):
        return "truncated_file", f"file ends early ({exc or type(exc).__name__})"
    if suffix == ".bz2" and type(exc) is OSError:  # bz2 raises a bare OSError for data that is not bzip2
        return "parse_error", f"not readable as bzip2 ({exc})"
    return "parse_error", f"{format} reader failed: {type(exc).__name__}: {str(exc)[:300]}"
