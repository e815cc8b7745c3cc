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


def _brute_force_score(candidate, scores, gap, rc):
    """The module's Score formula evaluated directly on the built structure, one candidate at a time."""
    from xtalbase.mlip.acsf import neighbor_pairs
    from xtalbase.mlip.surrogates import REJECT_FRACTION, d_min

    atoms = candidate.build()
    env = local_environments(atoms.numbers, atoms.positions, atoms.cell, True, rc)
    motif = 0.0
    for key, values in env.values.items():
        if key in gap:
            bins = np.searchsorted(gap[key].edges, values, side="right") - 1
            inside = (bins >= 0) & (bins < len(scores[key]))
            motif += scores[key][bins[inside]].sum()
    i, j, shifts = neighbor_pairs(atoms.numbers, atoms.positions, np.asarray(atoms.cell), True, rc)
    d = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + shifts @ np.asarray(atoms.cell), axis=1)
    dmin = d_min(atoms.numbers[i], atoms.numbers[j])
    if np.min(d / dmin) < REJECT_FRACTION:
        return -np.inf
    return motif / len(atoms) - 0.5 * 50.0 * np.sum(np.maximum(0.0, dmin - d) ** 2)


def _al_pt_gap(rc=4.5):
    host = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    host.rattle(0.03, seed=1)
    doped = host.copy()
    doped.numbers[[0, 5]] = 78
    train = local_environments(host.numbers, host.positions, host.cell, True, rc)
    target = local_environments(doped.numbers, doped.positions, doped.cell, True, rc)
    gap = coverage_gap(train, target)
    return gap, motif_scores(gap, [target], [np.isin(np.arange(len(doped)), [0, 1, 5])], "key-motif")


def test_vectorised_scores_equal_the_formula_on_each_built_structure():
    from xtalbase.mlip.surrogates import template_prototype

    gap, scores = _al_pt_gap()
    template = template_prototype("template:test", bulk("Al", "fcc", a=4.05, cubic=True).repeat((1, 1, 2)))
    candidates = enumerate_candidates(["Al", "Pt"], prototypes=["cscl", "L1_2", "heusler", "C14"],
                                      a_values=[2.75, 3.5, 4.25, 5.0], strains=[(0,) * 6, (0.03, 0, 0, 0, 0.02, 0)],
                                      displacements=(0.0, 0.0125), templates=[template])
    assert any(c.prototype == "template:test" for c in candidates)
    got = score_candidates(candidates, scores, gap, 4.5)
    want = np.array([_brute_force_score(c, scores, gap, 4.5) for c in candidates])
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    ok = np.isfinite(want)
    assert ok.sum() > len(candidates) // 3 and (~ok).sum() > 0        # both kinds are exercised
    assert np.allclose(got[ok], want[ok], rtol=1e-9, atol=1e-9)


def test_distance_and_energy_penalties():
    gap, scores = _al_pt_gap()
    zero = {k: np.zeros_like(v) for k, v in scores.items()}
    # CsCl AlPt at a = 2.6 Å: 8 Al-Pt neighbours at a·√3/2 = 2.2517 Å, d_min = 0.85 (1.21 + 1.36) = 2.1845 Å: no
    # penalty; at a = 2.4 Å they sit at 2.0785 Å: P_dist = 8 · 50 · (2.1845 - 2.0785)² per cell (each pair once)
    # plus the 6 + 6 Al-Al/Pt-Pt neighbours at a = 2.4 Å (d_min 2.057 / 2.312 Å)
    from ase.data import covalent_radii

    r_al, r_pt = covalent_radii[13], covalent_radii[78]
    for a in (2.6, 2.4):
        d_ab, d_aa = a * 3 ** 0.5 / 2, a
        want = 50 * (8 * max(0, 0.85 * (r_al + r_pt) - d_ab) ** 2 + 3 * max(0, 0.85 * 2 * r_al - d_aa) ** 2
                     + 3 * max(0, 0.85 * 2 * r_pt - d_aa) ** 2)
        got = score_candidates([Candidate("cscl", ("Al", "Pt"), a)], zero, gap, 4.5)[0]
        assert got == pytest.approx(-want, rel=1e-9, abs=1e-12)
    # the energy penalty, 50 max(0, E_atom), applies to the best candidates only and never rewards E_atom < 0
    cands = [Candidate("cscl", ("Al", "Pt"), 3.25), Candidate("L1_2", ("Al", "Pt"), 4.0)]
    plain = score_candidates(cands, scores, gap, 4.5)
    energies = {"AlPt": 0.1, "AlPt3": -0.3}
    penalised = score_candidates(cands, scores, gap, 4.5, energy=lambda at: energies[at.get_chemical_formula()])
    assert penalised[0] == pytest.approx(plain[0] - 5.0) and penalised[1] == pytest.approx(plain[1])


def test_pool_scores_equal_the_formula_on_each_structure():
    from xtalbase.mlip.surrogates import score_structures

    gap, scores = _al_pt_gap()
    candidates = enumerate_candidates(["Al", "Pt"], prototypes=["cscl", "L1_2", "C14"], a_values=[4.0, 5.0],
                                      strains=[(0.03, 0, 0, 0, 0.02, 0)], displacements=(0.0125,))
    want = np.array([_brute_force_score(c, scores, gap, 4.5) for c in candidates])
    assert np.isfinite(want).all()
    got = score_structures([c.build() for c in candidates], scores, gap, 4.5)
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9)
