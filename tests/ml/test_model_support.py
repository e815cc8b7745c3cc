"""Shared fixtures of the model tests: one populated database per backend and module.

``trained_db`` ingests the vendored real subset (350 Materials Project structures, 50 per crystal system,
``xtalbase/data/mp_subset``), computes their Cu Kα patterns and stores a random 60/20/20 split ``models``;
building it once per module keeps the model tests fast (the fixture is in ``tests/conftest.py``). No tests live here.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "xtalbase" / "data"
MP_CIFS = DATA / "mp_subset" / "cifs"
SCANS = DATA / "xrd_experimental" / "Spectra"
SPLIT = "models"


def populate(db) -> None:
    """Ingest the vendored MP subset, compute XRD, create the random split ``models`` (seed 0)."""
    from xtalbase.xrd.builder import compute_missing

    report = db.ingest([MP_CIFS])
    assert report.inserted == 350, report
    assert compute_missing(db)["computed"] == 350
    db.splits.create(SPLIT, strategy="random", fractions=(0.6, 0.2, 0.2), seed=0)


