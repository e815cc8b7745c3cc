"""Plots are written through a Figure's own canvas: the caller's matplotlib backend and pyplot state stay as they were."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture
def svg_backend():
    """A non-Agg backend chosen by the 'user' (a notebook would have inline); restored afterwards."""
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        yield plt
    finally:
        plt.switch_backend(before)


def test_plots_leave_the_backend_and_pyplot_alone(svg_backend, tmp_path):
    from sklearn.tree import DecisionTreeClassifier

    from xtalbase.ml.plots import confusion_png, importances_png, surrogate_scatter_png
    from xtalbase.xrd.plot import plot_pattern

    plt = svg_backend
    figures = plt.get_fignums()
    info = {"two_theta_range": (10.0, 80.0), "two_theta": np.array([20.0, 35.5, 61.0]), "intensity": np.array([100.0, 40.0, 12.0]),
            "structure_id": 1, "formula": "MnO", "recipe_name": "CuKa 0-90", "wavelength": 1.54184}
    rng = np.random.default_rng(0)
    peak3, npeaks = rng.uniform(10, 60, 40), rng.integers(3, 200, 40).astype(float)
    cubic = peak3 < 35
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(np.column_stack([peak3, npeaks]), cubic)
    written = [plot_pattern(info, tmp_path / "pattern.png"),
               confusion_png([[5, 1], [2, 7]], ["cubic", "tetragonal"], tmp_path / "confusion.png", "test"),
               importances_png([("peak1", 0.5), ("npeaks", 0.3)], tmp_path / "importances.png", "test"),
               surrogate_scatter_png(peak3, npeaks, cubic, tree, 0.9, tmp_path / "surrogate.png")]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == figures
