"""Surrogate generators and candidate scoring (key-motif data expansion, step 4)."""

from __future__ import annotations

import numpy as np
import pytest
import spglib
from ase.build import bulk

from xtalbase.mlip.coverage import coverage_gap, local_environments, motif_scores
from xtalbase.mlip.surrogates import PROTOTYPES, Candidate, enumerate_candidates, score_candidates, select

DISTINCT = {1: ["Cu"], 2: ["Cu", "Au"], 3: ["Cu", "Mn", "Al"], 5: ["Cr", "Fe", "Co", "Ni", "Ti"]}


@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_each_generator_has_its_prototype_space_group(name):
    proto = PROTOTYPES[name]
    atoms = proto.build(DISTINCT[proto.sublattices], 4.0)
    found = spglib.get_symmetry_dataset((atoms.cell, atoms.get_scaled_positions(), atoms.numbers), symprec=1e-3)
    assert found.number == proto.spacegroup


def test_candidates_cover_the_scan_and_score_the_missing_pair():
    host = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    doped = host.copy()
    doped.numbers[0] = 78
    train = local_environments(host.numbers, host.positions, host.cell, True, 4.0)
    target = local_environments(doped.numbers, doped.positions, doped.cell, True, 4.0)
    gap = coverage_gap(train, target)
    scores = motif_scores(gap, [target], [np.arange(len(doped)) == 0], "key-motif")
    candidates = enumerate_candidates(["Al", "Pt"], prototypes=["fcc", "cscl", "L1_2"], strains=[(0,) * 6],
                                      displacements=(0.0,))
    assert {c.a for c in candidates} == set(np.round(np.arange(2.5, 7.01, 0.25), 4))
    got = score_candidates(candidates, scores, gap, 4.0)
    best = select(candidates, got, 3)
    # only structures with Al-Pt neighbours can hold the missing motif; pure fcc Al or Pt scores nothing
    assert best and all({"Al", "Pt"} <= set(c.elements) for c, _ in best)
    pure = [k for k, c in enumerate(candidates) if len(set(c.elements)) == 1]
    assert all(got[k] <= 0 or not np.isfinite(got[k]) for k in pure)
    # the penalty: squeezing a cell below 0.85 (r_cov,i + r_cov,j) lowers the score
    squeezed = Candidate("cscl", ("Al", "Pt"), 2.5)
    relaxed = Candidate("cscl", ("Al", "Pt"), 3.25)
    s = score_candidates([squeezed, relaxed], scores, gap, 4.0)
    assert s[0] < s[1]
