"""The server application: one FastAPI app around one database, with the OPTIMADE routes and the curator pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from xtalbase.api import Database


@dataclass(frozen=True)
class ServerSettings:
    """How the server runs: the database it reads, whether it may write, and the token that writes need.

    ``base_url`` is the address clients reach the server at (``http://127.0.0.1:5000``); OPTIMADE links and
    pagination URLs are built from it, or from the request when it is ``None``.
    """

    db_url: Optional[str] = None
    allow_writes: bool = False
    token: Optional[str] = None
    base_url: Optional[str] = None


def create_app(settings: ServerSettings, db: "Optional[Database]" = None) -> "FastAPI":
    """The application for ``settings`` (``db`` reuses an open database instead of opening ``settings.db_url``)."""
    from fastapi import FastAPI

    from xtalbase.api import Database
    from xtalbase.platform.provenance import package_version
    from xtalbase.platform.query import DistinctCache
    from xtalbase.server import optimade, pages

    if settings.allow_writes and not settings.token:
        raise ValueError("--allow-writes needs a token (--token or $XTALBASE_SERVER_TOKEN)")
    app = FastAPI(title="xtalbase", version=package_version(), docs_url="/docs", redoc_url=None)
    app.state.db = db if db is not None else Database(settings.db_url)
    app.state.settings = settings
    # A new structure renews it at once (ids only grow); a deleted one only leaves a formula that matches no row,
    # so an hour's age costs nothing wrong, while renewing takes seconds at a million structures
    app.state.distinct_cache = DistinctCache(ttl_s=3600)
    app.include_router(optimade.router)
    app.include_router(pages.router)
    return app


def database(request: "Request") -> "Database":
    """The database of the app serving ``request``."""
    return request.app.state.db


def settings_of(request: "Request") -> ServerSettings:
    """The settings of the app serving ``request``."""
    return request.app.state.settings
