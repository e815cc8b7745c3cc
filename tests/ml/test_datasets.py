"""Datasets and retraining sets: creation from a split fold, extension with reasons, lineage, immutability, CLI."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from tests.ml.splitsupport import add_synthetic, population
from xtalbase.cli import app
from xtalbase.errors import NotFound
from xtalbase.ml.datasets import DatasetError, set_hash
from xtalbase.ml.split_strategies import SplitError
from xtalbase.schema import Structure

runner = CliRunner()


@pytest.fixture
def base(db):
    """60 hand-made structures and an exact 60/20/20 split of them."""
    add_synthetic(db, population(60))
    db.splits.create("s", strategy="random", mode="exact")
    return db


def exact_hashes(db, ids):
    with db.session() as s:
        found = dict(s.execute(sa.select(Structure.id, Structure.exact_hash).where(Structure.id.in_(ids))).all())
    return [found[i] for i in ids]


def test_create_takes_a_fold_and_hashes_its_content(base):
    split = base.splits.get("s")
    v1 = base.datasets.create("v1", split="s", fold="train")
    assert v1.ids() == split.ids("train") and v1.n_members == 36
    assert v1.hash == set_hash(exact_hashes(base, v1.ids()))
    assert (v1.split, v1.fold, v1.parent) == ("s", "train", None)
    assert {m["reason"] for m in v1.members()} == {f"fold train of split s ({split.id[:12]})"}
    assert base.datasets.create("v1", split="s", fold="train") == v1  # idempotent
    with pytest.raises(DatasetError, match="already exists"):
        base.datasets.create("v1", split="s", fold="val")
    with pytest.raises(SplitError, match="no fold 'holdout'"):
        base.datasets.create("v9", split="s", fold="holdout")


def test_extend_keeps_parent_members_and_records_reasons_scores_and_runs(base):
    split = base.splits.get("s")
    base.datasets.create("v1", split="s", fold="train")
    proposed = split.ids("val")[:4]
    with base.run("predict", {"model": "demo"}) as run:
        source_run = run.id
    v2 = base.datasets.extend("v1", "v2", ids=proposed, reason="key-motif score",
                              score={proposed[0]: 17.3, proposed[1]: 12.0}, source_run=source_run)
    assert v2.parent == "v1" and v2.n_members == 40 and v2.ids() == sorted(split.ids("train") + proposed)
    added = {m["structure_id"]: m for m in v2.members() if not m["inherited"]}
    assert sorted(added) == proposed
    assert added[proposed[0]]["score"] == 17.3 and added[proposed[2]]["score"] is None
    assert {m["reason"] for m in added.values()} == {"key-motif score"}
    assert {m["source_run_id"] for m in added.values()} == {source_run}
    inherited = [m for m in v2.members() if m["inherited"]]
    assert len(inherited) == 36 and all(m["reason"].startswith("fold train") for m in inherited)
    v3 = base.datasets.extend("v2", "v3", ids=split.ids("test")[:3] + proposed[:1], reason="new measurement set-up")
    assert v3.n_members == 43  # the structure already in v2 is not added twice
    # the same set reached another way has the same content hash
    assert base.datasets.extend("v1", "v2b", ids=proposed, reason="other words").hash == v2.hash


def test_lineage_walks_back_to_the_root(base):
    split = base.splits.get("s")
    base.datasets.create("v1", split="s", fold="train")
    base.datasets.extend("v1", "v2", ids=split.ids("val")[:4], reason="key-motif score 17.3")
    base.datasets.extend("v2", "v3", ids=split.ids("test")[:2], reason="new measurement set-up")
    chain = base.datasets.lineage("v3")
    assert [c["name"] for c in chain] == ["v3", "v2", "v1"]
    assert [c["n_members"] for c in chain] == [42, 40, 36] and [c["added"] for c in chain] == [2, 4, 36]
    assert chain[0]["reasons"] == {"new measurement set-up": 2} and chain[1]["reasons"] == {"key-motif score 17.3": 4}
    assert chain[-1]["split"] == "s" and chain[-1]["fold"] == "train"
    assert all(c["hash"] == base.datasets.get(c["name"]).hash for c in chain)


def test_extend_rejects_bad_requests(base):
    split = base.splits.get("s")
    base.datasets.create("v1", split="s", fold="train")
    with pytest.raises(DatasetError, match="needs a --reason"):
        base.datasets.extend("v1", "v2", ids=split.ids("val"), reason=" ")
    with pytest.raises(DatasetError, match="nothing to add"):
        base.datasets.extend("v1", "v2", ids=split.ids("train")[:3], reason="again")
    with pytest.raises(DatasetError, match="not in the database: \\[999999\\]"):
        base.datasets.extend("v1", "v2", ids=[999999], reason="ghost")
    with pytest.raises(DatasetError, match="source run 424242 does not exist"):
        base.datasets.extend("v1", "v2", ids=split.ids("val")[:1], reason="r", source_run=424242)
    with pytest.raises(NotFound, match="no dataset named 'v0'"):
        base.datasets.extend("v0", "v2", ids=split.ids("val")[:1], reason="r")
    base.datasets.extend("v1", "v2", ids=split.ids("val")[:2], reason="first")
    with pytest.raises(DatasetError, match="already exists with other members"):
        base.datasets.extend("v1", "v2", ids=split.ids("val")[2:4], reason="second")
    assert [d["name"] for d in base.datasets.list()] == ["v1", "v2"]


def test_extend_by_filter(base):
    base.datasets.create("v1", split="s", fold="train")
    flt = 'elements HAS "Ti"'
    v2 = base.datasets.extend("v1", "v2", filter=flt, reason="titanates")
    assert set(v2.ids()) == set(base.datasets.get("v1").ids()) | set(base.query(flt).ids())


def test_dataset_members_are_immutable_at_database_level(base):
    v1 = base.datasets.create("v1", split="s", fold="train")
    sid = v1.ids()[0]
    for statement in (f"UPDATE dataset_members SET reason = 'edited' WHERE dataset_id = {v1.pk}",
                      f"DELETE FROM dataset_members WHERE dataset_id = {v1.pk} AND structure_id = {sid}",
                      f"INSERT INTO dataset_members (dataset_id, structure_id, inherited) VALUES ({v1.pk}, 59, false)",
                      f"UPDATE datasets SET n_members = 1 WHERE id = {v1.pk}"):
        with base.engine.connect() as conn:
            with pytest.raises(IntegrityError, match="immutable"):
                conn.execute(sa.text(statement))
            conn.rollback()
    assert base.datasets.get("v1").ids() == v1.ids()


def test_dataset_cli(base, db_url, tmp_path):
    split = base.splits.get("s")
    ok = runner.invoke(app, ["dataset", "create", "v1", "--split", "s", "--fold", "train", "--db", db_url, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["n_members"] == 36
    ids_file = tmp_path / "ids.csv"
    val = split.ids("val")
    ids_file.write_text("structure_id,score\n" + f"{val[0]},17.3\n{val[1]},4\n# a comment\n{val[2]}\n")
    ok = runner.invoke(app, ["dataset", "extend", "v1", "v2", "--ids", str(ids_file), "--reason", "key-motif score",
                             "--db", db_url])
    assert ok.exit_code == 0, ok.output
    assert "dataset v2" in ok.output and "39 structures" in ok.output
    scores = {m["structure_id"]: m["score"] for m in base.datasets.get("v2").members() if not m["inherited"]}
    assert scores == {val[0]: 17.3, val[1]: 4.0, val[2]: None}
    lineage = runner.invoke(app, ["dataset", "lineage", "v2", "--db", db_url, "--json"])
    assert [c["name"] for c in json.loads(lineage.output)] == ["v2", "v1"]
    table = runner.invoke(app, ["dataset", "lineage", "v2", "--db", db_url])
    assert "key-motif score (3)" in table.output
    bad = runner.invoke(app, ["dataset", "extend", "v1", "v3", "--reason", "none", "--db", db_url])
    assert bad.exit_code != 0 and "--ids FILE and/or --filter" in str(bad.exception or bad.output)
    listed = runner.invoke(app, ["dataset", "list", "--db", db_url, "--json"])
    assert [d["name"] for d in json.loads(listed.output)] == ["v1", "v2"]
