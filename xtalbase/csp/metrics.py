"""CSP metrics as small objects computed from stored per-pair results (a new metric never re-runs a model).

A :class:`PairTable` holds one evaluation's pair rows and the test fold's size; every :class:`Metric` is a function
of that table and ``k`` (the first ``k`` samples of each test structure are used: a k = 20 run also gives k = 1).

**Reference mode** reproduces CDVAE/DiffCSP: a pair counts when it passes the gate, then best-of-k is the
minimum RMS over counted matching samples; ``match_rate`` is over the whole test fold (missing or invalid
predictions are misses) and ``rmse`` is the mean best RMS over matched structures only. The gate is DiffCSP's:
at k = 1 both prediction and reference must be valid (structure and composition), at k > 1 only the
prediction (``gating="cdvae"``: the prediction only, at every k).

**Strict mode** adds what the reference hides: a match must pass the reference gate and also have the right volume
(|V/V_ref − 1| ≤ ``volume_tol``, default 0.1; the matcher scales both cells to equal volume, so a half or triple volume cell matches with RMS ≈ 0),
an RMSE over the whole fold with misses counted as ``stol``, the volume error of reference matches, space-group
agreement of the best reference match, and the share of test compositions that pass SMACT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from xtalbase.errors import XtalbaseError

MODES = ("reference", "strict")
GATINGS = ("diffcsp", "cdvae")


class MetricError(XtalbaseError):
    """A metric was asked for an unknown mode, gating or a k beyond the stored samples."""


@dataclass
class PairTable:
    """Pair results of one evaluation (dicts as :func:`xtalbase.csp.matching.match_task` returns) for ``targets``."""

    rows: Sequence[dict[str, Any]]
    targets: Sequence[int]
    k: int
    stol: float = 0.5
    _frame: Any = field(default=None, repr=False)

    @property
    def n_test(self) -> int:
        """Test structures in the fold, predicted or not."""
        return len(self.targets)

    def frame(self) -> Any:
        """The rows as a DataFrame restricted to the fold's targets."""
        if self._frame is None:
            import pandas as pd

            df = pd.DataFrame(list(self.rows))
            if df.empty:
                df = pd.DataFrame(columns=["structure_id", "sample", "status", "struct_valid", "comp_valid", "ref_struct_valid",
                                           "ref_comp_valid", "rms", "volume_ratio", "spacegroup_pred", "spacegroup_ref"])
            self._frame = df[df["structure_id"].isin(set(self.targets))].reset_index(drop=True)
        return self._frame

    def first(self, k: int) -> Any:
        """Pairs of the first ``k`` samples."""
        if k < 1 or k > self.k:
            raise MetricError(f"k must be between 1 and the run's k = {self.k} (got {k})")
        df = self.frame()
        return df[df["sample"] < k]


def reference_gate(df: Any, k: int, gating: str = "diffcsp") -> Any:
    """Boolean mask of the pairs the reference code counts at ``k`` (see the module docstring)."""
    if gating not in GATINGS:
        raise MetricError(f"unknown gating {gating!r}; choose one of {', '.join(GATINGS)}")
    pred = df["struct_valid"].astype(bool) & df["comp_valid"].astype(bool)
    if gating == "diffcsp" and k == 1:
        return pred & df["ref_struct_valid"].astype(bool) & df["ref_comp_valid"].astype(bool)
    return pred


def best_of_k(df: Any, mask: Any) -> Any:
    """Per test structure, the row of the smallest RMS among ``mask``-ed matched pairs (structures without one absent)."""
    hits = df[mask & df["rms"].notna()]
    if hits.empty:
        return hits
    return hits.loc[hits.groupby("structure_id")["rms"].idxmin()]


@dataclass(frozen=True)
class Metric:
    """A named number of a pair table at ``k``: ``fn(table, k, options) -> float | None``."""

    name: str
    mode: str
    summary: str
    fn: Callable[[PairTable, int, dict[str, Any]], float | None]


#: Metric name -> metric, in report order; :func:`register_metric` adds one.
METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Make ``metric`` part of every report of its mode (stored evaluations are recomputed, not re-run)."""
    if metric.mode not in MODES:
        raise MetricError(f"metric {metric.name!r}: mode must be one of {', '.join(MODES)}")
    METRICS[metric.name] = metric
    return metric


def _reference_best(t: PairTable, k: int, o: dict[str, Any]) -> Any:
    df = t.first(k)
    return best_of_k(df, reference_gate(df, k, o.get("gating", "diffcsp")))


def _strict_best(t: PairTable, k: int, o: dict[str, Any]) -> Any:
    df = t.first(k)
    tol = float(o.get("volume_tol", 0.1))
    right_volume = (df["volume_ratio"].astype(float) - 1.0).abs() <= tol
    return best_of_k(df, reference_gate(df, k, o.get("gating", "diffcsp")) & right_volume)


def _rate(best: Any, t: PairTable) -> float | None:
    return len(best) / t.n_test if t.n_test else None


def _mean(values: Any) -> float | None:
    values = np.asarray(values, dtype=float)
    return float(values.mean()) if len(values) else None


for _m in (
    Metric("match_rate", "reference", "matched test structures / all test structures (best of k, gated)",
           lambda t, k, o: _rate(_reference_best(t, k, o), t)),
    Metric("rmse", "reference", "mean best normalised RMS over matched structures", lambda t, k, o: _mean(_reference_best(t, k, o)["rms"])),
    Metric("match_rate_strict", "strict", "as match_rate, but the match must also have |V/V_ref - 1| <= volume_tol",
           lambda t, k, o: _rate(_strict_best(t, k, o), t)),
    Metric("rmse_strict", "strict", "mean best RMS over all test structures, a miss counted as stol",
           lambda t, k, o: (_mean(list(_strict_best(t, k, o)["rms"]) + [t.stol] * (t.n_test - len(_strict_best(t, k, o))))
                            if t.n_test else None)),
    Metric("volume_error", "strict", "mean |V/V_ref - 1| of the reference's best matches (the matcher ignores volume)",
           lambda t, k, o: _mean((_reference_best(t, k, o)["volume_ratio"].astype(float) - 1.0).abs())),
    Metric("spacegroup_agreement", "strict", "test structures whose best reference match has the reference's space group / all",
           lambda t, k, o: (float((lambda b: (b["spacegroup_pred"] == b["spacegroup_ref"]).sum())(_reference_best(t, k, o))) / t.n_test
                            if t.n_test else None)),
    Metric("composition_valid", "strict", "test compositions that pass the SMACT gate / test structures with a prediction",
           lambda t, k, o: _mean(t.frame().drop_duplicates("structure_id")["ref_comp_valid"].astype(float))),
):
    register_metric(_m)


def compute(table: PairTable, k: int, mode: str = "reference", **options: Any) -> dict[str, Any]:
    """Every metric of ``mode`` (strict reports the reference ones too) with the counts behind them."""
    if mode not in MODES:
        raise MetricError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    wanted = [m for m in METRICS.values() if m.mode == "reference" or m.mode == mode]
    out: dict[str, Any] = {"mode": mode, "k": k, "n_test": table.n_test}
    out["n_matched"] = len(_reference_best(table, k, options))
    if mode == "strict":
        out["n_matched_strict"] = len(_strict_best(table, k, options))
    for metric in wanted:
        out[metric.name] = metric.fn(table, k, options)
    df = table.first(k)
    out["n_pairs"] = int(len(df))
    out["status_counts"] = {str(s): int(c) for s, c in df["status"].value_counts().sort_index().items()}
    out["options"] = {"gating": options.get("gating", "diffcsp"), **({"volume_tol": float(options.get("volume_tol", 0.1))}
                                                                     if mode == "strict" else {})}
    return out
