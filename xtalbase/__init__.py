"""xtalbase: crystal structures, XRD patterns, DFT calculations and model predictions in one SQL database.

>>> import xtalbase
>>> db = xtalbase.connect("sqlite:///example.db")   # doctest: +SKIP
>>> db.init()                                        # doctest: +SKIP

Heavy modules (pymatgen, torch, xgboost) load only when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from xtalbase.api import Database


def connect(url: str | None = None) -> "Database":
    """Open the xtalbase database at ``url``, else ``$XTALBASE_DB_URL``, else ``./xtalbase.db``."""
    from xtalbase.api import Database

    return Database(url)


def __getattr__(name: str) -> Any:
    if name == "compute_xrd":
        from xtalbase.xrd import compute_xrd

        return compute_xrd
    raise AttributeError(f"module 'xtalbase' has no attribute {name!r}")


__all__ = ["connect", "compute_xrd", "__version__"]
