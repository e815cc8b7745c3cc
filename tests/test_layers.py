"""The import contract: every import in xtalbase follows the layer rule of :mod:`xtalbase.layers`."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtalbase.layers import ALLOWED_SIDEWAYS, LAYERS, check_package

PACKAGE = Path(__file__).resolve().parents[1] / "xtalbase"

#: Violations tolerated for now, keyed by (file, imported unit), each with the change that removes it
#: (none left). A new violation fails the test, and so does an entry here that no longer occurs:
#: delete it, so that the list only shrinks.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def _unit(imported: str) -> str:
    parts = imported.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_tree_follows_the_layer_rule() -> None:
    found = check_package(PACKAGE)
    new = [str(v) for v in found if (v.path, _unit(v.imported)) not in KNOWN_VIOLATIONS]
    assert not new, "layer rule broken (see xtalbase/layers.py, docs/architecture.md):\n" + "\n".join(new)
    seen = {(v.path, _unit(v.imported)) for v in found}
    stale = [f"{path} -> {unit}" for path, unit in KNOWN_VIOLATIONS if (path, unit) not in seen]
    assert not stale, "fixed, so remove from KNOWN_VIOLATIONS: " + ", ".join(stale)


def test_table_places_the_planned_packages() -> None:
    assert LAYERS["commands"] > LAYERS["api"] > LAYERS["ml"] > LAYERS["xrd"] > LAYERS["platform"] > LAYERS["schema"] > LAYERS["errors"]
    for unit in ("mlip", "csp", "ingest"):
        assert LAYERS[unit] == LAYERS["ml"]
    assert LAYERS["descriptors"] == LAYERS["xrd"]
    for here, there in ALLOWED_SIDEWAYS:
        assert LAYERS[here] == LAYERS[there], f"{here} -> {there} is not sideways: it needs no exception"


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(root.parent).parents:
        if parent != Path("."):
            (root.parent / parent / "__init__.py").touch()
    path.write_text(text)


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """A small fake ``xtalbase`` with one clean module and one module per kind of violation."""
    root = tmp_path / "xtalbase"
    _write(root, "xrd/clean.py", "from xtalbase.platform import engine\nfrom xtalbase.errors import XtalbaseError\n"
                                 "from xtalbase import __version__\nfrom . import helper\nfrom ._private import x\n")
    _write(root, "mlip/fit.py", "from xtalbase.ml.splits import SplitStore\n")  # an allowed sideways edge
    _write(root, "xrd/upward.py", "import numpy\n\ndef f():\n    from xtalbase.ml.features import FeatureRecipe\n")
    _write(root, "ml/sideways.py", "from xtalbase.ingest import prepare\n")
    _write(root, "ml/typed.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from xtalbase.api import Database\n")
    _write(root, "ml/private.py", "from xtalbase.platform.sql import _chunks\nimport xtalbase.xrd._grid\n")
    _write(root, "ml/relative.py", "from ..commands import demo\n")
    _write(root, "newpkg/thing.py", "from xtalbase.schema import Structure\n")
    _write(root, "platform/engine.py", "")
    _write(root, "platform/sql.py", "")
    return root


def test_checker_detects_each_kind_of_violation(synthetic: Path) -> None:
    found = {(v.path, v.line): v.rule for v in check_package(synthetic)}
    assert not [k for k in found if k[0].endswith(("clean.py", "fit.py"))]
    assert found[("xtalbase/xrd/upward.py", 4)].startswith("upward import: xrd (rank 3) -> ml (rank 4)")
    assert found[("xtalbase/ml/sideways.py", 1)].startswith("sideways import: ml -> ingest")
    assert found[("xtalbase/ml/typed.py", 3)].endswith("(type-only)")
    assert "private name _chunks of unit platform" in found[("xtalbase/ml/private.py", 1)]
    assert "private name _grid of unit xrd" in found[("xtalbase/ml/private.py", 2)]
    assert found[("xtalbase/ml/relative.py", 1)].startswith("upward import: ml (rank 4) -> commands")
    assert "'newpkg' has no place" in found[("xtalbase/newpkg/thing.py", 1)]


def test_violation_names_file_line_and_rule(synthetic: Path) -> None:
    text = [str(v) for v in check_package(synthetic) if v.path.endswith("upward.py")]
    assert text == ["xtalbase/xrd/upward.py:4: imports xtalbase.ml.features.FeatureRecipe: "
                    "upward import: xrd (rank 3) -> ml (rank 4)"]
