"""Engine creation; every SQLite/PostgreSQL difference in connection set-up lives here."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event

from xtalbase.platform.config import parse_url

SQLITE_BUSY_TIMEOUT_MS = 60_000
#: SQLite's page cache per writer connection, in KiB (SQLite's default, kept by read-only connections, is 2 MiB),
#: filled only as pages are read. Writing peaks into their three indexes runs faster with 64 MiB:
#: ``bench/scale.py --xrd-write-step`` times both.
SQLITE_CACHE_KIB = 65_536


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """Create an engine for ``url``.

    SQLite runs in WAL mode with foreign keys enforced and a busy timeout so a
    second writer waits instead of failing; ``read_only`` opens the file with
    ``mode=ro`` and ``query_only``. PostgreSQL uses psycopg 3 with pre-ping.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed.render_as_string(hide_password=False), parsed.database, read_only)
    return create_engine(url, pool_pre_ping=True, future=True)


def _sqlite_engine(url: str, path: str | None, read_only: bool) -> Engine:
    connect_args: dict = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if read_only and path and path != ":memory:":
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    engine = create_engine(url, connect_args=connect_args, future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001 - DBAPI types
        # Let SQLAlchemy, not the sqlite3 module, open transactions (BEGIN), so
        # that a failed block rolls back every statement it issued.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if read_only:
            cur.execute("PRAGMA query_only=ON")
        else:  # the bulk writes; readers keep SQLite's default, for a server may pool many of them
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # IMMEDIATE takes the write lock up front: two writers queue on the busy
        # timeout instead of deadlocking on a read-to-write upgrade.
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
