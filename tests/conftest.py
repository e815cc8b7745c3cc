"""Shared fixtures: a clean database per test on SQLite and PostgreSQL, and paths to real data.

Database-backed tests take the ``db`` (initialised) or ``db_url`` (empty) fixture and
run once per backend. PostgreSQL tests get a fresh schema (via ``search_path``)
that is dropped afterwards; where no server answers they are skipped with the
reason. ``XTALBASE_TEST_BACKENDS=sqlite`` limits a local run to one backend.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
TEST_DATA = ROOT / "tests" / "data"
PG_URL = os.environ.get("XTALBASE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("XTALBASE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]

#: Test modules that take longest (``pytest --durations``), longest first. With ``--dist loadfile
#: --no-loadscope-reorder`` (pyproject's addopts) xdist hands out modules in collection order, so starting these
#: first keeps one long module from running alone at the end while the other worker idles.
LONGEST_MODULES = (
    "tests/test_demo.py", "tests/mlip/test_expansion.py", "tests/ingest/test_safety.py", "tests/csp/test_store.py",
    "tests/csp/test_cspml.py", "tests/platform/test_dask_cluster.py", "tests/ingest/test_budgets.py",
    "tests/ml/test_xrd_measured_scans.py", "tests/ml/test_xrd_augment.py", "tests/ml/test_predict_xrd.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the items of :data:`LONGEST_MODULES` to the front, in that order; the rest keep theirs."""
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    position = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(item.nodeid.split("::")[0], len(rank)), position[id(item)]))


def shared(*parts: str) -> Path:
    """Path under ``../shared/data``; skips the test with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (the ../shared/data checkout is absent)")
    return path


@functools.cache
def pg_unavailable_reason() -> str | None:
    """``None`` when the test PostgreSQL server answers, else why not."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means: skip PostgreSQL tests
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL not reachable at {PG_URL} ({first}); PostgreSQL tests skipped"
    return None


@functools.cache
def _pg_admin():
    import sqlalchemy as sa

    return sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a new, empty database on each backend."""
    with new_database_url(request.param, tmp_path) as url:
        yield url


@contextlib.contextmanager
def new_database_url(backend: str, folder: Path) -> Iterator[str]:
    """URL of a new, empty database on ``backend`` (a file in ``folder``, or a PostgreSQL schema dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'test.db'}"
        return
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import sqlalchemy as sa

    schema = f"xbtest_{uuid.uuid4().hex[:12]}"
    with _pg_admin().connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(schema)
    finally:
        with _pg_admin().connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@contextlib.contextmanager
def new_database(backend: str, folder: Path) -> Iterator:
    """A new database on ``backend``, initialised (migrated to head); closed, and on PostgreSQL dropped, afterwards."""
    import xtalbase

    with new_database_url(backend, folder) as url:
        handle = xtalbase.connect(url)
        try:
            handle.init()
            yield handle
        finally:
            handle.close()


@pytest.fixture
def db(db_url: str):
    """An initialised (migrated to head) database on each backend."""
    import xtalbase

    handle = xtalbase.connect(db_url)
    handle.init()
    yield handle
    handle.close()


# Populated databases shared by several test modules: each is built once per backend and module, from
# data and builders kept beside the tests that use them.


@pytest.fixture(scope="module", params=BACKENDS)
def trained_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The vendored MP subset, its patterns and the split ``models`` (:mod:`tests.ml.test_model_support`), per backend."""
    from tests.ml.test_model_support import populate

    with new_database(request.param, tmp_path_factory.mktemp("models")) as db:
        populate(db)
        yield db


@pytest.fixture(scope="module", params=BACKENDS)
def qdb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The ingested ``tests/data/query`` structures (:mod:`tests.platform.test_query_fixtures`), per backend."""
    from tests.platform.test_query_fixtures import N_STRUCTURES, QUERY_DATA, STRUCTURE_FOLDERS

    with new_database(request.param, tmp_path_factory.mktemp("query")) as db:
        report = db.ingest([QUERY_DATA / name for name in STRUCTURE_FOLDERS])
        assert report.inserted == N_STRUCTURES, report
        yield db


@pytest.fixture(scope="module")
def truth(qdb) -> dict:
    """pymatgen's independent reading of each record of ``qdb``, keyed by structure id."""
    from tests.platform.test_query_fixtures import build_truth

    return build_truth(qdb)


@pytest.fixture(scope="module", params=BACKENDS)
def p5db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A database per backend with the 220 Perov-5 fixture rows and the split ``p5`` (60/20/20 grouped by formula);
    used by the CSP and property-model tests."""
    from xtalbase.csp.tasks import perov5

    with new_database(request.param, tmp_path_factory.mktemp("perov5")) as db:
        assert db.ingest([TEST_DATA / "splits" / "perov5_220.csv"]).inserted == 220
        perov5(db.splits, "p5")
        yield db
