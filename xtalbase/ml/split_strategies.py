"""Pure fold assignment for splits: no database, no row order, no clock.

Every structure gets a number ``u`` in [0, 1) from a keyed hash of its key
(blake2b, 64 bits, keyed with the seed), and the fold follows from ``u`` alone:

* **stable** mode (default) compares ``u`` with the cumulative fractions. A
  structure's fold depends only on (seed, key), so adding structures never moves
  an existing one; fold sizes match the fractions only in expectation (binomial
  scatter, about ``sqrt(n f (1 - f))`` members, and whole groups for group splits).
* **exact** mode sorts the keys by ``u`` and cuts at the target counts (largest
  remainder rounding), so a fixed set hits the fractions exactly (to within one
  group for group splits), but adding structures shifts the cuts and can move
  existing structures.

The key is the canonical hash for ``random`` (so copies of one canonical
structure always share a fold), the group key for ``group`` and grouped
``kfold``, and (stratum, canonical hash) for ``stratified``. The strategies
themselves are classes in :mod:`xtalbase.ml.splitters`; this module holds the
hashing and fold arithmetic they share.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

# the error and the modes live with the splitter classes, which the CLI imports without numpy
from xtalbase.ml.splitters import SplitError

#: Name and version of the assignment algorithm, recorded in every recipe.
ALGORITHM = "blake2b64-keyed/v1"
_FOLDS_BY_COUNT = {1: ("train",), 2: ("train", "test"), 3: ("train", "val", "test")}
_SEP = "\x1f"  # unit separator: joins (stratum, key) without ambiguity


def fold_names(fractions: Sequence[float] | None = None, k: int | None = None) -> tuple[str, ...]:
    """Fold names: ``train``/``val``/``test`` for fractions (``train``/``test`` for two), ``fold0..`` for k folds."""
    if k is not None:
        return tuple(f"fold{i}" for i in range(k))
    return _FOLDS_BY_COUNT[len(check_fractions(fractions))]


def check_fractions(fractions: Sequence[float] | None) -> tuple[float, ...]:
    """Validate fractions (1 to 3 values >= 0 summing to 1); returns them as floats."""
    if fractions is None:
        raise SplitError("fractions are required (e.g. 0.6 0.2 0.2)")
    values = tuple(float(f) for f in fractions)
    if not 1 <= len(values) <= 3:
        raise SplitError(f"give 1 to 3 fractions (train [val] test), got {len(values)}: {values}")
    if any(not np.isfinite(f) or f < 0 for f in values):
        raise SplitError(f"fractions must be finite and >= 0, got {values}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise SplitError(f"fractions must sum to 1, got {values} (sum {sum(values):.6g})")
    return values


def check_k(k: int | None) -> int:
    """Validate the number of folds of a k-fold split."""
    if k is None or int(k) != k or k < 2:
        raise SplitError(f"kfold needs k >= 2, got {k!r}")
    return int(k)


def hash_words(keys: Iterable[str], seed: int, salt: str = "") -> np.ndarray:
    """64-bit keyed blake2b of each key, shape (n,) uint64: the same (seed, salt, key) gives the same word anywhere."""
    hkey = f"xtalbase-split:{int(seed)}:{salt}".encode()[:64]
    b2 = hashlib.blake2b
    blob = b"".join([b2(k.encode(), digest_size=8, key=hkey).digest() for k in keys])
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64)


def to_unit(words: np.ndarray) -> np.ndarray:
    """Map uint64 hash words to floats in [0, 1) (top 53 bits), shape unchanged."""
    return (words >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def unit_hash(keys: Iterable[str], seed: int, salt: str = "") -> np.ndarray:
    """Map each key to a number in [0, 1), shape (n,) float64: blake2b-64 keyed with ``seed``."""
    return to_unit(hash_words(keys, seed, salt))


def largest_remainder(total: int, fractions: Sequence[float]) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``total * fractions`` (ties to the earlier fold)."""
    f = np.asarray(fractions, dtype=np.float64)
    raw = f * total
    counts = np.floor(raw + 1e-9).astype(np.int64)
    short = int(total - counts.sum())
    if short > 0:
        order = np.lexsort((np.arange(len(f)), -(raw - counts)))
        counts[order[:short]] += 1
    return counts


def stable_folds(u: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Fold index of each ``u`` (n,) by comparison with the cumulative fractions; shape (n,) int64."""
    cuts = np.cumsum(np.asarray(fractions, dtype=np.float64))[:-1]
    return np.searchsorted(cuts, u, side="right").astype(np.int64)


def exact_folds(u: np.ndarray, fractions: Sequence[float], groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index (n,) int64 hitting the fractions exactly: sort members by (``u``, group), cut at counts.

    ``u`` (n,) are hash values (floats in [0, 1) or uint64 words); ``groups`` (n,) integer
    group codes (see :func:`keyed_words`): members of one group share ``u`` and stay
    together, and a group goes to the fold
    holding its middle member, so counts are exact for singleton groups and within one
    group otherwise.
    """
    n = len(u)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if groups is None:
        groups = np.arange(n)
    order = np.lexsort((groups, u))
    sorted_groups = groups[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = sorted_groups[1:] != sorted_groups[:-1]
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.append(starts, n))
    gid = np.cumsum(new_group) - 1
    mid = np.empty(n, dtype=np.float64)
    mid[order] = starts[gid] + sizes[gid] / 2.0
    bounds = np.cumsum(largest_remainder(n, fractions))[:-1]
    return np.searchsorted(bounds, mid, side="right").astype(np.int64)


def factorize(keys: Sequence[str], sort: bool = False) -> tuple[np.ndarray, list[str]]:
    """Integer code per key, shape (n,) int64, and the distinct keys (first-seen order, or sorted)."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(keys, dtype=object), sort=sort)
    return codes.astype(np.int64), list(uniques)


def keyed_words(keys: Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash word per member (n,) uint64, group code per member (n,) int64), hashing each distinct key once.

    Codes follow first-seen order unless two distinct keys share a 64-bit word (odds about
    n²/2^65); then they are renumbered in sorted key order, so sorting by (word, code)
    never depends on row order.
    """
    codes, uniques = factorize(keys)
    words = hash_words(uniques, seed)
    if len(np.unique(words)) < len(words):
        codes, uniques = factorize(keys, sort=True)
        words = hash_words(uniques, seed)
    return (words[codes] if len(codes) else np.zeros(0, dtype=np.uint64)), codes


def check_length(name: str, values: object, n: int) -> None:
    """Raise :class:`SplitError` when ``values`` (if given) does not have one entry per structure."""
    if values is not None and len(values) != n:  # type: ignore[arg-type]
        raise SplitError(f"{name} has {len(values)} entries for {n} structures")  # type: ignore[arg-type]


def split_keys(keys: Sequence[str], fractions: Sequence[float], seed: int, mode: str) -> np.ndarray:
    """Fold index (n,) int64 of each key: equal keys share a fold (``stable`` or ``exact`` mode)."""
    words, codes = keyed_words(keys, seed)  # a group of ten members costs one hash, not ten
    if mode == "stable":
        return stable_folds(to_unit(words), fractions)
    return exact_folds(words, fractions, codes)


def split_strata(strata: Sequence[str], canonical: Sequence[str], fractions: Sequence[float], seed: int,
                 mode: str) -> np.ndarray:
    """Fold index (n,) int64 by (stratum, canonical hash); ``exact`` mode hits the fractions within each stratum."""
    keys = [s + _SEP + c for s, c in zip(strata, canonical)]
    if mode == "stable":
        return split_keys(keys, fractions, seed, mode)
    words, codes = keyed_words(keys, seed)
    out = np.empty(len(keys), dtype=np.int64)
    stratum_codes, _ = factorize(strata)
    by_stratum = np.argsort(stratum_codes, kind="stable")
    starts = np.flatnonzero(np.diff(stratum_codes[by_stratum], prepend=-1))
    for idx in np.split(by_stratum, starts[1:]):
        # copies of one canonical structure in a stratum share a key and so a fold
        out[idx] = exact_folds(words[idx], fractions, codes[idx])
    return out


def prototype_key(formula_anonymous: str, spacegroup_number: int | None) -> str:
    """The prototype of a structure: anonymous formula and space group number (``ABC3_221``)."""
    return f"{formula_anonymous}_{spacegroup_number if spacegroup_number is not None else 'na'}"


def leakage(folds: Sequence[str], keys: Mapping[str, Sequence[str]], examples: int = 5) -> dict[str, dict[str, Any]]:
    """Values of each identity key that occur in more than one fold.

    Parameters
    ----------
    folds : (n,) fold name per structure.
    keys : key name -> (n,) values (canonical hash, reduced formula, chemical system, prototype, ...).
    examples : how many leaked values to list per key (most widespread first).

    Returns, per key: ``values`` (number of leaked values), ``structures`` (members
    carrying a leaked value) and ``examples`` (``value`` and its ``folds`` counts).
    """
    import pandas as pd

    out: dict[str, dict[str, Any]] = {}
    for name, values in keys.items():
        check_length(name, values, len(folds))
        table = pd.DataFrame({"value": list(values), "fold": list(folds)})
        per_fold = table.groupby(["value", "fold"], sort=True).size()
        spread = per_fold.groupby(level=0).size()
        leaked = spread[spread > 1].index
        if len(leaked) == 0:
            out[name] = {"values": 0, "structures": 0, "examples": []}
            continue
        leaked_counts = per_fold[per_fold.index.get_level_values(0).isin(leaked)]
        totals = leaked_counts.groupby(level=0).sum().sort_index()
        ranked = sorted(totals.index, key=lambda v: (-int(spread[v]), -int(totals[v]), str(v)))
        out[name] = {
            "values": int(len(leaked)),
            "structures": int(totals.sum()),
            "examples": [{"value": str(v), "folds": {str(f): int(c) for f, c in leaked_counts.loc[v].items()}}
                         for v in ranked[:examples]],
        }
    return out
