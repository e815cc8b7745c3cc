"""Every content hash xtalbase stores, defined once: canonical JSON, sets, memberships, files, recipes.

A stored hash is compared with one computed later (on another backend, by
another version), so each encoding here is frozen: changing one changes the
identity of every row that carries it. ``SET_HASH_VERSION`` names the one
encoding of "a set of structures" shared by datasets, split folds and
``models.training_set_hash`` (migration 0006 rewrote older model rows to it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

#: The encoding of :func:`set_hash`: sorted exact hashes, each followed by a newline.
SET_HASH_VERSION = "set/v2"
#: The encoding of :func:`labelled_set_hash`: sorted ``exact_hash<TAB>labels_hash`` lines (:func:`labels_hash`).
LABELLED_SET_HASH_VERSION = "labelled-set/v1"

_CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys and no spaces, UTF-8: the bytes every JSON-valued hash is taken over.

    Values JSON cannot hold (dates, paths) are written with ``str``.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON values for JSON columns on both backends: numpy scalars made Python, non-finite floats
    as ``None``, tuples as lists, keys as text."""
    import math

    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def json_sha256(obj: Any) -> str:
    """Hex sha256 of :func:`canonical_json` of ``obj``."""
    return sha256_bytes(canonical_json(obj))


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (files can be larger than memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def set_hash(exact_hashes: Iterable[str]) -> str:
    """The content address of a set of structures: sha256 over the sorted exact hashes, one per line.

    The same set gives the same hash wherever it is computed: a dataset, a
    split fold and the training set of a model trained on either.
    """
    digest = hashlib.sha256()
    for h in sorted(exact_hashes):
        digest.update(f"{h}\n".encode())
    return digest.hexdigest()


def legacy_set_hash(exact_hashes: Iterable[str]) -> str:
    """The pre-0006 ``models.training_set_hash`` encoding (lines joined without a final newline).

    Kept only so the data migration can recognise and rewrite old rows.
    """
    return sha256_bytes("\n".join(sorted(exact_hashes)).encode())


def membership_hash(pairs: Iterable[tuple[str, str]]) -> str:
    """The content address of a split membership: sha256 over sorted ``exact_hash<TAB>fold`` lines."""
    digest = hashlib.sha256()
    for exact, fold in sorted(pairs):
        digest.update(f"{exact}\t{fold}\n".encode())
    return digest.hexdigest()


def labels_hash(energy: float | None, forces: bytes | None, stress: bytes | None) -> str:
    """The content address of one calculation's labels, as a model trains on them.

    sha256 over three lines, ``energy=``, ``forces=``, ``stress=``, each followed by ``-`` when the label is
    absent, else by the energy's ``repr`` (eV per cell) or the byte length, ``:`` and the little-endian float64
    bytes of the array (forces (n, 3) eV/Å, stress (3, 3) eV/Å³); the length prefix keeps the encoding unambiguous.
    """
    digest = hashlib.sha256()
    digest.update(b"energy=" + (b"-" if energy is None else repr(float(energy)).encode()) + b"\n")
    for name, blob in ((b"forces=", forces), (b"stress=", stress)):
        digest.update(name + (b"-" if blob is None else str(len(blob)).encode() + b":" + bytes(blob)) + b"\n")
    return digest.hexdigest()


def labelled_set_hash(pairs: Iterable[tuple[str, str]]) -> str:
    """The content address of a labelled training set: ``(exact_hash, labels_hash)`` pairs in any order.

    The same structures with other chosen calculations give another hash. The lines are encoded as
    :func:`membership_hash` encodes ``(exact_hash, fold)`` pairs.
    """
    return membership_hash(pairs)


def split_hash(recipe: Mapping[str, Any], members_sha256: str) -> str:
    """A split's id: sha256 over the canonical JSON of its recipe and membership hash."""
    return json_sha256({"recipe": recipe, "members": members_sha256})


def recipe_hash(spec: Mapping[str, Any]) -> str:
    """An XRD recipe's identity: sha256 of the canonical JSON of its peak-changing fields.

    The radiation label is left out: two names for one wavelength are one recipe.
    """
    return json_sha256({k: v for k, v in spec.items() if k != "radiation"})


def lines_hash(lines: Iterable[str]) -> str:
    """sha256 over ``lines`` joined by newlines, in the order given (e.g. a sorted list of file hashes)."""
    return sha256_bytes("\n".join(lines).encode())
