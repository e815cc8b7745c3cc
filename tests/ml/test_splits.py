"""Splits on a real database (SQLite and PostgreSQL): ids, growth stability, immutability, leakage, strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

import xtalbase
from tests.conftest import TEST_DATA, new_database_url
from tests.ml.splitsupport import add_synthetic, population, spec
from xtalbase.errors import NotFound
from xtalbase.ml.split_strategies import SplitError
from xtalbase.schema import Split, SplitMember, Structure

PEROV = TEST_DATA / "splits" / "perov5_220.csv"  # first 220 rows of perov5/test.csv


def ingest_rows(db, tmp_path, start: int, stop: int):
    """Ingest rows ``start:stop`` of the Perov-5 fixture (real structures) in one run."""
    import pandas as pd

    path = tmp_path / f"perov5_{start}_{stop}.csv"
    pd.read_csv(PEROV, index_col=0).iloc[start:stop].to_csv(path)
    report = db.ingest(path)
    assert report.inserted == stop - start and not report.quarantined
    return report


@pytest.fixture
def perov(db, tmp_path):
    """A database holding the first 200 Perov-5 structures."""
    ingest_rows(db, tmp_path, 0, 200)
    return db


def test_same_recipe_gives_the_same_id_on_sqlite_and_postgresql(tmp_path):
    results = []
    for backend in ("sqlite", "postgresql"):  # both in one test: the ids must agree across backends
        with new_database_url(backend, tmp_path) as url:
            db = xtalbase.connect(url)
            db.init()
            ingest_rows(db, tmp_path, 0, 120)
            splits = [db.splits.create("r", strategy="random", seed=3),
                      db.splits.create("g", strategy="group", by="prototype", mode="exact"),
                      db.splits.create("k", strategy="kfold", k=4, by="chemical_system")]
            results.append([(s.id, s.counts) for s in splits])
            # the second create of the same recipe returns the stored split, same id
            assert db.splits.create("r", strategy="random", seed=3).id == splits[0].id
            db.close()
    assert results[0] == results[1]
    assert len({r[0] for r in results[0]}) == 3  # different recipes, different ids


GROWTH_RECIPES = [("random", None), ("group", "formula_reduced"), ("group", "prototype"),
                  ("stratified", "spacegroup_number"), ("kfold", "chemical_system"), ("kfold", None)]


def test_ten_percent_growth_moves_no_existing_structure(perov, tmp_path):
    def create(tag, strategy, by):
        return perov.splits.create(f"{tag}-{strategy}-{by}", strategy=strategy, by=by,
                                   k=5 if strategy == "kfold" else None, seed=11)

    before = {(st, by): create("before", st, by).members() for st, by in GROWTH_RECIPES}
    ingest_rows(perov, tmp_path, 200, 220)  # 10% more real structures, in a later run
    for (strategy, by), old in before.items():
        after = create("after", strategy, by).members()
        assert len(after) == 220 and set(old) < set(after)
        moved = [sid for sid, fold in old.items() if after[sid] != fold]
        assert moved == [], (strategy, by)
        assert perov.splits.get(f"before-{strategy}-{by}").members() == old  # stored splits never change


def test_exact_mode_hits_fractions_and_documents_the_trade_off(perov):
    split = perov.splits.create("exact", strategy="random", mode="exact", fractions=(0.6, 0.2, 0.2))
    assert split.counts == {"train": 120, "val": 40, "test": 40}
    # stable mode trades exact counts for growth stability: binomial scatter around the targets
    stable = perov.splits.create("stable", strategy="random")
    assert sum(stable.counts.values()) == 200
    assert all(abs(stable.counts[f] - 200 * p) <= 4 * np.sqrt(200 * p * (1 - p))
               for f, p in zip(("train", "val", "test"), (0.6, 0.2, 0.2)))
    assert stable.recipe["mode"] == "stable" and split.recipe["mode"] == "exact" and stable.id != split.id


def test_recreating_a_name_with_another_recipe_is_an_error(perov):
    first = perov.splits.create("s", strategy="random", seed=0)
    assert perov.splits.create("s", strategy="random", seed=0) == first
    with pytest.raises(SplitError, match="different recipe.*seed"):
        perov.splits.create("s", strategy="random", seed=1)
    with pytest.raises(SplitError, match="different recipe.*strategy"):
        perov.splits.create("s", strategy="group", by="formula_reduced")
    assert [s["name"] for s in perov.splits.list()] == ["s"]


def test_membership_is_immutable_through_the_orm_and_raw_sql(perov):
    split = perov.splits.create("frozen", strategy="random")
    sid, fold = next(iter(split.members().items()))
    other = next(f for f in split.folds if f != fold)
    statements = [
        f"UPDATE split_members SET fold = '{other}' WHERE split_id = {split.pk} AND structure_id = {sid}",
        f"DELETE FROM split_members WHERE split_id = {split.pk}",
        f"INSERT INTO split_members (split_id, structure_id, fold) VALUES ({split.pk}, {sid}, 'extra')",
        f"UPDATE splits SET hash = 'forged' WHERE id = {split.pk}",
        f"UPDATE splits SET sealed = false WHERE id = {split.pk}",
        f"DELETE FROM splits WHERE id = {split.pk}",
    ]
    for statement in statements:
        with perov.engine.connect() as conn:
            with pytest.raises(IntegrityError, match="immutable"):
                conn.execute(sa.text(statement))
            conn.rollback()
    with perov.session() as s:  # the ORM goes through the same triggers
        member = s.get(SplitMember, (split.pk, sid))
        member.fold = other
        with pytest.raises(IntegrityError, match="immutable"):
            s.commit()
        s.rollback()
        s.delete(s.get(Split, split.pk))
        with pytest.raises(IntegrityError, match="immutable"):
            s.commit()
    assert perov.splits.get("frozen").members() == split.members()
    assert perov.splits.get("frozen").id == split.id


def test_group_splits_do_not_leak_their_key_and_check_finds_other_keys(perov):
    for key in ("formula_reduced", "chemical_system", "prototype"):
        report = perov.splits.create(f"g-{key}", strategy="group", by=key).check()
        assert report["keys"][key] == {"values": 0, "structures": 0, "examples": []}
    # a random split of real perovskites shares prototypes between folds: the check must say so
    report = perov.splits.create("random", strategy="random").check()
    proto = report["keys"]["prototype"]
    assert report["leaked"] and proto["values"] > 0 and proto["examples"]
    frame = perov.splits.get("random").frame()
    worst = proto["examples"][0]
    assert frame.loc[frame["prototype"] == worst["value"], "fold"].value_counts().to_dict() == worst["folds"]


def test_check_finds_planted_leaks(db):
    # hand-made: the same canonical structure stored twice, and two different NaCl entries
    ids = add_synthetic(db, [spec(0, "NaCl", canonical="c" * 64), spec(1, "NaCl"), spec(2, "KCl", canonical="c" * 64),
                             spec(3, "MgO"), spec(4, "CaO")])
    with db.session() as s:
        hashes = dict(s.execute(sa.select(Structure.id, Structure.exact_hash)).all())
    folds = ["train", "test", "val", "train", "test"]
    planted = db.splits.store_imported("planted", {"strategy": "imported", "mode": "imported", "seed": 0},
                                       ids, folds, [hashes[i] for i in ids], ["train", "val", "test"])
    report = planted.check()
    assert report["keys"]["formula_reduced"]["values"] == 1
    assert report["keys"]["formula_reduced"]["examples"] == [{"value": "NaCl", "folds": {"test": 1, "train": 1}}]
    assert report["keys"]["canonical_hash"]["examples"] == [{"value": "c" * 64, "folds": {"train": 1, "val": 1}}]
    assert report["keys"]["chemical_system"]["structures"] == 2


def test_strategies_on_real_data(perov):
    strat = perov.splits.create("strat", strategy="stratified", by="crystal_system", mode="exact")
    frame = strat.frame()
    for _, group in frame.groupby("crystal_system"):
        counts = group["fold"].value_counts()
        assert abs(counts.get("train", 0) - 0.6 * len(group)) < 1
    kfold = perov.splits.create("k5", strategy="kfold", k=5, mode="exact")
    assert kfold.folds == [f"fold{i}" for i in range(5)] and set(kfold.counts.values()) == {40}
    prop = perov.splits.create("by-formula-prop", strategy="group", by="formula")  # a CSV column kept as a source property
    assert prop.recipe["resolved"]["by"] == "formula_reduced"
    by_source = perov.splits.create("by-heat", strategy="group", by="heat_all")
    frame = by_source.frame()
    assert sum(by_source.counts.values()) == 200 and by_source.recipe["resolved"]["by"] == "heat_all"
    with pytest.raises(SplitError, match="unknown --by column 'nonsense'.*heat_ref"):
        perov.splits.create("bad", strategy="group", by="nonsense")


def test_time_split_puts_later_runs_on_the_test_side(perov, tmp_path):
    second = ingest_rows(perov, tmp_path, 200, 220)
    split = perov.splits.create("time", strategy="time", fractions=(0.8, 0.1, 0.1))
    frame = split.frame()
    first_run = int(frame["run_id"].min())
    assert split.recipe["resolved"]["cut"] == {"run_id": first_run}  # the only run boundary
    assert (frame.loc[frame["run_id"] == second.run_id, "fold"] == "test").all()
    assert (frame.loc[frame["run_id"] != second.run_id, "fold"] != "test").all()
    assert split.counts["test"] == 20
    explicit = perov.splits.create("time-explicit", strategy="time", cut=first_run)
    assert explicit.ids("test") == split.ids("test")
    # a timestamp cut: everything created after the last structure of the first run
    last_early = frame.loc[frame["run_id"] == first_run, "created_at"].max()
    by_time = perov.splits.create("time-at", strategy="time", cut=pd.Timestamp(last_early).isoformat())
    assert by_time.ids("test") == split.ids("test") and "created_after" in by_time.recipe["resolved"]["cut"]
    with pytest.raises(SplitError, match="neither a run id nor an ISO timestamp"):
        perov.splits.create("time-bad", strategy="time", cut="yesterday")
    with pytest.raises(SplitError, match="one run"):
        perov.splits.create("time-one", strategy="time", ids=split.ids("test"))


def test_selection_by_ids_predicate_and_filter(perov):
    all_ids = perov.splits.create("all", strategy="random").ids()
    chosen = all_ids[::3]
    by_ids = perov.splits.create("ids", strategy="random", ids=chosen)
    assert by_ids.ids() == chosen and by_ids.recipe["selection"]["ids"]["n"] == len(chosen)
    cubic = perov.splits.create("cubic", strategy="random", predicate=lambda r: r["crystal_system"] == "cubic")
    frame = perov.splits.get("all").frame()
    assert cubic.ids() == sorted(frame.loc[frame["crystal_system"] == "cubic", "structure_id"])
    flt = 'elements HAS "O" AND nelements = 3'
    by_filter = perov.splits.create("filter", strategy="random", filter=flt)
    assert by_filter.ids() == sorted(perov.query(flt).ids()) and len(by_filter.ids()) > 0
    assert by_filter.recipe["selection"]["filter"] == flt
    with pytest.raises(SplitError, match="not in the database"):
        perov.splits.create("missing", strategy="random", ids=[10**6])
    with pytest.raises(SplitError, match="matches no structures"):
        perov.splits.create("none", strategy="random", predicate=lambda r: False)


def test_handle_loads_frames_structures_and_atoms(perov):
    split = perov.splits.create("load", strategy="random", mode="exact")
    test_ids = split.ids("test")
    structures, atoms = split.structures("test"), split.atoms("test")
    assert len(structures) == len(atoms) == len(test_ids) == 40
    frame = split.frame("test")
    assert frame["structure_id"].tolist() == test_ids and set(frame["fold"]) == {"test"}
    assert [s.composition.reduced_formula for s in structures] == frame["formula_reduced"].tolist()
    assert np.allclose([a.get_volume() for a in atoms], frame["volume"])
    assert {"structure_id", "fold", "canonical_hash", "prototype", "spacegroup_number", "a", "volume"} <= set(frame)
    assert split.members() == dict(zip(split.frame()["structure_id"], split.frame()["fold"]))
    with pytest.raises(SplitError, match="no fold 'holdout'"):
        split.ids("holdout")
    with pytest.raises(NotFound, match="no split named 'nope'; known splits: load"):
        perov.splits.get("nope")


def test_split_creation_is_a_recorded_run(db):
    add_synthetic(db, population(40))
    split = db.splits.create("prov", strategy="group", by="formula_reduced")
    from xtalbase.schema import Run, RunLink

    with db.session() as s:
        run = s.get(Run, split.run_id)
        links = list(s.scalars(sa.select(RunLink).where(RunLink.run_id == run.id)))
    assert run.kind == "split" and run.status == "succeeded" and run.summary["id"] == split.id
    assert [(l.direction, l.kind, l.ref, l.sha256) for l in links] == [("output", "split", "prov", split.id)]
