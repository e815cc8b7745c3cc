"""The target registry: one entry per learnable property, read by training, prediction and the CLI help."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from xtalbase.cli import app
from xtalbase.errors import XtalbaseError
from xtalbase.ml.targets import TARGETS, Target, get_target, metric_names


def _row(i: int, system: str | None, sg: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=i, crystal_system=system, spacegroup_number=sg)


def test_registry_entries_and_their_rules():
    assert list(TARGETS) == ["crystal_system", "space_group", "lattice", "cubic_a"]
    assert {t.task for t in TARGETS.values()} == {"classification", "regression"}
    assert get_target("lattice").outputs == ("a", "b", "c") and get_target("cubic_a").outputs == ("a",)
    rows = [_row(1, "cubic", 225), _row(2, "hexagonal", 194), _row(3, "cubic", 221)]
    assert [r.id for r in get_target("cubic_a").training_rows(rows)] == [1, 3]
    assert get_target("crystal_system").training_rows(rows) == rows
    assert get_target("space_group").label(rows).tolist() == [225, 194, 221]
    np.testing.assert_array_equal(get_target("crystal_system").label(rows), ["cubic", "hexagonal", "cubic"])
    with pytest.raises(XtalbaseError, match="1 structures have no space_group .* structure 4"):
        get_target("space_group").label([_row(4, "cubic", None)])
    with pytest.raises(XtalbaseError, match="unknown target 'band_gap'; choose one of"):
        get_target("band_gap")
    with pytest.raises(XtalbaseError, match="task must be one of"):
        Target("x", "clustering", ("x",), "x", label=lambda rows: np.zeros(len(rows)))
    assert metric_names()[:2] == ["accuracy", "top5_accuracy"] and "r2_cubic_a" in metric_names()


def test_train_help_lists_the_registered_targets():
    result = CliRunner().invoke(app, ["train", "xrd", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in TARGETS:
        assert name in text
    assert "cubic structures" in text
