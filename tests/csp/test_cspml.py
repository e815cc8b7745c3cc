"""The ``cspml`` CSP model: rankers, tied-site substitution, distance check, no test-fold template, artifact, and a
run through the CSP store on the Perov-5 fixture split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xtalbase.csp.models.base import CspModelError, get_model_class, model_names
from xtalbase.csp.models.cspml import CspmlModel
from xtalbase.csp.models.rankers import RANKERS, LearnedRanker, Library, Query, get_ranker
from xtalbase.csp.tasks import fold_structures
from xtalbase.platform.convert import StructureArrays

#: Ideal cubic perovskite sites: A at the corner, B at the body centre, X on the face centres.
PEROVSKITE = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], float)


def perovskite(a: int, b: int, x: tuple[int, int, int], length: float = 4.0) -> StructureArrays:
    return StructureArrays(np.eye(3) * length, np.array([a, b, *x], np.int64), PEROVSKITE.copy())


def site_elements(s: StructureArrays) -> tuple[int, int, tuple[int, ...]]:
    """(A-site, B-site, X-site elements) of a sample built on :data:`PEROVSKITE`."""
    order = [int(np.flatnonzero((np.abs(s.frac_coords - p) < 1e-9).all(1))[0]) for p in PEROVSKITE]
    numbers = [int(s.numbers[i]) for i in order]
    return numbers[0], numbers[1], tuple(numbers[2:])


def test_registry_and_parameters():
    assert "cspml" in model_names() and get_model_class("cspml") is CspmlModel
    assert {"substitution", "descriptor", "learned", "random"} <= set(RANKERS)
    assert get_ranker("random", random_state=3, max_pairs=5).random_state == 3  # unknown keywords are not passed on
    with pytest.raises(CspModelError, match="unknown ranker 'nope'"):
        get_ranker("nope")
    train = [perovskite(56, 22, (8, 8, 8))]
    with pytest.raises(CspModelError, match="ranker must be one of"):
        CspmlModel(ranker="nope").fit(train)
    with pytest.raises(CspModelError, match="volume must be one of"):
        CspmlModel(volume="guess").fit(train)


def test_tied_sites_are_separate_candidates_nearest_first():
    # BaTiO3 template, query SrZrO3: Sr and Zr are tied (one each); Sr is Ba's nearest (Mendeleev), Zr Ti's
    model = CspmlModel(volume="atomic", dedupe=False).fit([perovskite(56, 22, (8, 8, 8))])
    samples = model.sample([np.array([38, 40, 8, 8, 8])], k=3, seed=0)[0]
    assert site_elements(samples[0]) == (38, 40, (8, 8, 8))
    assert site_elements(samples[1]) == (40, 38, (8, 8, 8))  # the other assignment of the tied pair, same template
    assert [s[0] for s in model.sources_[0][:2]] == [0, 0] and model.sources_[0][2] is None  # only 2 assignments exist
    assert model.fallbacks_ == 1
    # mixed anion: Sr, Zr and F are tied with Ba, Ti and N; the anion stays on the anion site in the first two
    model = CspmlModel(volume="atomic", dedupe=False).fit([perovskite(56, 22, (7, 8, 8))])
    samples = model.sample([np.array([38, 40, 9, 8, 8])], k=6, seed=0)[0]
    assert site_elements(samples[0]) == (38, 40, (9, 8, 8))
    assert site_elements(samples[1]) == (40, 38, (9, 8, 8))
    assert len({site_elements(s) for s in samples}) == 6 and model.fallbacks_ == 0  # 3! assignments, all distinct


def test_same_structure_assignments_are_skipped_and_the_volume_is_scaled():
    # rock salt: swapping the two elements gives the same structure, so dedupe keeps one and falls back for the rest
    cell = np.eye(3) * 4.2
    frac = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])
    nacl = StructureArrays(cell, np.array([11] * 4 + [17] * 4), frac)
    model = CspmlModel(volume="atomic").fit([nacl])
    kcl = np.array([19] * 4 + [35] * 4)
    samples = model.sample([kcl], k=2, seed=0)[0]
    assert model.duplicates_ == 1 and model.sources_[0][1] is None
    assert abs(np.linalg.det(samples[0].cell)) > abs(np.linalg.det(cell))  # K and Br are larger than Na and Cl
    undeduped = CspmlModel(volume="atomic", dedupe=False).fit([nacl])
    undeduped.sample([kcl], k=2, seed=0)
    assert undeduped.duplicates_ == 0 and undeduped.sources_[0][1] is not None


def test_close_sites_are_dropped_and_supercells_fill_larger_cells():
    crowded = StructureArrays(np.eye(3) * 4.0, np.array([19, 35]), np.array([[0, 0, 0], [0.05, 0, 0]]))
    fine = StructureArrays(np.eye(3) * 4.0, np.array([12, 8]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]))
    model = CspmlModel(volume="atomic", ranker="substitution").fit([crowded, fine])
    samples = model.sample([np.array([11, 17])], k=1, seed=0)[0]
    # the K-Br template puts Na 0.2 Å from Cl: both its assignments are dropped, MgO's cell is used (Cl on O's site)
    assert model.dropped_ == 2 and model.sources_[0] == [(1, (1, 0))]
    assert model.fallbacks_ == 0 and sorted(samples[0].numbers.tolist()) == [11, 17]
    single = abs(np.linalg.det(samples[0].cell))
    four = np.array([11, 11, 17, 17])
    samples = model.sample([four], k=1, seed=0)[0]
    assert sorted(samples[0].numbers.tolist()) == sorted(four.tolist()) and model.sources_[0][0][0] == 1
    assert abs(np.linalg.det(samples[0].cell)) == pytest.approx(2 * single)  # MgO tiled twice, same volume per atom


def test_own_formula_is_never_a_template():
    library = Library([perovskite(56, 22, (8, 8, 8)), perovskite(38, 22, (8, 8, 8))])
    assert library.candidates(Query(np.array([56, 22, 8, 8, 8]))) == [1]


@pytest.fixture(scope="module")
def p5(p5db):
    split = p5db.splits.get("p5")
    return p5db, split, {f: fold_structures(split, f) for f in ("train", "val", "test")}


def _key(s: StructureArrays) -> bytes:
    return np.asarray(s.cell, float).tobytes() + np.asarray(s.numbers, np.int64).tobytes() + np.asarray(s.frac_coords, float).tobytes()


def test_no_test_structure_is_ever_a_template_or_a_pair(p5):
    _, _, folds = p5
    train, val, test = folds["train"], folds["val"], folds["test"]
    held_out = {_key(s) for s in val + test}
    # val is passed to fit (volume choice only): it must never become a template or a training pair
    model = CspmlModel(ranker="learned", label="matcher", max_pairs=150, volume="auto").fit(train, val)
    templates = [StructureArrays(np.asarray(c, float), np.asarray(n, np.int64), np.asarray(f, float)) for c, n, f in model.templates_]
    assert len(templates) == len(train) and not {_key(t) for t in templates} & held_out
    assert {_key(t) for t in templates} == {_key(s) for s in train}
    pairs = LearnedRanker(max_pairs=150).pairs(model._library, np.random.default_rng(0))
    assert pairs and all(model._library.formulas[i] != model._library.formulas[j] for i, j in pairs)
    assert all(0 <= i < len(train) and 0 <= j < len(train) for i, j in pairs)
    assert model.n_pairs_ == len(pairs) and 0 < model.pair_positive_rate_ < 1
    drawn = model.sample([s.numbers for s in test], k=3, seed=0)
    for per, sources in zip(drawn, model.sources_):
        for sample, source in zip(per, sources):
            if source is None:
                continue
            template = templates[source[0]]
            assert np.array_equal(sample.frac_coords, np.asarray(template.frac_coords))  # made from a training structure
            assert not any(np.array_equal(sample.frac_coords, s.frac_coords) and np.array_equal(sample.numbers, s.numbers)
                           and np.allclose(sample.cell, s.cell) for s in test)


def test_artifact_round_trip_is_json_and_reproduces_samples(p5):
    _, _, folds = p5
    model = CspmlModel(ranker="learned", label="matcher", max_pairs=150, volume="learned").fit(folds["train"], folds["val"])
    blob = model.to_bytes()
    doc = json.loads(blob)
    assert doc["format"] == "csp-json/cspml" and doc["params"]["ranker"] == "learned"
    assert doc["state"]["ranker"]["booster_ubj_b64"] and doc["state"]["volume_model_ubj_b64"]
    again = CspmlModel.from_bytes(blob)
    queries = [s.numbers for s in folds["test"][:12]]
    for a, b in zip(model.sample(queries, 2, 5), again.sample(queries, 2, 5)):
        for x, y in zip(a, b):
            assert np.allclose(x.cell, y.cell) and np.array_equal(x.numbers, y.numbers) and np.array_equal(x.frac_coords, y.frac_coords)
    with pytest.raises(CspModelError, match="is not csp-json/cspml"):
        CspmlModel.from_bytes(blob.replace(b"csp-json/cspml", b"csp-json/template"))


def test_train_sample_evaluate_through_the_store(p5):
    db, split, _ = p5
    ids = {ranker: db.csp.train(split, "cspml", seed=0, name=f"cspml-{ranker}", params={"ranker": ranker, "per_template": 1})
           for ranker in ("substitution", "descriptor")}
    runs = {ranker: db.csp.sample(model_id, split, k=2, seed=0, name=f"cspml-{ranker}-k2") for ranker, model_id in ids.items()}
    n_test = split.counts["test"]
    for ranker, info in runs.items():
        at1, at2 = db.csp.evaluate(info.id, k=1), db.csp.evaluate(info.id)
        assert info.n_samples == 2 * n_test and at1["n_test"] == n_test
        assert 0.2 < at1["match_rate"] <= at2["match_rate"], ranker  # ABX3 A/B is a coin flip at k=1; both at k=2
        assert at2["match_rate"] > 0.75, ranker
    model, row = db.csp.load_model(ids["descriptor"])
    assert row.hyperparameters["ranker"] == "descriptor" and model.volume_choice_ in ("atomic", "fitted", "learned")
    # the stored model's templates are exactly the training fold's structures: none of val or test
    from xtalbase.csp.tasks import fold_structures

    stored = {_key(StructureArrays(np.asarray(c, float), np.asarray(n, np.int64), np.asarray(f, float))) for c, n, f in model.templates_}
    assert stored == {_key(st) for st in fold_structures(split, "train")}
    assert not stored & {_key(st) for fold in ("val", "test") for st in fold_structures(split, fold)}
    board = db.csp.leaderboard(split, runs=[r.name for r in runs.values()])
    assert {r["run"] for r in board["rows"]} == {"cspml-substitution-k2", "cspml-descriptor-k2"}
