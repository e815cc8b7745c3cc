"""Potentials in the registry: trained through ``xtalbase train potential`` on a dataset, reproducible from the
seed, predicting through ``xtalbase predict`` into stored predictions, and traced back by ``xtalbase provenance``
to the calculations and the files they were read from. On both backends (``mo_db``, see ``conftest.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.mlip.conftest import MO_TEST, MO_TRAIN, cli, cli_json


def _dataset_structure_ids(db, name: str) -> list[int]:
    from xtalbase.schema import Dataset, DatasetMember

    with db.session() as s:
        dataset_id = s.scalars(select(Dataset.id).where(Dataset.name == name)).one()
        return sorted(s.scalars(select(DatasetMember.structure_id).where(DatasetMember.dataset_id == dataset_id)))


def _calculation_ids(db, structure_ids: list[int]) -> list[int]:
    from xtalbase.schema import Calculation

    with db.session() as s:
        return sorted(s.scalars(select(Calculation.id).where(Calculation.structure_id.in_(structure_ids))))


def test_a_small_training_beats_the_mean_energy_baseline_by_a_wide_margin(mo_db):
    report = mo_db.made["train"]
    metrics = report["metrics"]
    test, baseline = metrics["test"], metrics["baseline_test"]
    assert test["n_structures"] == len(MO_TEST)
    assert metrics["train"]["n"] + metrics["val"]["n_structures"] == len(MO_TRAIN)
    # the baseline is a real bar: the test set holds AIMD frames ~1 eV/atom above the cold ones
    assert baseline["energy_rmse_mev"] > 200 and baseline["force_rmse"] > 1.0
    assert test["energy_rmse_mev"] < 0.3 * baseline["energy_rmse_mev"]
    assert test["force_rmse"] < 0.6 * baseline["force_rmse"]
    # the stored artifact predicts what training measured
    again = cli_json("--db", mo_db.db.url, "potential", "evaluate", str(report["model_id"]), "--split", "mo", "--fold", "test")
    for key in ("energy_rmse_mev", "energy_mae_mev", "force_rmse", "force_mae", "extrapolating_atoms"):
        assert again[key] == pytest.approx(test[key], rel=1e-9, abs=1e-12), key


def test_the_model_row_records_dataset_recipe_options_and_calculations(mo_db):
    from xtalbase.schema import Dataset, Model, Run

    report = mo_db.made["train"]
    with mo_db.db.session() as s:
        row = s.get(Model, report["model_id"])
        run = s.get(Run, report["run_id"])
        assert (row.task, row.target, row.algorithm, row.seed) == ("potential", "energy_forces", "hdnnp", 0)
        assert s.get(Dataset, row.dataset_id).name == "mo-train" and row.artifact_sha256 == report["artifact_sha256"]
        assert hashlib.sha256(bytes(row.artifact)).hexdigest() == row.artifact_sha256
        assert row.feature_recipe["name"] == "small-mo" and row.hyperparameters["epochs"] == 6
        assert {"torch", "numpy", "ase"} <= set(row.library_versions)
        recorded = run.params["calculation_ids"]
    assert recorded == _calculation_ids(mo_db.db, _dataset_structure_ids(mo_db.db, "mo-train"))


def test_same_data_and_seed_give_the_same_artifact_and_another_seed_another(mo_db):
    from xtalbase.mlip.potentials import train_potential
    from xtalbase.mlip.training import TrainOptions

    def train(seed: int):
        options = TrainOptions(epochs=2, lbfgs_iterations=5, seed=seed)
        return train_potential(mo_db.db, filter="nsites<21", recipe=mo_db.files["recipe"], options=options)

    first, second, other = train(0), train(0), train(1)
    assert first.model_id != second.model_id and first.n_train == 5
    assert first.artifact_sha256 == second.artifact_sha256
    assert other.artifact_sha256 != first.artifact_sha256
    from xtalbase.schema import Model

    with mo_db.db.session() as s:
        blobs = [bytes(s.get(Model, r.model_id).artifact) for r in (first, second, other)]
        hashes = {s.get(Model, r.model_id).training_set_hash for r in (first, second, other)}
    assert blobs[0] == blobs[1] != blobs[2] and len(hashes) == 1  # same labelled set every time


@pytest.fixture(scope="module")
def predicted(mo_db, tmp_path_factory):
    """``xtalbase predict`` of the trained potential on the test fold of ``mo``, with parity plots."""
    plots = tmp_path_factory.mktemp("plots")
    out = cli_json("--db", mo_db.db.url, "predict", str(mo_db.made["train"]["model_id"]), "--split", "mo", "--fold", "test",
                   "--plots", str(plots))
    return out, plots


def test_predict_stores_one_prediction_per_structure_with_energy_and_forces(mo_db, predicted):
    from xtalbase.mlip.potentials import load_potential, selected_configurations
    from xtalbase.schema import Prediction

    out, plots = predicted
    model_id = mo_db.made["train"]["model_id"]
    with mo_db.db.session() as s:
        rows = list(s.scalars(select(Prediction).where(Prediction.run_id == out["run_id"]).order_by(Prediction.id)))
        payloads = {r.structure_id: (r.value, r.payload, r.model_id, r.target) for r in rows}
    configs, _ = selected_configurations(mo_db.db, split="mo", fold="test")
    assert len(rows) == len(configs) == len(MO_TEST) and set(payloads) == {c.structure_id for c in configs}
    model = load_potential(mo_db.db, model_id)
    from xtalbase.mlip.evaluation import predict_configurations

    direct = predict_configurations(model, configs)
    for config, expected in zip(configs, direct):
        value, payload, mid, target = payloads[config.structure_id]
        assert mid == model_id and target == "energy"
        assert value == pytest.approx(expected.energy, abs=1e-9)
        assert payload["energy_per_atom"] == pytest.approx(expected.energy / config.n_atoms, abs=1e-9)
        forces = np.array(payload["forces"])
        assert forces.shape == (config.n_atoms, 3) and np.abs(forces - expected.forces).max() < 1e-9
        assert payload["calculation_id"] == config.calculation_id and payload["stored_energy"] == config.energy
    assert out["summary"]["n"] == len(MO_TEST) and out["summary"]["energy_rmse_mev_vs_stored"] > 0
    written = sorted(Path(p) for p in out["plots"])
    assert [p.name for p in written] == [f"model{model_id}_energy_parity.png", f"model{model_id}_force_parity.png"]
    for p in written:
        assert p.parent == plots and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_the_prediction_chain_reaches_model_dataset_calculations_and_source_files(mo_db, predicted):
    out, _ = predicted
    report = mo_db.made["train"]
    prediction_id = out["predictions"][0]["prediction_id"]
    chain = cli_json("--db", mo_db.db.url, "provenance", "prediction", str(prediction_id))
    assert chain["prediction"]["id"] == prediction_id and chain["predict_run"]["kind"] == "predict"
    # the predicted structure, read from the test file
    source = chain["structure"]["sources"][0]
    assert Path(source["file_path"]).resolve() == mo_db.files["test"].resolve()
    assert source["file_hash"] == hashlib.sha256(mo_db.files["test"].read_bytes()).hexdigest()
    model = chain["model_chain"]
    assert model["model"]["id"] == report["model_id"] and model["model"]["artifact_sha256"] == report["artifact_sha256"]
    assert model["train_run"]["id"] == report["run_id"] and model["train_run"]["kind"] == "train"
    assert model["dataset"]["name"] == "mo-train" and model["dataset"]["n_members"] == len(MO_TRAIN)
    assert model["split"]["name"] == "mo"
    members = _dataset_structure_ids(mo_db.db, "mo-train")
    calcs = model["calculations"]
    assert calcs["ids"] == _calculation_ids(mo_db.db, members) and calcs["count"] == len(MO_TRAIN) == calcs["n_stored"]
    assert calcs["missing_ids"] == [] and calcs["without_source"] == 0
    train_file = mo_db.files["train"]
    digest = hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert calcs["n_files"] == 1 and calcs["files_sha256"] == hashlib.sha256(digest.encode()).hexdigest()
    (entry,) = calcs["source_files"]
    assert Path(entry["file_path"]).resolve() == train_file.resolve() and entry["file_hash"] == digest
    assert entry["n_calculations"] == len(MO_TRAIN)
    assert {e["calculation_id"] for e in calcs["examples"]} <= set(calcs["ids"])
    assert all(e["record_locator"].startswith("index=") for e in calcs["examples"])
    # the text form still prints the whole chain
    text = cli("--db", mo_db.db.url, "provenance", "prediction", str(prediction_id)).output
    for needle in ("dataset mo-train", report["artifact_sha256"], str(train_file.name)):
        assert needle in text, needle

