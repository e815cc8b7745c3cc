"""The files of an ingest: walk the given paths, tell each file's format, and account for every path not read.

Nothing met is dropped without a word. A path that cannot be read at all (a symbolic link loop, a folder or file
without read permission, a FIFO, a device such as ``/dev/zero``, a socket) is *skipped* and listed in
:class:`Walk` (the ingest summary reports the count and examples); special files are never opened, so a FIFO
cannot hang the walk. A file whose format cannot be told because reading it failed (JSON nested 1,000 levels
deep) and a symbolic link to a structure file outside the given tree are kept, to be quarantined (``parse_error``
and ``unsafe_path``, the latter never read), so that they count as read and the other files are stored.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from xtalbase.errors import XtalbaseError
from xtalbase.ingest.formats import FORMATS, TooLargeError, UndetectableFormat, detect_format, never_a_structure
from xtalbase.ingest.writer import printable

#: Skipped paths kept by name in :attr:`Walk.skipped` (the rest are only counted).
MAX_SKIPPED_KEPT = 1000


@dataclass
class Walk:
    """What a walk met besides the files to read.

    Attributes
    ----------
    skipped : list of (str, str)
        ``(path, why)`` of paths not read: loops, no permission, special files (at most
        :data:`MAX_SKIPPED_KEPT`; ``skipped_count`` counts them all).
    skipped_count : int
        How many paths were skipped.
    refused : dict
        ``{link: message}``: symbolic links to a file outside the given tree (quarantined as ``unsafe_path``,
        never read).
    undetected : dict
        ``{file: message}``: files whose content could not be looked at to tell the format (``parse_error``, or
        the reason in ``reasons``).
    reasons : dict
        ``{file: reason}`` for the ``undetected`` files quarantined with another reason than ``parse_error``
        (``too_large``: a compressed file that expands past ``max_decompressed_mb`` while its format is told).
    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    refused: dict[Path, str] = field(default_factory=dict)
    undetected: dict[Path, str] = field(default_factory=dict)
    reasons: dict[Path, str] = field(default_factory=dict)

    def skip(self, path: Path, why: str) -> None:
        """Note ``path`` as not read, for ``why``."""
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_KEPT:
            self.skipped.append((printable(os.fsdecode(path)), why))


def find_files(paths: Sequence[str | Path] | str | Path, format: Optional[str] = None,
               hints: Optional[dict[Path, str]] = None, walk: Optional[Walk] = None) -> list[tuple[Path, str | None]]:
    """Expand ``paths`` (directories recurse, sorted) into ``(file, format)``; unknown files inside folders are skipped.

    An explicitly named file of unknown format is kept (format ``None``) so that it
    is quarantined with a reason instead of silently ignored; so is a file whose format could not be told
    because reading it failed, and a link to a file outside the given tree (both noted in ``walk``).
    ``format`` forces the reader of every named file and of the files inside folders, except those that are
    never structures (:func:`~xtalbase.ingest.formats.never_a_structure`). ``hints``,
    when given, is filled with each file's path from the named folder down (the folder
    names that may tell its source database; never the folders above what was named). ``walk``, when given,
    is filled with the paths skipped and the files to refuse (:class:`Walk`).
    """
    if format is not None and format not in FORMATS:  # before the walk, which may take minutes on a large tree
        raise XtalbaseError(f"unknown format {format!r}: choose one of {', '.join(sorted(FORMATS))}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    walk = walk if walk is not None else Walk()
    named = _named(paths, walk)
    # every named folder and file is inside the given tree, whatever the order the paths were named in
    roots = [os.path.realpath(path) for path, _ in named]
    links: list[Path] = []
    walked = [(path, _files_of(path, st, format, walk, roots, links)) for path, st in named]
    # judged after every walk, when every named path and linked folder is known: the order of names must not decide
    for link in links:
        target = os.path.realpath(link)
        if not any(_inside(target, root) for root in roots):
            walk.refused[link] = (f"{link}: a symbolic link to {target}, outside the given paths: not read (name the "
                                  f"target itself to ingest it)")
    out: list[tuple[Path, str | None]] = []
    seen: set[tuple[int, int]] = set()  # (device, inode): a file given twice, or by two names, is read once
    refused_seen: set[tuple[int, int]] = set()  # the links themselves: a refused link met twice is refused once
    for path, found in walked:
        base = Path(path.resolve().name) if hints is not None else None  # once per named path, not per file
        for child, fmt, child_st in found:  # one stat per file: its type, then its identity
            # a refused link is never read: it must not hide its target, when that is reached another way
            ids, key = (refused_seen, _identity(child.lstat())) if child in walk.refused else (seen, _identity(child_st))
            if key in ids:
                continue
            ids.add(key)
            out.append((child, fmt))
            if hints is not None:
                hints[child] = str(base / child.relative_to(path)) if child != path else child.name
    return out


def _named(paths: Sequence[str | Path], walk: Walk) -> list[tuple[Path, os.stat_result]]:
    """``(path, its stat)`` of each named path that can be looked at; a missing one is an error, the rest skipped."""
    named = []
    for given in paths:
        path = Path(given)
        try:
            named.append((path, path.stat()))
        except (FileNotFoundError, NotADirectoryError):
            raise XtalbaseError(f"no such file or directory: {path}") from None
        except OSError as exc:
            walk.skip(path, _why(exc))
    return named


def _files_of(path: Path, st: os.stat_result, format: Optional[str], walk: Walk, roots: list[str],
              links: list[Path]) -> list[tuple[Path, str | None, os.stat_result]]:
    """``(file, format, its stat)`` of a named folder (walked) or file; a named special file is skipped."""
    if stat.S_ISREG(st.st_mode):
        return [(path, format or _detect(path, walk), st)]
    if not stat.S_ISDIR(st.st_mode):
        walk.skip(path, _special(st))
        return []
    found = []
    for child, child_st in _walk_tree(path, walk, roots, links):
        # a forced format applies to the structure files of a folder, never to its INCAR, POTCAR or images
        fmt = (None if never_a_structure(child) else format) if format else _detect(child, walk)
        if fmt is not None or child in walk.undetected:
            found.append((child, fmt, child_st))
        elif not format and not os.access(child, os.R_OK):  # unknown because unreadable: say so
            walk.skip(child, "no read permission")
    return found


def _detect(path: Path, walk: Walk) -> str | None:
    # a link leaving the tree is sniffed too (4 kB, never stored): a POTCAR linked from a shared library stays
    # unrecognised, and only a link that looks like a structure is refused with a quarantine row
    try:
        return detect_format(path)
    except UndetectableFormat as exc:
        if isinstance(exc.__cause__, TooLargeError):  # past the decompression cap: too_large, like its reader says
            walk.undetected[path] = str(exc.__cause__)
            walk.reasons[path] = "too_large"
        else:
            walk.undetected[path] = str(exc)
        return None


def _walk_tree(folder: Path, walk: Walk, roots: list[str],
               links: list[Path]) -> Iterator[tuple[Path, os.stat_result]]:
    """``(file, its stat)`` under ``folder`` in sorted path order, through symlinked folders, each folder once.

    Names starting with ``.`` (files and folders: ``.git``, ``.ipynb_checkpoints`` copies) are left out. A
    broken link comes with its own ``lstat``: kept like a file, its reader says it is broken. A link back up the
    tree (a loop) or a second way into a folder already walked is not followed again. A symlinked folder joins
    the tree (shared runs kept elsewhere and linked in: its real path is added to ``roots``); each link to a file
    is added to ``links`` (and yielded), for the caller to judge against ``roots`` once every named path is
    walked. Paths that cannot be read, loops of links and special files are noted in ``walk.skipped``.
    """
    seen: set[tuple[int, int]] = set()

    def visit(directory: Path, st: os.stat_result) -> Iterator[tuple[Path, os.stat_result]]:
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(directory) as entries:
                found = sorted((e.name, e.is_symlink()) for e in entries if not e.name.startswith("."))
        except OSError as exc:  # unreadable folder: nothing in it can be read either
            walk.skip(directory, f"folder not readable ({_why(exc)})")
            return
        for name, is_link in found:
            child = directory / name
            try:
                child_st = child.stat()
            except FileNotFoundError:
                if child.is_symlink():
                    yield child, child.lstat()
                continue
            except OSError as exc:  # a link loop (ELOOP), no permission on the way
                walk.skip(child, _why(exc))
                continue
            if stat.S_ISDIR(child_st.st_mode):
                if is_link:
                    roots.append(os.path.realpath(child))
                yield from visit(child, child_st)
            elif stat.S_ISREG(child_st.st_mode):
                if is_link:
                    links.append(child)
                yield child, child_st
            else:
                walk.skip(child, _special(child_st))

    yield from visit(folder, folder.stat())


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def _special(st: os.stat_result) -> str:
    kinds: list[tuple[Callable[[int], bool], str]] = [
        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket")]
    kind = next((what for test, what in kinds if test(st.st_mode)), "not a regular file")
    return f"{kind}, not a regular file: not opened"


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a loop of symbolic links"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "no permission"
    return exc.strerror or type(exc).__name__
