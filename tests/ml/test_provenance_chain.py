"""Provenance chains: prediction → model → split/dataset → structures → ingest runs → source files; lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.ml.test_model_support import MP_CIFS, SPLIT
from xtalbase.cli import app
from xtalbase.ml.predict import predict_structures, structures_of_split
from xtalbase.ml.provenance import model_chain, prediction_chain
from xtalbase.ml.training import train_xrd

runner = CliRunner()


@pytest.fixture(scope="module")
def model_and_prediction(trained_db):
    model = train_xrd(trained_db, target="crystal_system", split=SPLIT, algorithm="extratrees", params={"n_estimators": 30},
                      name="chain-test")
    report = predict_structures(trained_db, model.model_id, structures_of_split(trained_db, SPLIT, "test")[:3])
    return model, report.prediction_ids[0]


def test_model_chain_reaches_ingest_runs_and_files(trained_db, model_and_prediction):
    model, _ = model_and_prediction
    split = trained_db.splits.get(SPLIT)
    with trained_db.session() as s:
        chain = model_chain(s, model.model_id)
    assert chain["model"]["artifact_sha256"] == model.artifact_sha256 and chain["model"]["name"] == "chain-test"
    from xtalbase.schema import Split

    with trained_db.session() as s:
        split_row = s.scalars(select(Split).where(Split.name == SPLIT)).one()
    assert chain["split"]["name"] == SPLIT and chain["split"]["hash"] == split_row.hash and len(split_row.hash) == 64
    train_ids = split.ids("train")
    ts = chain["training_structures"]
    assert ts["count"] == len(train_ids) == model.n_train and ts["matches_recorded"]
    assert [r["kind"] for r in chain["ingest_runs"]] == ["ingest"] and chain["ingest_runs"][0]["status"] == "succeeded"
    files = chain["source_files"]
    assert files["n_files"] == len(train_ids)  # one CIF per MP structure
    for example in files["examples"]:
        path = Path(example["file_path"])
        assert path.parent.resolve() == MP_CIFS.resolve()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == example["file_hash"]
    assert chain["xrd_recipe"]["wavelength"] == pytest.approx(1.54184)
    assert {"scikit-learn", "numpy"} <= set(chain["model"]["library_versions"])
    assert chain["train_run"]["kind"] == "train" and chain["train_run"]["dependency_versions"]


def test_prediction_chain_and_cli(trained_db, model_and_prediction):
    model, prediction_id = model_and_prediction
    with trained_db.session() as s:
        chain = prediction_chain(s, prediction_id)
    src = chain["structure"]["sources"][0]
    assert hashlib.sha256(Path(src["file_path"]).read_bytes()).hexdigest() == src["file_hash"]
    assert chain["model_chain"]["model"]["id"] == model.model_id
    assert chain["predict_run"]["kind"] == "predict"
    text = runner.invoke(app, ["provenance", "prediction", str(prediction_id), "--db", trained_db.url])
    assert text.exit_code == 0, text.output
    for needle in ("prediction", "structure", "source", "model", "split " + SPLIT, "training structures", "ingest run",
                   "source files", model.artifact_sha256):
        assert needle in text.output, needle
    as_json = runner.invoke(app, ["provenance", "model", str(model.model_id), "--db", trained_db.url, "--json"])
    assert json.loads(as_json.output)["training_structures"]["matches_recorded"] is True
    missing = runner.invoke(app, ["provenance", "prediction", "999999", "--db", trained_db.url])
    assert missing.exit_code != 0 and "no prediction 999999" in str(missing.exception)


def test_retraining_on_an_extended_dataset_records_the_parent_model(trained_db):
    split = trained_db.splits.get(SPLIT)
    base = trained_db.datasets.create("cs-v1", split=SPLIT, fold="train")
    first = train_xrd(trained_db, target="crystal_system", dataset="cs-v1", params={"n_estimators": 30})
    added = split.ids("val")[:20]
    trained_db.datasets.extend("cs-v1", "cs-v2", ids=added, reason="new measurement set-up")
    second = train_xrd(trained_db, target="crystal_system", dataset="cs-v2", params={"n_estimators": 30})
    assert first.n_train == base.summary()["n_members"] and second.n_train == first.n_train + 20
    # evaluated on the root split's held-out folds, minus what the extension absorbed
    assert second.metrics["val"]["n"] == first.metrics["val"]["n"] - 20 and second.metrics["test"]["n"] == first.metrics["test"]["n"]
    with trained_db.session() as s:
        chain = model_chain(s, second.model_id)
    assert chain["model"]["lineage"] == [second.model_id, first.model_id]
    assert [d["name"] for d in chain["dataset"]["lineage"]] == ["cs-v2", "cs-v1"]
    assert chain["training_structures"]["count"] == second.n_train and chain["training_structures"]["matches_recorded"]
    listed = runner.invoke(app, ["models", "list", "--db", trained_db.url, "--json"])
    rows = {m["id"]: m for m in json.loads(listed.output)}
    assert rows[second.model_id]["lineage"] == [second.model_id, first.model_id]
    assert rows[second.model_id]["parent_model_id"] == first.model_id and rows[second.model_id]["dataset"] == "cs-v2"
    text = runner.invoke(app, ["models", "list", "--db", trained_db.url], env={"COLUMNS": "200"})
    assert text.exit_code == 0 and f"{second.model_id} <- {first.model_id}" in text.output
