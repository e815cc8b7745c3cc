"""Library code leaves the caller's process as it found it: matplotlib backend, pyplot figures, environment."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def svg_backend():
    """A non-Agg backend standing in for a notebook's; restored afterwards."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield "svg"
    matplotlib.use(before)


def test_plots_keep_the_callers_backend_and_environment(svg_backend: str, tmp_path: Path) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    from xtalbase.ml.plots import confusion_png, importances_png
    from xtalbase.xrd.plot import plot_pattern

    env = dict(os.environ)
    figures = plt.get_fignums()
    info = {"structure_id": 1, "formula": "NaCl", "recipe_name": "cu-ka", "wavelength": 1.54184, "two_theta_range": (10.0, 90.0),
            "two_theta": np.array([31.7, 45.4, 56.5]), "intensity": np.array([100.0, 60.0, 20.0])}
    written = [plot_pattern(info, tmp_path / "pattern.png"),
               confusion_png([[3, 1], [0, 4]], ["cubic", "other"], tmp_path / "confusion.png", "confusion"),
               importances_png([("peak1", 0.7), ("peak2", 0.3)], tmp_path / "importances.png", "importances")]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    assert matplotlib.get_backend() == svg_backend
    assert plt.get_fignums() == figures
    assert dict(os.environ) == env


def test_symmetry_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from xtalbase.ingest.identity import symmetry

    monkeypatch.delenv("SPGLIB_WARNING", raising=False)
    env = dict(os.environ)
    sym = symmetry(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), ["Cs", "Cl"], engine="spglib")
    assert sym is not None and sym.number == 221
    assert dict(os.environ) == env


def test_moyo_symmetry_leaves_logging_alone() -> None:
    """The library does not silence moyo's logger for its callers (only the ``xtalbase`` command does)."""
    import logging

    from xtalbase.ingest.identity import symmetry

    logger = logging.getLogger("moyo")
    before = logger.level
    sym = symmetry(np.eye(3) * 4.0, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), ["Cs", "Cl"], engine="moyo")
    assert sym is not None and sym.number == 221
    assert logger.level == before
