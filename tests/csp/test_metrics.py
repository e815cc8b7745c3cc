"""Metrics from stored pair rows: the reference gating per k against a transcription of the CDVAE/DiffCSP loops,
the whole-fold denominator, and the strict mode's view of the volume-scaling blind spot on real structures."""

from __future__ import annotations

import numpy as np
import pytest

from tests.csp.helpers import perov5_arrays
from xtalbase.csp.matching import MatchSettings, MatchTask, match_task
from xtalbase.csp.metrics import METRICS, Metric, MetricError, PairTable, compute, register_metric
from xtalbase.platform.convert import StructureArrays


def _row(sid, sample, rms, *, valid=True, comp=True, ref_valid=True, ref_comp=True, volume=1.0, sg=(221, 221)):
    return {"structure_id": sid, "sample": sample, "status": "matched" if rms is not None else "no_match", "rms": rms,
            "struct_valid": valid, "comp_valid": comp, "ref_struct_valid": ref_valid, "ref_comp_valid": ref_comp,
            "volume_ratio": volume, "spacegroup_pred": sg[0], "spacegroup_ref": sg[1]}


#: 5 test structures, k = 3; structure 5 has no prediction at all.
ROWS = [
    _row(1, 0, 0.10), _row(1, 1, 0.05), _row(1, 2, None),
    _row(2, 0, 0.20, ref_valid=False), _row(2, 1, 0.30), _row(2, 2, 0.02, valid=False),
    _row(3, 0, None), _row(3, 1, None), _row(3, 2, 0.40, comp=False),
    _row(4, 0, 0.01, volume=2.0, sg=(99, 221)), _row(4, 1, None), _row(4, 2, None),
]
TARGETS = [1, 2, 3, 4, 5]


def _reference_code(rows, targets, k):
    """The CDVAE/DiffCSP loops, transcribed: RecEval at k = 1 (pred and gt valid), RecEvalBatch at k > 1 (pred valid)."""
    best = []
    for sid in targets:
        rms = []
        for r in rows:
            if r["structure_id"] != sid or r["sample"] >= k:
                continue
            valid = r["struct_valid"] and r["comp_valid"]
            if k == 1:
                valid = valid and r["ref_struct_valid"] and r["ref_comp_valid"]
            if valid and r["rms"] is not None:
                rms.append(r["rms"])
        best.append(min(rms) if rms else None)
    matched = [b for b in best if b is not None]
    return len(matched) / len(targets), (float(np.mean(matched)) if matched else None)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_reference_mode_equals_the_reference_loops(k):
    got = compute(PairTable(ROWS, TARGETS, 3), k)
    rate, rmse = _reference_code(ROWS, TARGETS, k)
    assert got["match_rate"] == pytest.approx(rate) and got["n_test"] == 5
    assert got["rmse"] == pytest.approx(rmse)


def test_k_rules_by_hand():
    at1 = compute(PairTable(ROWS, TARGETS, 3), 1)
    # k = 1: 1 (0.10) and 4 (0.01) match; 2 is gated out because its reference is invalid; 5 has nothing
    assert at1["n_matched"] == 2 and at1["match_rate"] == pytest.approx(2 / 5) and at1["rmse"] == pytest.approx(0.055)
    at3 = compute(PairTable(ROWS, TARGETS, 3), 3)
    # k = 3: 1 -> 0.05, 2 -> 0.20 (sample 2's 0.02 is an invalid structure), 3 -> invalid composition, 4 -> 0.01
    assert at3["n_matched"] == 3 and at3["rmse"] == pytest.approx((0.05 + 0.20 + 0.01) / 3)
    cdvae = compute(PairTable(ROWS, TARGETS, 3), 1, gating="cdvae")  # CDVAE gates the prediction only
    assert cdvae["n_matched"] == 3
    with pytest.raises(MetricError, match="k must be between 1 and"):
        compute(PairTable(ROWS, TARGETS, 3), 4)
    with pytest.raises(MetricError, match="unknown mode"):
        compute(PairTable(ROWS, TARGETS, 3), 1, mode="loose")


def test_strict_mode_counts_misses_and_the_volume():
    got = compute(PairTable(ROWS, TARGETS, 3), 3, mode="strict")
    # structure 4 matched only at twice the volume: a reference match, not a strict one
    assert got["match_rate"] == pytest.approx(3 / 5) and got["match_rate_strict"] == pytest.approx(2 / 5)
    assert got["rmse_strict"] == pytest.approx((0.05 + 0.20 + 0.5 * 3) / 5)
    assert got["volume_error"] == pytest.approx((0 + 0 + 1.0) / 3)
    assert got["spacegroup_agreement"] == pytest.approx(2 / 5)


def test_a_new_metric_is_computed_from_stored_rows():
    register_metric(Metric("median_rms_test", "reference", "median best RMS (test-only metric)",
                           lambda t, k, o: float(np.median([r["rms"] for r in t.rows if r["rms"] is not None and r["sample"] < k]))))
    try:
        assert compute(PairTable(ROWS, TARGETS, 3), 1)["median_rms_test"] == pytest.approx(0.10)  # of 0.10, 0.20, 0.01
    finally:
        del METRICS["median_rms_test"]


def test_volume_blind_spot_on_real_structures():
    """Half and triple the volume, same shape: the matcher (scale=True) matches with RMS ~ 0; strict mode does not."""
    refs = perov5_arrays(3)
    rows = []
    for sid, ref in enumerate(refs):
        samples = tuple((i, StructureArrays(ref.cell * np.cbrt(f), ref.numbers, ref.frac_coords)) for i, f in enumerate((0.5, 3.0, 1.0)))
        rows += match_task(MatchTask(sid, ref, samples, MatchSettings()))
    assert all(r["status"] == "matched" and r["rms"] < 1e-6 for r in rows)
    table = PairTable(rows, [0, 1, 2], 3)
    at1 = compute(table, 2, mode="strict")  # the first two samples: half and triple volume
    assert at1["match_rate"] == 1.0 and at1["rmse"] < 1e-6
    assert at1["match_rate_strict"] == 0.0 and at1["rmse_strict"] == pytest.approx(0.5)
    assert at1["volume_error"] >= 0.5 - 1e-6  # each best match is the half (0.5) or the triple (2.0) volume cell
    assert compute(table, 3, mode="strict")["match_rate_strict"] == 1.0
