"""Configuration: where the database is. The only global state xtalbase reads."""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from xtalbase.errors import ConfigurationError

ENV_VAR = "XTALBASE_DB_URL"
DEFAULT_URL = "sqlite:///./xtalbase.db"


def resolve_url(url: str | None = None) -> str:
    """Pick the database URL: the argument, else ``$XTALBASE_DB_URL``, else ``./xtalbase.db``.

    ``postgresql://`` and ``postgres://`` are read as ``postgresql+psycopg://``
    (psycopg 3 is the driver xtalbase ships with).
    """
    chosen = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    parsed = parse_url(chosen)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def parse_url(url: str) -> URL:
    """Parse ``url`` or raise :class:`ConfigurationError` naming what is wrong."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(f"cannot parse database URL {url!r}: expected e.g. sqlite:///path.db or postgresql+psycopg://user@host/db") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "postgres"):
        raise ConfigurationError(f"unsupported database backend {backend!r} in URL: xtalbase runs on sqlite and postgresql")
    return parsed


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print and log."""
    return make_url(url).render_as_string(hide_password=True)
