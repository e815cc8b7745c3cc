"""The curator's HTML pages: search, structure, quarantine, and the two write actions (note, re-ingest).

Pages are rendered on the server with Jinja2 (autoescape on: every stored or typed value is HTML-escaped).
Reads go through :mod:`xtalbase.server.page_data`; writes through :mod:`xtalbase.server.page_writes`, which refuses
them (403) unless the server allows writes and the request carries the token.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.server import page_data, page_writes
from xtalbase.server.app import database, settings_of

router = APIRouter()

TEMPLATES = Path(__file__).parent / "templates"

#: Largest form body accepted (a corrected record is at most the 64 KiB ingest keeps, plus the form's overhead).
MAX_FORM_BYTES = 1 << 20

#: Largest row id: the id columns are 32-bit INTEGER on PostgreSQL, so a larger number names no row (and would make
#: the database, or SQLite's driver, fail instead of finding nothing).
MAX_ID = 2**31 - 1

FORM_TYPE = "application/x-www-form-urlencoded"


@functools.cache
def environment() -> Any:
    """The Jinja2 environment of the page templates (autoescape on for every template)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.globals["zip"] = zip
    env.filters["when"] = _when
    return env


def _when(t: Optional[datetime]) -> str:
    """A stored timestamp in UTC. PostgreSQL hands timestamps back in its session time zone (the server's local
    one unless configured), SQLite as stored (UTC, naive): without converting, one page would show two clocks."""
    if t is None:
        return ""
    return f"{(t.astimezone(timezone.utc) if t.tzinfo is not None else t):%Y-%m-%d %H:%M:%S} UTC"


def _num(value: Any, digits: int = 4) -> str:
    """A number for display: ``digits`` significant digits, ``–`` for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    return str(value)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` plus the server's write mode."""
    settings = settings_of(request)
    html = environment().get_template(template).render(writes=settings.allow_writes, request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """A page that says what went wrong (never a stack trace)."""
    return render(request, "error.html", status=status, title=title, message=message)


class FormTooLarge(XtalbaseError):
    """A form body over :data:`MAX_FORM_BYTES` (answered 413)."""


def row_id(value: str) -> Optional[int]:
    """``value`` (a path segment) as a row id, or ``None`` when it is no whole number from 1 to :data:`MAX_ID`."""
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_ID)):
        return None
    n = int(value)
    return n if 1 <= n <= MAX_ID else None


def whole_number(value: str, name: str) -> int:
    """A query parameter as an integer, clamped to ±10**18 (no page count reaches it, and ``int()`` of thousands of
    digits is refused); :class:`XtalbaseError` naming the parameter for anything else."""
    text = value.strip()
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise XtalbaseError(f"{name} must be a whole number, got {value!r}")
    n = int(digits) if len(digits) <= 18 else 10**18
    return -n if text.startswith("-") else n


# --------------------------------------------------------------------------- reading pages


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request, filter: str = "", sort: str = "", page: str = "1", size: str = "") -> HTMLResponse:
    """The search page: a filter box with examples and one page of matching structures."""
    try:
        number = whole_number(page or "1", "page")
        per_page = page_data.page_size(whole_number(size, "size") if size.strip() else None)
    except XtalbaseError as exc:
        return error_page(request, 400, "Bad request", str(exc))
    result = page_data.search(database(request), filter, sort, number, per_page)

    def link(n: int) -> str:
        return "/?" + urlencode({"filter": result.filter, "sort": result.sort, "page": n, "size": result.size})

    return render(request, "search.html", status=400 if result.error else 200, result=result, examples=page_data.EXAMPLE_FILTERS,
                  sizes=page_data.PAGE_SIZES, sort_fields=page_data.SORT_FIELDS,
                  prev_link=link(result.page - 1) if result.page > 1 else None,
                  next_link=link(result.page + 1) if result.page < result.pages else None,
                  first_link=link(1), last_link=link(result.pages))


def _found(request: Request, template: str, missing: str, read: Any, key: str) -> HTMLResponse:
    """``template`` over what ``read(db, id)`` returns, or a 404 page titled ``missing`` when ``key`` is no id or
    ``read`` raises NotFound."""
    number = row_id(key)
    try:
        if number is None:
            raise NotFound(f"{key!r} is not an id (a whole number from 1 to {MAX_ID})")
        context = read(database(request), number)
    except NotFound as exc:
        return error_page(request, 404, missing, str(exc))
    return render(request, template, **context)


@router.get("/structures/{structure_id}", response_class=HTMLResponse, include_in_schema=False)
def structure_page(request: Request, structure_id: str) -> HTMLResponse:
    """One structure: lattice, symmetry, sites, sources, calculations, XRD pattern, predictions, notes."""
    return _found(request, "structure.html", "Structure not found", page_data.structure_page, structure_id)


@router.get("/quarantine", response_class=HTMLResponse, include_in_schema=False)
def quarantine_page(request: Request, reason: str = "") -> HTMLResponse:
    """Quarantined records: counts by reason and by run, and the newest records."""
    return render(request, "quarantine.html", **page_data.quarantine_page(database(request), reason or None))


@router.get("/quarantine/{quarantine_id}", response_class=HTMLResponse, include_in_schema=False)
def quarantine_record_page(request: Request, quarantine_id: str) -> HTMLResponse:
    """One quarantined record: reason, message, where it came from, its raw text (and the re-ingest form)."""
    return _found(request, "quarantine_record.html", "Quarantine record not found", page_data.quarantine_detail, quarantine_id)


# --------------------------------------------------------------------------- writing actions


async def _form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (the last value of each field); :class:`XtalbaseError` for another body."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise XtalbaseError(f"send the form as {FORM_TYPE}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge(f"the form is larger than {MAX_FORM_BYTES} bytes")
    # read chunk by chunk and stop at the limit: a chunked body has no Content-Length to refuse it by
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge(f"the form is larger than {MAX_FORM_BYTES} bytes")
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True).items()}


async def _authorized_form(request: Request) -> dict[str, str] | HTMLResponse:
    """The form of a write request, or the 403/400 page that refuses it."""
    settings = settings_of(request)
    if not settings.allow_writes:  # refused before reading the body: a read-only server takes no uploads
        return error_page(request, 403, "Writes are disabled", "this server is read-only: write actions need "
                          "`xtalbase serve --allow-writes --token ...`")
    try:
        form = await _form(request)
    except FormTooLarge as exc:
        return error_page(request, 413, "Form too large", str(exc))
    except XtalbaseError as exc:
        return error_page(request, 400, "Bad request", str(exc))
    try:
        page_writes.check_write(settings, form, request.headers)
    except page_writes.WriteRefused as exc:
        return error_page(request, 403, "Write refused", str(exc))
    return form


async def _write(request: Request, raw_id: str, noun: str, failed: str, action: Any, field: str) -> Any:
    """``(action(db, id, form[field]), id)`` for a write on the row ``raw_id``, or the page that refuses or reports it."""
    form = await _authorized_form(request)
    if isinstance(form, HTMLResponse):
        return form
    number, missing = row_id(raw_id), f"{noun.capitalize()} not found"
    if number is None:
        return error_page(request, 404, missing, f"{raw_id!r} is not a {noun} id")
    try:
        return await run_in_threadpool(action, database(request), number, form.get(field, "")), number
    except NotFound as exc:
        return error_page(request, 404, missing, str(exc))
    except XtalbaseError as exc:
        return error_page(request, 400, failed, str(exc))


@router.post("/structures/{structure_id}/notes", include_in_schema=False)
async def add_note(request: Request, structure_id: str) -> Any:
    """Add a note to a structure (needs writes and the token), then show the structure page."""
    done = await _write(request, structure_id, "structure", "Note not added", page_writes.add_note, "text")
    if isinstance(done, HTMLResponse):
        return done
    return RedirectResponse(f"/structures/{done[1]}#notes", status_code=303)


@router.post("/quarantine/{quarantine_id}/reingest", response_class=HTMLResponse, include_in_schema=False)
async def reingest(request: Request, quarantine_id: str) -> HTMLResponse:
    """Ingest a corrected version of a quarantined record (needs writes and the token) and show what happened."""
    done = await _write(request, quarantine_id, "quarantine record", "Re-ingest failed", page_writes.reingest, "record")
    if isinstance(done, HTMLResponse):
        return done
    return render(request, "reingest_result.html", result=done[0])
