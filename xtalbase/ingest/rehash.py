"""Bring stored canonical hashes up to the current :data:`~xtalbase.ingest.identity.HASH_VERSION`.

A database filled by an older xtalbase keeps keys of an older recipe; new records
would never meet them and every structure already stored would be stored again.
So before an ingest writes anything, rows with an older ``hash_version`` get the
current key, computed from their stored arrays at their own ``symprec`` (one
symmetry call each, once), in transactions of :data:`BATCH` rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select, update

from xtalbase.ingest.identity import DEFAULT_ENGINE, DEFAULT_SYMPREC, HASH_VERSION, canonical_hash, site_labels, symmetry
from xtalbase.schema import Structure

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

BATCH = 500


def rehash_outdated(db: "Database", engine: str = DEFAULT_ENGINE) -> int:
    """Recompute the canonical hash of every row older than :data:`HASH_VERSION`; returns how many were updated.

    On an up-to-date database this is one query that finds nothing.
    """
    from xtalbase.ingest.records import species_from_pymatgen
    from xtalbase.platform.convert import to_pymatgen

    table = Structure.__table__
    cols = [table.c.id, table.c.nsites, table.c.cell, table.c.numbers, table.c.frac_coords, table.c.site_occupancies,
            table.c.symprec]
    done = 0
    while True:
        with db.engine.begin() as conn:
            rows = conn.execute(select(*cols).where(table.c.hash_version < HASH_VERSION).order_by(table.c.id)
                                .limit(BATCH)).all()
            if not rows:
                return done
            for row in rows:
                structure = to_pymatgen(row)
                labels = site_labels(species_from_pymatgen(structure))
                sym = symmetry(np.asarray(structure.lattice.matrix), np.asarray(structure.frac_coords), labels,
                               row.symprec or DEFAULT_SYMPREC, engine)
                conn.execute(update(table).where(table.c.id == row.id)
                             .values(canonical_hash=canonical_hash(labels, sym), hash_version=HASH_VERSION))
            done += len(rows)
