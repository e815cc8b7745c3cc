"""Which configurations validate a potential: the split's val fold, or a grouped seeded 10 % of training."""

from __future__ import annotations

from types import SimpleNamespace

from xtalbase.mlip.potentials import _Selection, _split_val, _validation


def _configs(groups: dict[str, int]) -> list[SimpleNamespace]:
    return [SimpleNamespace(group=g, k=k) for g, n in groups.items() for k in range(n)]


def test_grouped_draw_keeps_small_groups_and_is_seeded():
    configs = _configs({"AIMD": 100, "Elastic": 50, "Surface": 9, "Vacancy": 3})
    train, val = _split_val(configs, seed=0)
    assert len(train) + len(val) == len(configs) and not {id(c) for c in train} & {id(c) for c in val}
    counts = {g: sum(c.group == g for c in val) for g in ("AIMD", "Elastic", "Surface", "Vacancy")}
    assert counts == {"AIMD": 10, "Elastic": 5, "Surface": 1, "Vacancy": 0}
    assert [id(c) for c in _split_val(configs, seed=0)[1]] == [id(c) for c in val]
    assert [id(c) for c in _split_val(configs, seed=1)[1]] != [id(c) for c in val]
    assert _split_val(configs[:9], seed=0) == (configs[:9], [])


def test_a_nearly_empty_val_fold_is_replaced():
    configs = _configs({"AIMD": 190})
    tiny = _Selection(configs=configs, held={"val": configs[:2]}, info={}, split=None, dataset=None, parent=None)
    train, val, rule = _validation(tiny, seed=0)
    assert len(val) == 19 and "only 2" in rule
    enough = _Selection(configs=configs, held={"val": _configs({"x": 20})}, info={}, split=None, dataset=None, parent=None)
    assert _validation(enough, seed=0)[2] == "split val fold"
