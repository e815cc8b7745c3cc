"""The user-facing database handle: platform storage plus the ingest and ML entry points.

It sits above ``ingest`` and ``ml`` (like the CLI), so lower layers never import
upward; each method imports its implementation only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xtalbase.platform.database import Database as _PlatformDatabase

if TYPE_CHECKING:
    from xtalbase.ingest.pipeline import IngestReport
    from xtalbase.ml.datasets import DatasetStore
    from xtalbase.ml.splits import SplitStore


class Database(_PlatformDatabase):
    """An xtalbase database: ``query``, ``run`` and ``session`` plus ``ingest``, ``splits`` and ``datasets``."""

    def ingest(self, paths: Any, **options: Any) -> "IngestReport":
        """Read, validate, deduplicate and store structure/DFT files; see :func:`xtalbase.ingest.pipeline.ingest`."""
        from xtalbase.ingest.pipeline import ingest

        return ingest(self, paths, **options)

    @property
    def splits(self) -> "SplitStore":
        """Create and load reproducible splits."""
        from xtalbase.ml.splits import SplitStore

        return SplitStore(self)

    @property
    def datasets(self) -> "DatasetStore":
        """Create, extend and trace training/retraining sets."""
        from xtalbase.ml.datasets import DatasetStore

        return DatasetStore(self)
