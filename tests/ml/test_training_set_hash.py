"""A model's ``training_set_hash`` is the hash of the dataset or split fold it was trained on, and its
provenance is walked along the stored run links."""

from __future__ import annotations

import json

from sqlalchemy import select
from typer.testing import CliRunner

from tests.ml.test_model_support import SPLIT
from xtalbase.cli import app
from xtalbase.ml.training import train_xrd
from xtalbase.platform.hashing import set_hash
from xtalbase.platform.repositories import runs as repo
from xtalbase.schema import Model, Structure

runner = CliRunner()


def _stored_hash(db, model_id: int) -> str:
    with db.session() as s:
        return s.get(Model, model_id).training_set_hash


def test_model_trained_on_a_dataset_carries_the_dataset_hash(trained_db):
    dataset = trained_db.datasets.create("hash-v1", split=SPLIT, fold="train")
    report = train_xrd(trained_db, target="crystal_system", dataset="hash-v1", params={"n_estimators": 10})
    assert _stored_hash(trained_db, report.model_id) == dataset.hash


def test_model_trained_on_a_split_fold_carries_the_fold_hash(trained_db):
    ids = trained_db.splits.get(SPLIT).ids("train")
    with trained_db.session() as s:
        fold_hash = set_hash(s.scalars(select(Structure.exact_hash).where(Structure.id.in_(ids))))
    report = train_xrd(trained_db, target="crystal_system", split=SPLIT, params={"n_estimators": 10})
    assert _stored_hash(trained_db, report.model_id) == fold_hash


def test_provenance_walks_the_train_runs_links(trained_db):
    dataset = trained_db.datasets.create("hash-walk", split=SPLIT, fold="train")
    report = train_xrd(trained_db, target="crystal_system", dataset="hash-walk", params={"n_estimators": 10})
    with trained_db.session() as s:
        (producer,) = repo.runs_linking(s, "model", report.model_id, "output")
        inputs = {link.kind: link for link in repo.links_of(s, producer.id, "input")}
    assert producer.id == report.run_id
    assert inputs["dataset"].dataset_id == dataset.pk and inputs["dataset"].sha256 == dataset.hash
    assert inputs["training_set"].sha256 == dataset.hash
    out = runner.invoke(app, ["provenance", "model", str(report.model_id), "--db", trained_db.url, "--json"])
    chain = json.loads(out.output)
    assert chain["dataset"]["name"] == "hash-walk" and chain["train_run"]["id"] == report.run_id
    assert {(i["kind"], i["id"]) for i in chain["train_run"]["inputs"]} >= {("dataset", dataset.pk)}
    ts = chain["training_structures"]
    assert ts["set_hash"] == ts["recorded_hash"] == ts["linked_hash"] == dataset.hash and ts["matches_recorded"]


def test_provenance_of_a_cubic_a_model_counts_only_the_cubic_members(trained_db):
    """The Target registry decides which members a model trained on; provenance recomputes the same set."""
    from xtalbase.ml.provenance import model_chain

    report = train_xrd(trained_db, target="cubic_a", split=SPLIT, params={"n_estimators": 10})
    ids = trained_db.splits.get(SPLIT).ids("train")
    with trained_db.session() as s:
        cubic = list(s.scalars(select(Structure.exact_hash).where(Structure.id.in_(ids), Structure.crystal_system == "cubic")))
        chain = model_chain(s, report.model_id)
    assert 0 < len(cubic) < len(ids)
    assert chain["training_structures"]["count"] == len(cubic)
    assert chain["training_structures"]["matches_recorded"] is True
    assert _stored_hash(trained_db, report.model_id) == set_hash(cubic)
