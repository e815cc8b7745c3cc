"""Coverage gap, Shimazaki–Shinomoto bins and motif scores (the first steps of key-motif data expansion)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from xtalbase.errors import XtalbaseError
from xtalbase.mlip.coverage import Environments, coverage_gap, local_environments, motif_scores, shimazaki_shinomoto, top_motifs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shimazaki_shinomoto_finds_the_gaussian_optimum(seed):
    # for a normal sample the rule's optimum tends to the L2-risk optimum (24 sqrt(pi) / n)^(1/3) sigma
    n, sigma = 20_000, 0.7
    x = np.random.default_rng(seed).normal(scale=sigma, size=n)
    edges = shimazaki_shinomoto(x)
    width = edges[1] - edges[0]
    assert width == pytest.approx((24 * np.sqrt(np.pi) / n) ** (1 / 3) * sigma, rel=0.15)
    assert edges[0] == x.min() and edges[-1] == pytest.approx(x.max())


def test_shimazaki_shinomoto_prefers_one_bin_for_evenly_spread_values():
    # equal counts in every bin (v = 0) make the cost 2nN/R², smallest at one bin
    assert len(shimazaki_shinomoto(np.linspace(0.0, 1.0, 1000))) == 2


def test_gap_and_scores_on_hand_made_environments():
    edges = {"A-B": np.array([0.0, 1.0, 2.0, 3.0])}
    train = Environments({"A-B": np.zeros(4, int)}, {"A-B": np.array([0.5, 0.5, 1.5, 1.5])})
    target = Environments({"A-B": np.array([0, 0, 1, 1])}, {"A-B": np.array([1.5, 2.5, 2.5, 2.5])})
    gap = coverage_gap(train, target, edges)["A-B"]
    assert gap.train.tolist() == [0.5, 0.5, 0.0] and gap.target.tolist() == [0.0, 0.25, 0.75]
    assert gap.gap.tolist() == [0.0, 0.0, 0.75]                          # max(0, d_target - d_train)
    outliers = [np.array([False, True])]                                  # atom 1 owns the two 2.5 Å values
    key = motif_scores({"A-B": gap}, [target], outliers, "key-motif")["A-B"]
    assert key.tolist() == [0.0, 0.0, 2 * 0.75]                          # Σ over outlier values 1(in m)·Δ(m)
    assert motif_scores({"A-B": gap}, [target], outliers, "outlier")["A-B"].tolist() == [0.0, 0.0, 2.0]
    assert motif_scores({"A-B": gap}, [target], outliers, "gap")["A-B"].tolist() == [0.0, 0.0, 0.75]
    r1 = motif_scores({"A-B": gap}, [target], outliers, "random", seed=3)["A-B"]
    assert np.array_equal(r1, motif_scores({"A-B": gap}, [target], outliers, "random", seed=3)["A-B"])
    top = top_motifs({"A-B": key}, {"A-B": gap}, 5)
    assert len(top) == 1 and top[0]["label"] == "A-B 2.00–3.00 Å, S = 1.5"
    with pytest.raises(XtalbaseError, match="strategy"):
        motif_scores({"A-B": gap}, [target], outliers, "best")


def test_environments_of_a_doped_cell_expose_the_missing_pair():
    host = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    doped = host.copy()
    doped.numbers[0] = 78
    train = local_environments(host.numbers, host.positions, host.cell, True, 3.0)
    target = local_environments(doped.numbers, doped.positions, doped.cell, True, 3.0)
    # fcc nearest neighbours at a/sqrt(2): 12 per atom, the Pt atom has 12 Al neighbours
    assert np.allclose(train.values["Al-Al"], 4.05 / np.sqrt(2)) and len(train.values["Al-Al"]) == 32 * 12
    assert "Al-Pt" in target.values and (target.atoms["Al-Pt"] == 0).sum() == 12
    # angles of the 12 nearest neighbours: 60, 90, 120 and 180 degrees (66 pairs per centre)
    assert set(np.round(train.values["Al:Al-Al"]).astype(int)) == {60, 90, 120, 180}
    assert len(train.values["Al:Al-Al"]) == 32 * 66
    gap = coverage_gap(train, target)
    assert gap["Al-Pt"].gap.sum() > 0 and "Al-Pt" not in train.values
