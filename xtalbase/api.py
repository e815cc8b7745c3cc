"""The user-facing database handle: platform storage plus the ingest and ML entry points.

It sits above ``ingest`` and ``ml`` (like the CLI), so lower layers never import
upward; each method imports its implementation only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xtalbase.platform.database import Database as _PlatformDatabase

if TYPE_CHECKING:
    import pandas

    from xtalbase.csp.store import CspStore
    from xtalbase.descriptors.store import DescriptorStore
    from xtalbase.ingest.options import IngestOptions
    from xtalbase.ingest.pipeline import IngestReport
    from xtalbase.ml.datasets import DatasetStore
    from xtalbase.ml.splits import SplitStore
    from xtalbase.xrd.identify import ScanResult


class Database(_PlatformDatabase):
    """An xtalbase database: ``query``, ``run`` and ``session`` plus ``ingest``, ``splits``, ``datasets``, ``describe``, ``identify``
    and ``csp``."""

    def ingest(self, paths: Any, options: "IngestOptions | None" = None, **kwargs: Any) -> "IngestReport":
        """Read, validate, deduplicate and store structure/DFT files; see :func:`xtalbase.ingest.pipeline.ingest`.

        ``options`` (an :class:`~xtalbase.ingest.options.IngestOptions`) and/or options by name
        (``workers=2``); an unknown name is an error. ``on_progress`` is passed through.
        """
        from xtalbase.ingest.pipeline import ingest

        return ingest(self, paths, options, **kwargs)

    def quarantine(self, reason: str | None = None) -> "pandas.DataFrame":
        """Quarantined records, newest first (``xtalbase quarantine list`` as a DataFrame; ``reason``: one code)."""
        import pandas as pd

        from xtalbase.errors import XtalbaseError
        from xtalbase.ingest.records import REASONS
        from xtalbase.platform.repositories.structures import QUARANTINE_COLUMNS, quarantine_rows

        if reason is not None and reason not in REASONS:
            raise XtalbaseError(f"{reason!r} is not a reason code; choose one of {', '.join(REASONS)}")
        with self.session() as s:
            rows = quarantine_rows(s, reason)
        return pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS))

    @property
    def splits(self) -> "SplitStore":
        """Create and load reproducible splits."""
        from xtalbase.ingest.cdvae_match import match_cdvae_folder
        from xtalbase.ml.splits import SplitStore

        return SplitStore(self, cdvae_matcher=match_cdvae_folder)

    @property
    def datasets(self) -> "DatasetStore":
        """Create, extend and trace training/retraining sets."""
        from xtalbase.ml.datasets import DatasetStore

        return DatasetStore(self)

    @property
    def descriptors(self) -> "DescriptorStore":
        """Descriptor recipes and the cached descriptor vectors of stored structures."""
        from xtalbase.descriptors.store import DescriptorStore

        return DescriptorStore(self)

    def describe(self, recipe: Any = "xenonpy", filter: str | None = None, ids: Any = None, **params: Any) -> "pandas.DataFrame":
        """Descriptor vectors (index ``structure_id``) of the structures matching ``filter`` (or ``ids``), computed
        once per (recipe, structure) and cached; ``recipe``: a preset (``xenonpy``, ``magpie``, ``crystalnn``, ``rdf``,
        ``adf``) with ``params`` overriding its parameters, or a stored recipe's id, name or hash prefix."""
        store = self.descriptors
        return store.frame(store.recipe(recipe, **params), ids=ids, filter=filter)

    def identify(self, scan: Any, elements: Any = None, *, require: Any = None, filter: str | None = None, store: bool = False,
                 **options: Any) -> "ScanResult":
        """The stored phases that explain a measured scan (path or :class:`~xtalbase.xrd.scans.Scan`): candidates whose
        elements lie in ``elements`` (e.g. ``"Ti,Zn,O"``), contain ``require`` and match an OPTIMADE ``filter``;
        ``options`` are :class:`~xtalbase.xrd.phase_search.SearchSettings` fields (``max_phases=3``, ``min_gain``...)
        plus ``recipe``, ``wavelength``, ``axis_strain`` and ``kalpha2``. ``store=True`` imports the scan and stores the result as a prediction."""
        from xtalbase.xrd.identify import identify_scan, identify_scans
        from xtalbase.xrd.phase_search import SearchSettings

        recipe, wavelength = options.pop("recipe", None), options.pop("wavelength", None)
        axis_strain, kalpha2 = bool(options.pop("axis_strain", False)), options.pop("kalpha2", None)
        settings = SearchSettings(**options)
        common = {"elements": elements, "require": require, "filter": filter, "recipe": recipe, "wavelength": wavelength,
                  "settings": settings, "axis_strain": axis_strain, "kalpha2": kalpha2}
        if store:
            return identify_scans(self, [scan], store=True, **common)[0]
        return identify_scan(self, scan, **common)

    @property
    def csp(self) -> "CspStore":
        """Crystal-structure prediction: train and sample models, import predictions, evaluate, compare."""
        from xtalbase.csp.store import CspStore

        return CspStore(self)
