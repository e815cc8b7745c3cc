"""Byte-level mutations of real files, shared by the fuzz tests and ``bench/fuzz_campaign.py``.

A mutation is one :class:`Op`: a name from :data:`OPS` and two numbers (``where``, a
fraction of the file in [0, 1), and ``pick``, a non-negative integer choosing among
variants). Both the hypothesis strategy (:func:`ops`) and the campaign's seeded
``random.Random`` draw the same three values, so a failing case is reproduced by its
op list alone. Compressed seeds (``*.gz``) are mutated decompressed and compressed
again; ``cut_gzip`` then cuts the compressed stream.
"""

from __future__ import annotations

import gzip
import random
import re
from dataclasses import dataclass
from pathlib import Path

#: Replacements for a number in the file: non-finite, overflowing, tiny and huge values, and the angles and
#: counts the campaign found hanging or exhausting memory (gamma 179.9999 deg, 1e9 ions, an atom 5e8 A away).
SPECIAL_NUMBERS = (
    b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e308", b"-1e308", b"1e309", b"1e-7", b"0", b"-0.0",
    b"1000000000", b"99999999999999999999999999", b"5e8", b"179.9999", b"1/inf",
)

#: Bytes that are not UTF-8 (a lone continuation byte, an invalid start byte, a cut two-byte sequence).
NON_UTF8 = b"\xff\xfe\x80\xc3"

OPS = (
    "truncate", "flip_bit", "delete_bytes", "duplicate_line", "delete_line", "replace_number", "lowercase_word",
    "insert_non_utf8", "empty", "binary", "deep_json", "cut_gzip",
)

_NUMBER = re.compile(rb"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_WORD = re.compile(rb"[A-Z][a-z]?")


@dataclass(frozen=True)
class Op:
    """One mutation: ``name`` from :data:`OPS`, ``where`` in [0, 1) and ``pick`` >= 0."""

    name: str
    where: float
    pick: int

    def __str__(self) -> str:
        return f"{self.name}@{self.where:.3f}/{self.pick}"


def _at(data: bytes, where: float) -> int:
    return min(int(where * len(data)), max(len(data) - 1, 0))


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def apply_op(data: bytes, op: Op) -> bytes:
    """``data`` after ``op`` (``cut_gzip`` is left to :func:`mutate`, which sees the compressed bytes)."""
    name, where, pick = op.name, op.where, op.pick
    i = _at(data, where)
    if name == "truncate":
        return data[:i]
    if name == "flip_bit":
        return data[:i] + bytes([data[i] ^ (1 << pick % 8)]) + data[i + 1:] if data else data
    if name == "delete_bytes":
        return data[:i] + data[i + 1 + pick % 16:]
    if name in ("duplicate_line", "delete_line"):
        lines = _lines(data)
        k = min(int(where * len(lines)), len(lines) - 1)
        lines[k:k + 1] = [lines[k]] * 2 if name == "duplicate_line" else []
        return b"".join(lines)
    if name == "replace_number":
        found = list(_NUMBER.finditer(data))
        if not found:
            return data
        m = found[min(int(where * len(found)), len(found) - 1)]
        return data[:m.start()] + SPECIAL_NUMBERS[pick % len(SPECIAL_NUMBERS)] + data[m.end():]
    if name == "lowercase_word":  # an element symbol's case lost, or its first letter deleted (Si -> si, i)
        found = list(_WORD.finditer(data))
        if not found:
            return data
        m = found[min(int(where * len(found)), len(found) - 1)]
        word = m.group().lower() if pick % 2 == 0 else m.group()[1:]
        return data[:m.start()] + word + data[m.end():]
    if name == "insert_non_utf8":
        return data[:i] + NON_UTF8[pick % len(NON_UTF8):] + data[i:]
    if name == "empty":
        return b""
    if name == "binary":
        return random.Random(pick).randbytes(1 + pick % 4096)
    if name == "deep_json":  # about 2 kB of brackets is enough to exceed Python's recursion limit
        depth = 1000 + pick % 3000
        nested = b"[" * depth + b"]" * depth
        return nested if pick % 2 == 0 else b'{"structure": ' + nested + b"}"
    if name == "cut_gzip":
        return data
    raise ValueError(f"unknown mutation {name!r}: choose one of {', '.join(OPS)}")


def mutate(data: bytes, ops: list[Op], *, compressed: bool = False) -> bytes:
    """Apply ``ops`` in order; a ``compressed`` seed is given decompressed and comes back gzip-compressed."""
    for op in ops:
        data = apply_op(data, op)
    if not compressed:
        return data
    packed = gzip.compress(data, mtime=0)
    for op in ops:
        if op.name == "cut_gzip":
            packed = packed[:max(10, _at(packed, op.where))]  # keep the gzip header, lose the stream's end
    return packed


def random_ops(rng: random.Random, *, most: int = 3) -> list[Op]:
    """1 to ``most`` ops drawn from ``rng`` (the campaign's counterpart of :func:`ops`)."""
    return [Op(rng.choice(OPS), rng.random(), rng.randrange(1 << 16)) for _ in range(rng.randint(1, most))]


def ops(most: int = 3):
    """A hypothesis strategy of 1 to ``most`` :class:`Op`.

    Half the draws are op lists built by hypothesis (they shrink to the simplest failing
    mutation), half come from a drawn ``random.Random`` seed: hypothesis favours ``0`` and
    the first op, which alone would mutate mostly the first byte or empty the file.
    """
    from hypothesis import strategies as st

    # hypothesis favours (and shrinks towards) the first name: the number replacement, not an empty file
    names = ("replace_number", *(name for name in OPS if name != "replace_number"))
    op = st.builds(Op, st.sampled_from(names), st.floats(0, 1, exclude_max=True), st.integers(0, (1 << 16) - 1))
    seeded = st.integers(0, (1 << 32) - 1).map(lambda s: random_ops(random.Random(s), most=most))
    return st.one_of(st.lists(op, min_size=1, max_size=most), seeded)


def seed_bytes(path: Path) -> tuple[bytes, bool]:
    """A seed file's content, decompressed, and whether it was gzip-compressed."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(raw), True
    return raw, False
