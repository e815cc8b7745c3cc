"""Configuration: where the database is and which Dask scheduler computes. The only global state xtalbase reads."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from xtalbase.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

ENV_VAR = "XTALBASE_DB_URL"
DEFAULT_URL = "sqlite:///./xtalbase.db"
#: A ``dask.distributed`` scheduler address every bulk command computes on unless told otherwise.
SCHEDULER_ENV_VAR = "XTALBASE_DASK_SCHEDULER"
#: The help of every bulk command's ``--scheduler``.
SCHEDULER_HELP = (f"Compute on the workers of this dask.distributed scheduler (tcp://host:8786) instead of local processes; "
                  f"--workers is then not used. Default: ${SCHEDULER_ENV_VAR}; '' for local workers.")


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
    # sqlalchemy here, not at import: the commands read the scheduler's help from this module, and --help stays fast
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

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
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def resolve_scheduler(address: str | None = None) -> str | None:
    """Pick the Dask scheduler: the argument, else ``$XTALBASE_DASK_SCHEDULER``, else ``None`` (local workers).

    An empty string (argument or variable) means local workers too, so ``--scheduler ''`` overrides the variable.
    """
    chosen = os.environ.get(SCHEDULER_ENV_VAR) if address is None else address
    return chosen.strip() or None if chosen else None
