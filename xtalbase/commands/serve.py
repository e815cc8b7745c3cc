"""``xtalbase serve``: the OPTIMADE API and the curator pages over HTTP."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Optional

import typer

from xtalbase.commands._common import DbOpt, console, open_db

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_wildcard(host: str) -> bool:
    """Every address of the machine ("0.0.0.0", "::", "::0", ...): no address a client can use in a link."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --public.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 5000,
    public: Annotated[bool, typer.Option("--public", help="Allow listening beyond loopback (prints a warning).")] = False,
    allow_writes: Annotated[bool, typer.Option("--allow-writes", help="Enable the page actions that write (needs --token).")] = False,
    token: Annotated[Optional[str], typer.Option(help="Token that write actions must carry (default: $XTALBASE_SERVER_TOKEN).",
                                                 show_default=False)] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Address clients use to reach the server (links, pagination).",
                                                    show_default=False)] = None,
    db: DbOpt = None,
) -> None:
    """Serve the OPTIMADE v1 API (/v1/...) and the curator pages (/) from the database; read-only by default."""
    import uvicorn

    from xtalbase.errors import XtalbaseError
    from xtalbase.platform.config import redact_url
    from xtalbase.server.app import ServerSettings, create_app

    if not _is_loopback(host) and not public:
        raise XtalbaseError(f"--host {host} listens beyond this machine: add --public to do so deliberately")
    token = token or os.environ.get("XTALBASE_SERVER_TOKEN")
    if allow_writes and not token:
        raise XtalbaseError("--allow-writes needs a token: --token or $XTALBASE_SERVER_TOKEN")
    out = console(stderr=True)
    if not _is_loopback(host):
        out.print(f"warning: listening on {host}:{port}, reachable from other machines"
                  + ("; write actions are enabled (token required)" if allow_writes else "; read-only"))
    database = open_db(ctx, db)
    address = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    # a wildcard address is no address a client can use: links then follow the Host the client asked for
    settings = ServerSettings(db_url=database.url, allow_writes=allow_writes, token=token,
                              base_url=base_url or (None if _is_wildcard(host) else address))
    app = create_app(settings, db=database)
    out.print(f"xtalbase serving {redact_url(database.url)} at {settings.base_url or address} (OPTIMADE at /v1, pages at /)"
              + ("; writes enabled" if allow_writes else "; read-only"))
    uvicorn.run(app, host=host, port=port, log_level="warning")
