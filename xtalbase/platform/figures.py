"""Figures drawn straight to files, without pyplot's global state.

``matplotlib.use("Agg")`` in library code would switch a notebook user's backend; a ``Figure`` with its
own Agg canvas writes a PNG without touching the backend, the figure registry or a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(size: tuple[float, float]) -> "Figure":
    """A figure of ``size`` (inches) on its own Agg canvas; add axes with ``fig.subplots()``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: "Figure", path: Path, *, dpi: int = 110) -> Path:
    """Lay out ``fig`` tightly and write it to ``path`` (format from the extension); returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
