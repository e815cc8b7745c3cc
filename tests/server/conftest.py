"""A live ``xtalbase serve`` per backend for the API and page tests: uvicorn in a thread on a free loopback port.

The database holds the 62 real structures of ``tests/data/query``, their XRD patterns (default recipe) and the
quarantined records of ``tests/data/ingest/bad`` (so the quarantine page has reasons to show).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.conftest import BACKENDS, TEST_DATA, new_database

BAD_RECORDS = TEST_DATA / "ingest" / "bad"


@dataclass
class LiveServer:
    """A running server: its base URL (``http://127.0.0.1:PORT``), its database and its settings."""

    url: str
    db: object
    settings: object


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def populate(db) -> None:  # noqa: ANN001
    from tests.platform.test_query_fixtures import N_STRUCTURES, QUERY_DATA, STRUCTURE_FOLDERS
    from xtalbase.xrd.builder import compute_missing

    report = db.ingest([QUERY_DATA / name for name in STRUCTURE_FOLDERS])
    assert report.inserted == N_STRUCTURES, report
    db.ingest([BAD_RECORDS])
    compute_missing(db)


def start_server(db, *, allow_writes: bool = False, token: str | None = None) -> Iterator[LiveServer]:  # noqa: ANN001
    """Serve ``db`` in a background thread until the generator is closed."""
    import uvicorn

    from xtalbase.server.app import ServerSettings, create_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = ServerSettings(db_url=db.url, allow_writes=allow_writes, token=token, base_url=url)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, db=db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(url=url, db=db, settings=settings)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module", params=BACKENDS)
def served_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The populated database (see the module docstring), per backend."""
    with new_database(request.param, tmp_path_factory.mktemp("served")) as db:
        populate(db)
        yield db


@pytest.fixture(scope="module")
def live(served_db) -> Iterator[LiveServer]:  # noqa: ANN001
    """A read-only server over ``served_db``."""
    yield from start_server(served_db)


@pytest.fixture(scope="module")
def live_writable(served_db) -> Iterator[LiveServer]:  # noqa: ANN001
    """A server over ``served_db`` with ``--allow-writes`` and the token ``test-token``."""
    yield from start_server(served_db, allow_writes=True, token="test-token")
