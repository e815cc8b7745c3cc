"""Matching against a frozen table computed with the reference formula; parallel = serial; a slow pair times out."""

from __future__ import annotations

import numpy as np
import pytest

from tests.csp.helpers import arrays, reference_pairs
from xtalbase.csp.matching import MatchSettings, MatchTask, match_all, reference_loop
from xtalbase.platform.convert import StructureArrays


def _tasks(pairs, settings=MatchSettings()):
    return [MatchTask(i, arrays(p["ref"]), ((0, arrays(p["pred"])),), settings) for i, p in enumerate(pairs)]


def test_matching_reproduces_the_frozen_reference_table():
    pairs = reference_pairs()
    rows = match_all(_tasks(pairs), workers=1, timeout=None)
    assert [r["structure_id"] for r in rows] == list(range(len(pairs)))
    for row, pair in zip(rows, pairs):
        if pair["rms"] is None:
            assert row["rms"] is None and row["status"] == "no_match", pair["kind"]
        else:
            assert row["status"] == "matched" and row["rms"] == pytest.approx(pair["rms"], abs=1e-9), pair["kind"]
    kinds = {p["kind"] for p in pairs if p["rms"] is not None}
    assert {"noise", "scaled", "other_template"} <= kinds  # the table covers matches of each kind
    assert any(p["rms"] is None for p in pairs)  # and misses


def test_parallel_equals_serial_equals_the_reference_loop():
    pairs = reference_pairs()
    # k = 3 per structure: the prediction, the reference itself and a random cell
    rng = np.random.default_rng(3)
    tasks = []
    for i, p in enumerate(pairs[:20]):
        ref = arrays(p["ref"])
        noise = StructureArrays(ref.cell, ref.numbers, rng.random(ref.frac_coords.shape))
        tasks.append(MatchTask(i, ref, ((0, arrays(p["pred"])), (1, ref), (2, noise)), MatchSettings()))
    serial = match_all(tasks, workers=1, timeout=None)
    parallel = match_all(tasks, workers=2, timeout=30)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(serial) == strip(parallel)
    loop = reference_loop([(s, t.reference) for t in tasks for _, s in t.samples])
    assert [r["rms"] for r in serial] == pytest.approx(loop, abs=1e-12) or [r["rms"] for r in serial] == loop


def test_a_pair_past_its_time_is_stopped_and_stored_as_timeout():
    rng = np.random.default_rng(0)
    n = 150  # two random 150-atom Si cells: ~13 s in the matcher; a first call in a fresh worker costs ~1.4 s
    big = [StructureArrays(np.eye(3) * (n * 12) ** (1 / 3), np.full(n, 14), rng.random((n, 3))) for _ in range(2)]
    other = StructureArrays(np.eye(3) * 4.0, np.array([11, 17]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]))
    pairs = reference_pairs()[:2]
    tasks = [MatchTask(0, arrays(pairs[0]["ref"]), ((0, arrays(pairs[0]["pred"])),), MatchSettings()),
             MatchTask(1, big[0], ((0, big[1]), (1, other)), MatchSettings()),
             MatchTask(2, arrays(pairs[1]["ref"]), ((0, arrays(pairs[1]["pred"])),), MatchSettings())]
    rows = match_all(tasks, workers=1, timeout=4.0)  # room for that first call twice over on a loaded machine
    status = {(r["structure_id"], r["sample"]): r["status"] for r in rows}
    assert status[(1, 0)] == "timeout"
    # the task ran again without the stopped pair: its other sample (answered without the matcher) is there
    assert status[(1, 1)] == "composition_mismatch"
    assert status[(0, 0)] == ("matched" if pairs[0]["rms"] is not None else "no_match")
    assert status[(2, 0)] == ("matched" if pairs[1]["rms"] is not None else "no_match")


def test_composition_mismatch_and_unbuildable_predictions_skip_the_matcher():
    p = reference_pairs()[0]
    ref = arrays(p["ref"])
    other = StructureArrays(ref.cell, np.array([3] * len(ref.numbers)), ref.frac_coords)
    nan = StructureArrays(ref.cell * np.nan, ref.numbers, ref.frac_coords)
    rows = match_all([MatchTask(0, ref, ((0, other), (1, nan)), MatchSettings())], timeout=None)
    assert [r["status"] for r in rows] == ["composition_mismatch", "invalid"]
    assert rows[1]["struct_valid"] is False and rows[0]["rms"] is None
