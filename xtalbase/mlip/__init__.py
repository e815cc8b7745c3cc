"""Machine-learning interatomic potentials (HDNNP): training data, descriptors, networks.

``xtalbase.mlip.Calculator`` is the ASE calculator (imported on first use, so this package stays light).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Calculator"]


def __getattr__(name: str) -> Any:
    if name == "Calculator":
        from xtalbase.mlip.calculator import Calculator

        return Calculator
    raise AttributeError(f"module 'xtalbase.mlip' has no attribute {name!r}")
