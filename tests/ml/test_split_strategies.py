"""Properties of the pure fold assignment (no database): order independence, stability, exactness, groups."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xtalbase.ml.split_strategies import (
    SplitError,
    exact_folds,
    fold_names,
    largest_remainder,
    stable_folds,
    unit_hash,
)
from xtalbase.ml.splitters import assign

FRACTIONS = (0.6, 0.2, 0.2)


def hashes(n: int, tag: str = "") -> list[str]:
    """Distinct sha256-like canonical hashes."""
    return [hashlib.sha256(f"{tag}{i}".encode()).hexdigest() for i in range(n)]


keys_st = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True)
seed_st = st.integers(min_value=0, max_value=2**31)
strategy_st = st.sampled_from(["random", "group", "stratified", "kfold", "time"])


def _run(strategy: str, keys: list[str], seed: int, mode: str = "stable") -> list[str]:
    """Fold name per key, with groups/strata/time cut derived from the key itself."""
    folds, names = assign(
        strategy, canonical=keys, groups=[k[:1] for k in keys], strata=[str(len(k) % 3) for k in keys],
        later=[k.endswith("z") for k in keys], k=4, seed=seed, mode=mode, fractions=FRACTIONS,
    )
    return [names[f] for f in folds]


def test_unit_hash_is_a_fixed_function_in_unit_interval():
    u = unit_hash(["Fe2O3", "NaCl", "Fe2O3"], seed=0)
    assert u.shape == (3,) and u.dtype == np.float64
    assert np.all((u >= 0) & (u < 1)) and u[0] == u[2] and u[0] != u[1]
    # reference value: blake2b-64 keyed with the seed, top 53 bits
    word = int.from_bytes(hashlib.blake2b(b"NaCl", digest_size=8, key=b"xtalbase-split:0:").digest(), "little")
    assert u[1] == (word >> 11) / 2**53
    assert not np.array_equal(unit_hash(["NaCl"], seed=1), u[1:2])


@settings(max_examples=60, deadline=None)
@given(keys=keys_st, seed=seed_st, strategy=strategy_st, mode=st.sampled_from(["stable", "exact"]), data=st.data())
def test_assignment_does_not_depend_on_row_order(keys, seed, strategy, mode, data):
    perm = data.draw(st.permutations(keys))
    first = dict(zip(keys, _run(strategy, keys, seed, mode)))
    second = dict(zip(perm, _run(strategy, list(perm), seed, mode)))
    assert first == second


@settings(max_examples=60, deadline=None)
@given(keys=keys_st, extra=keys_st, seed=seed_st, strategy=strategy_st)
def test_stable_mode_never_moves_existing_structures(keys, extra, seed, strategy):
    before = dict(zip(keys, _run(strategy, keys, seed)))
    grown = keys + [k for k in extra if k not in before]
    after = dict(zip(grown, _run(strategy, grown, seed)))
    assert {k: after[k] for k in keys} == before


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=0, max_value=500), seed=seed_st,
       fractions=st.sampled_from([(0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.7, 0.0, 0.3)]))
def test_exact_mode_hits_largest_remainder_counts(n, seed, fractions):
    folds, names = assign("random", canonical=hashes(n), fractions=fractions, seed=seed, mode="exact")
    counts = np.bincount(folds, minlength=len(names))
    assert counts.tolist() == largest_remainder(n, fractions).tolist()
    assert all(abs(c - f * n) < 1 for c, f in zip(counts, fractions))


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.integers(0, 30), min_size=1, max_size=200), seed=seed_st, mode=st.sampled_from(["stable", "exact"]))
def test_group_members_always_share_a_fold(keys, seed, mode):
    groups = [f"g{k}" for k in keys]
    canonical = hashes(len(keys))
    for strategy in ("group", "kfold"):
        folds, _ = assign(strategy, canonical=canonical, groups=groups, k=3, seed=seed, mode=mode)
        fold_of = {}
        for g, f in zip(groups, folds):
            assert fold_of.setdefault(g, f) == f


def test_copies_of_one_canonical_structure_share_a_fold():
    canonical = hashes(50) * 3  # the same canonical structure stored three times (e.g. AIMD frames)
    for strategy in ("random", "stratified", "kfold"):
        for mode in ("stable", "exact"):
            folds, _ = assign(strategy, canonical=canonical, strata=["x"] * 150, k=5, mode=mode)
            assert np.array_equal(folds[:50], folds[50:100]) and np.array_equal(folds[:50], folds[100:])


def test_stable_fractions_hold_in_expectation_and_exact_within_each_stratum():
    n = 20_000
    folds, _ = assign("random", canonical=hashes(n), fractions=FRACTIONS, seed=7)
    share = np.bincount(folds) / n
    assert np.allclose(share, FRACTIONS, atol=4 * np.sqrt(0.25 / n))  # 4 sigma of a binomial
    strata = [f"sg{i % 13}" for i in range(3000)]
    folds, _ = assign("stratified", canonical=hashes(3000), strata=strata, fractions=FRACTIONS, mode="exact")
    labels = np.asarray(strata)
    for s in set(strata):
        counts = np.bincount(folds[labels == s], minlength=3)
        assert counts.tolist() == largest_remainder(int((labels == s).sum()), FRACTIONS).tolist()


def test_exact_group_split_is_within_one_group_of_target():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 6, size=400)
    groups = [f"g{i}" for i, s in enumerate(sizes) for _ in range(s)]
    folds, _ = assign("group", canonical=hashes(len(groups)), groups=groups, mode="exact", seed=3)
    targets = np.asarray(FRACTIONS) * len(groups)
    assert np.all(np.abs(np.bincount(folds, minlength=3) - targets) <= sizes.max())


def test_kfold_exact_is_balanced_and_names_folds():
    folds, names = assign("kfold", canonical=hashes(1003), k=5, mode="exact")
    assert names == ("fold0", "fold1", "fold2", "fold3", "fold4")
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1003


def test_time_split_puts_every_later_structure_in_test_and_splits_the_rest():
    canonical = hashes(1000)
    later = np.arange(1000) >= 800
    folds, names = assign("time", canonical=canonical, later=later, fractions=FRACTIONS, mode="exact")
    assert names == ("train", "val", "test")
    assert np.all(folds[later] == 2) and not np.any(folds[~later] == 2)
    assert np.bincount(folds[~later]).tolist() == [600, 200]  # 0.6 : 0.2 of the 800 earlier ones


def test_seed_changes_the_assignment():
    canonical = hashes(500)
    a, _ = assign("random", canonical=canonical, seed=0)
    b, _ = assign("random", canonical=canonical, seed=1)
    assert (a != b).mean() > 0.3


def test_fold_index_helpers_agree_on_boundaries():
    u = np.array([0.0, 0.5999, 0.6, 0.7999, 0.8, 0.99999])
    assert stable_folds(u, FRACTIONS).tolist() == [0, 0, 1, 1, 2, 2]
    assert exact_folds(np.array([]), FRACTIONS).tolist() == []
    assert fold_names((0.8, 0.2)) == ("train", "test")


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "random", "fractions": (0.6, 0.2)}, "sum to 1"),
    ({"strategy": "random", "fractions": (0.6, -0.2, 0.6)}, ">= 0"),
    ({"strategy": "random", "fractions": (0.25,) * 4}, "1 to 3 fractions"),
    ({"strategy": "kfold", "k": 1}, "k >= 2"),
    ({"strategy": "group"}, "group keys"),
    ({"strategy": "stratified"}, "stratum"),
    ({"strategy": "time"}, "time cut"),
    ({"strategy": "shuffle"}, "unknown strategy"),
    ({"strategy": "random", "mode": "fast"}, "unknown mode"),
    ({"strategy": "group", "groups": ["a"]}, "1 entries for 2"),
])
def test_bad_recipes_raise_clear_errors(kwargs, message):
    with pytest.raises(SplitError, match=message):
        assign(canonical=["a", "b"], **kwargs)
