"""Crystal-structure prediction compared fairly: tasks from stored splits, models, stored samples, one metric module.

- :mod:`~xtalbase.csp.tasks`: any stored split as a CSP benchmark (the compositions of a fold, their references).
- :mod:`~xtalbase.csp.models`: models behind one interface (``fit``, ``sample``) and their registry.
- :mod:`~xtalbase.csp.samples`: CSP runs (model + split hash + fold + k + seed) and their immutable samples.
- :mod:`~xtalbase.csp.interchange`: importing predictions made elsewhere (folders, CSV, npz/JSON, ``.pt``).
- :mod:`~xtalbase.csp.validity`, :mod:`~xtalbase.csp.matching`: the gates and the parallel StructureMatcher.
- :mod:`~xtalbase.csp.metrics`: small metric objects computed from stored per-pair results.
- :mod:`~xtalbase.csp.leaderboard`: runs of one split hash side by side.

See ``docs/csp.md`` for the decisions on each point of the reference definitions.
"""
