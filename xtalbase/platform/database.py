"""The database handle returned by :func:`xtalbase.connect`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from xtalbase.errors import DatabaseUnavailable, SchemaError
from xtalbase.platform import migrate
from xtalbase.platform.config import redact_url, resolve_url
from xtalbase.platform.engine import make_engine
from xtalbase.platform.runs import RunContext, record_run
from xtalbase.schema import Base

if TYPE_CHECKING:
    from xtalbase.platform.query import Query


class Database:
    """A connection to one xtalbase database (SQLite file or PostgreSQL).

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; resolved by :func:`xtalbase.platform.config.resolve_url`.

    Examples
    --------
    >>> db = Database("sqlite:///:memory:")
    >>> db.init()["revision"] == db.head_revision
    True
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        self.engine: Engine = make_engine(self.url)
        self._sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._read_only_engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)!r})"

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def head_revision(self) -> str:
        """The schema revision this code expects."""
        return migrate.head_revision()

    def session(self) -> Session:
        """A new ORM session; use it as ``with db.session() as s:`` and commit explicitly."""
        return self._sessionmaker()

    def read_only_engine(self) -> Engine:
        """An engine that cannot write (SQLite ``mode=ro`` + ``query_only``; PostgreSQL read-only transactions)."""
        if self._read_only_engine is None:
            if self.backend == "sqlite":
                self._read_only_engine = make_engine(self.url, read_only=True)
            else:
                self._read_only_engine = self.engine.execution_options(postgresql_readonly=True)
        return self._read_only_engine

    def run(self, kind: str, params: dict[str, Any] | None = None, parent: int | None = None) -> AbstractContextManager[RunContext]:
        """Record a ``runs`` row around a block.

        The row is committed as ``running`` before the block starts. If the
        block raises, everything it did through ``run.session`` is rolled back
        and the run is marked ``failed`` with the error text; otherwise the
        session is committed and the run marked ``succeeded``.
        """
        return record_run(self, kind, params, parent)

    def revision(self) -> str | None:
        """The schema revision of the database (``None`` if never initialised)."""
        try:
            return migrate.current_revision(self.engine)
        except OperationalError as exc:
            raise DatabaseUnavailable(f"cannot open database {redact_url(self.url)}: {_first_line(exc)}") from exc

    def init(self) -> dict[str, Any]:
        """Create the schema or upgrade it to head (a no-op when already at head); on PostgreSQL also
        make the reader role of ``xtalbase sql`` when the user may (``reader_role``: what was done)."""
        from xtalbase.platform.sql_roles import ensure_reader_role

        before = self.revision()
        if before != self.head_revision:
            migrate.upgrade(self.engine, "head")
        return {"before": before, "revision": self.revision(), "reader_role": ensure_reader_role(self)}

    def require_schema(self) -> None:
        """Raise :class:`SchemaError` unless the database is at the head revision."""
        rev = self.revision()
        if rev is None:
            raise SchemaError(f"database {redact_url(self.url)} is not initialised: run `xtalbase init`")
        if rev != self.head_revision:
            raise SchemaError(f"database {redact_url(self.url)} is at revision {rev}, this xtalbase expects "
                              f"{self.head_revision}: run `xtalbase init` to upgrade")

    def counts(self) -> dict[str, int]:
        """Row count of every xtalbase table present in the database."""
        present = set(inspect(self.engine).get_table_names())
        out = {}
        with self.engine.connect() as conn:
            for name, table in sorted(Base.metadata.tables.items()):
                if name in present:
                    out[name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
        return out

    def status(self) -> dict[str, Any]:
        """URL (password hidden), backend, schema revision, head revision and row counts."""
        rev = self.revision()
        return {
            "url": redact_url(self.url),
            "backend": self.backend,
            "revision": rev,
            "head": self.head_revision,
            "up_to_date": rev == self.head_revision,
            "counts": self.counts() if rev else {},
        }

    def query(self, filter: str | None = None, *, sort: str | None = None, limit: int | None = None,
              offset: int = 0) -> "Query":
        """A lazy query over structures selected by an OPTIMADE ``filter`` (see :class:`~xtalbase.platform.query.Query`)."""
        from xtalbase.platform.query import Query

        return Query(self, filter, sort=sort, limit=limit, offset=offset)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()
        if self._read_only_engine is not None and self._read_only_engine is not self.engine:
            self._read_only_engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
