"""The SQLite connection settings every xtalbase connection gets (writer and read-only)."""

from __future__ import annotations

import xtalbase
from xtalbase.platform.engine import SQLITE_BUSY_TIMEOUT_MS, SQLITE_CACHE_KIB


def test_writer_and_reader_connections_get_wal_foreign_keys_the_timeout_and_their_page_cache(tmp_path):
    db = xtalbase.connect(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        db.init()
        for engine, cache in ((db.engine, -SQLITE_CACHE_KIB), (db.read_only_engine(), -2000)):
            with engine.connect() as conn:
                pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                          for name in ("journal_mode", "foreign_keys", "busy_timeout", "cache_size", "query_only")}
            assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                              "cache_size": cache, "query_only": int(engine is not db.engine)}, engine
    finally:
        db.close()
