"""Splitter classes and their registry: stored recipes and ids pinned, a new strategy is one class."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from typer.testing import CliRunner

from tests.conftest import TEST_DATA
from xtalbase.cli import app
from xtalbase.ml.splitters import (
    SPLITTERS,
    GroupSplitter,
    KFoldSplitter,
    RandomSplitter,
    SplitError,
    Splitter,
    StratifiedSplitter,
    TimeSplitter,
    make_splitter,
    register_splitter,
)

PEROV = TEST_DATA / "splits" / "perov5_220.csv"

#: Split ids written by the if/elif implementation (commit c317f18) on these 200 Perov-5 structures,
#: ingested in two runs (0:120, 120:200). A splitter refactor must reproduce them bit for bit.
PINNED = {
    "r": ({"strategy": "random", "seed": 3}, "5e6cd8d46a6890d5853101c4f9fe2bac49e238c83ad08744b50afefcd29fe613"),
    "re": ({"strategy": "random", "mode": "exact", "fractions": (0.8, 0.2)},
           "8f352869b617b85609ed577ca46f6f7fdcad869d95ad5eb8405f81283509f792"),
    "g": ({"strategy": "group", "by": "prototype", "mode": "exact"},
          "f201083da008f07f62f1a4bf416d95d753bf6f77df89f067dbe5988a70b9e537"),
    "g2": ({"strategy": "group"}, "bdc03823a8e9f756742ec8670520e484b57425c9fb0afd78fadd0bbf2b7ef8d7"),
    "s": ({"strategy": "stratified"}, "e0b20da996f0a6db60c24af86f60932f36803ac186fdee497b8ff9ea76016cb4"),
    "se": ({"strategy": "stratified", "by": "spacegroup_number", "mode": "exact", "seed": 5},
           "52c28db5554bc1dcf3a27b67b4c96ebd6384d623ed361917e36e9bc63fbaf04d"),
    "k": ({"strategy": "kfold", "k": 4, "by": "chemical_system"},
          "276670be5939cc5a376f3f934edba7b98fea8ed60dcce96f589cdf9639eb7505"),
    "k2": ({"strategy": "kfold", "k": 3, "mode": "exact"}, "60baa3348ab74af4c895c0f5fdd055b3347ec5e4a8d55bdd2ab60fb8eb285b08"),
    "t": ({"strategy": "time"}, "5655d896619e3ea56b8e1e85624cb421170f5b27e4ef61fd362e4d2fd9bfcbc6"),
    "t2": ({"strategy": "time", "fractions": (0.7, 0.3), "mode": "exact"},
           "489b6ca9ed0097c4cf793f7a873691c46bb28cc647244cd7e8dbb15c1b5d2655"),
    "sel": ({"strategy": "random", "ids": list(range(1, 150)), "seed": 2},
            "ac8873893ca41abe4de12e0a44614137c8f94fc62e89cf213e6ef22b1f907866"),
}


@pytest.fixture
def perov(db, tmp_path):
    """200 real Perov-5 structures ingested in two runs (so the time strategy has a run boundary)."""
    table = pd.read_csv(PEROV, index_col=0)
    for start, stop in ((0, 120), (120, 200)):
        path = tmp_path / f"perov_{start}.csv"
        table.iloc[start:stop].to_csv(path)
        db.ingest(path)
    return db


def test_stored_split_ids_and_recipes_did_not_change(perov):
    for name, (kwargs, pinned) in PINNED.items():
        split = perov.splits.create(name, **kwargs)
        assert split.id == pinned, name
        assert list(split.recipe)[:7] == ["strategy", "mode", "seed", "by", "fractions", "k", "cut"]
    assert perov.splits.get("k").recipe["fractions"] is None and perov.splits.get("r").recipe["k"] is None


def test_registry_names_the_builtin_classes_and_get_params_is_the_recipe():
    assert {n: c for n, c in SPLITTERS.items() if n in ("random", "group", "stratified", "kfold", "time")} == {
        "random": RandomSplitter, "group": GroupSplitter, "stratified": StratifiedSplitter,
        "kfold": KFoldSplitter, "time": TimeSplitter}
    group = GroupSplitter(by="prototype", fractions=(0.8, 0.2), seed=4, mode="exact")
    assert group.get_params() == {"by": "prototype", "fractions": (0.8, 0.2), "seed": 4, "mode": "exact"}
    recipe = group.recipe()
    assert recipe == {"strategy": "group", "mode": "exact", "seed": 4, "by": "prototype", "fractions": [0.8, 0.2],
                      "k": None, "cut": None}
    assert {k: recipe[k] for k in group.get_params()} == {**group.get_params(), "fractions": [0.8, 0.2]}
    assert clone(group).get_params() == group.get_params()  # the scikit-learn convention holds
    assert StratifiedSplitter().key_column == "crystal_system" and KFoldSplitter(k=3).key_column is None
    assert "RandomSplitter(fractions=" in repr(RandomSplitter())


@pytest.mark.parametrize("strategy, params, message", [
    ("random", {"by": "formula"}, "--by applies to the group, stratified and kfold strategies only"),
    ("time", {"by": "formula"}, "--by applies to"),
    ("group", {"cut": 3}, "--cut applies to the time strategy only"),
    ("random", {"k": 3}, "--k applies to the kfold strategy only"),
    ("kfold", {"k": 1}, "k >= 2"),
    ("random", {"seed": 1.5}, "seed must be an integer"),
    ("time", {"fractions": (1.0,)}, "needs a test fraction"),
    ("shuffle", {}, "unknown strategy 'shuffle': choose one of random, group"),
])
def test_bad_parameters_name_the_parameter(strategy, params, message):
    with pytest.raises(SplitError, match=message):
        make_splitter(strategy, **params).recipe()


class HalvesSplitter(Splitter):
    """Example strategy of this test only: train/test by the first hex digit of the canonical hash."""

    name = "halves"
    summary = "train/test by the first hex digit of the canonical hash"

    def __init__(self, threshold: str = "8", seed: int = 0, mode: str = "stable") -> None:
        self.threshold = threshold
        self.seed = seed
        self.mode = mode

    def folds(self, params, canonical, *, groups=None, strata=None, later=None):
        return np.array([int(c[0] >= params["threshold"]) for c in canonical], dtype=np.int64), ("train", "test")


def test_a_new_strategy_is_one_class_usable_from_the_store_and_the_cli(perov, db_url, monkeypatch):
    monkeypatch.setitem(SPLITTERS, "halves", HalvesSplitter)  # registered for this test only
    assert register_splitter(HalvesSplitter) is HalvesSplitter
    split = perov.splits.create("h", strategy="halves", threshold="4")
    frame = split.frame()
    assert (frame["fold"] == np.where(frame["canonical_hash"].str[0] >= "4", "test", "train")).all()
    assert split.recipe["threshold"] == "4" and split.recipe["strategy"] == "halves"
    assert perov.splits.create("h", strategy="halves", threshold="4") == split  # same recipe, same split
    with pytest.raises(SplitError, match="different recipe"):
        perov.splits.create("h", strategy="halves", threshold="c")

    runner = CliRunner()
    result = runner.invoke(app, ["split", "create", "hc", "--strategy", "halves", "--db", db_url, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["strategy"] == "halves" and set(shown["counts"]) == {"train", "test"}
    assert shown["counts"]["train"] == int((frame["canonical_hash"].str[0] < "8").sum())
    refused = runner.invoke(app, ["split", "create", "hk", "--strategy", "halves", "--k", "3", "--db", db_url])
    assert refused.exit_code == 1 and "--k applies to the kfold strategy only" in str(refused.exception)


def test_time_cut_given_as_a_datetime_is_stored_and_used(perov):
    from datetime import timedelta

    first = perov.splits.create("t", strategy="time")  # the run boundary between the two ingests
    later = set(first.ids("test"))
    stamps = perov.splits.get("t").frame().set_index("structure_id")["created_at"]
    cut = max(stamps[i] for i in first.ids() if i not in later) + timedelta(microseconds=1)
    by_time = perov.splits.create("tc", strategy="time", cut=cut)
    assert by_time.recipe["cut"] == TimeSplitter(cut=cut).recipe()["cut"]
    assert set(by_time.ids("test")) == later
