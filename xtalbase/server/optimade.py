"""OPTIMADE v1 endpoints: ``/v1/info``, ``/v1/info/structures``, ``/v1/structures``, ``/v1/structures/{id}``,
``/v1/links`` and the unversioned ``/versions``.

Filters and sorting go through the lazy :class:`~xtalbase.platform.query.Query` (the filter → SQLAlchemy translation
of ``xtalbase query``); a page's structures, elements, peaks and predictions are loaded in one batch each
(:mod:`xtalbase.platform.repositories.optimade`) and mapped to resources by :mod:`.optimade_entries`. Every answer
under ``/v1`` is JSON:API with OPTIMADE's ``meta``; every error an OPTIMADE error object with its HTTP status
(400 bad filter or parameter, 403 page too large, 404 unknown id or endpoint, 405 a method other than GET,
501 a query xtalbase cannot answer, 553 an unsupported major version). The API only reads.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from xtalbase.server.app import database, settings_of
from xtalbase.server.optimade_entries import BY_NAME, DEFAULT_FIELDS, PEAKS, PREDICTIONS, PROPERTIES, Page, resources

router = APIRouter()
log = logging.getLogger(__name__)

API_VERSION = "1.2.0"
SCHEMA_URL = "https://schemas.optimade.org/openapi/v1.2/optimade.json"
#: Longest a listing may spend counting its matches (``meta.data_returned``); beyond it the count is left out
#: (OPTIMADE makes it optional) and the page still comes, with ``more_data_available`` and ``links.next``.
COUNT_BUDGET_S = 0.06
#: How long the count of stored structures (``meta.data_available``) is reused while no structure is added.
TOTAL_TTL_S = 10.0
DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 1000
#: OPTIMADE's standard query parameters xtalbase reads; the other standard ones are answered 501.
SUPPORTED_PARAMS = {"filter", "response_format", "email_address", "response_fields", "sort", "page_limit",
                    "page_offset", "include", "api_hint"}
UNSUPPORTED_PARAMS = {"page_number", "page_cursor", "page_above", "page_below"}
ENTRY_ENDPOINTS = ("structures",)
V1_ENDPOINTS = {"info", "info/structures", "links", "structures"}

_STATUS_TITLES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                  500: "Internal Server Error", 501: "Not Implemented", 553: "Version Not Supported"}


class ApiError(Exception):
    """An OPTIMADE error answer: HTTP status, detail, and the query parameter at fault."""

    def __init__(self, status: int, detail: str, parameter: Optional[str] = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.parameter = status, detail, parameter


# --------------------------------------------------------------------------- the envelope


def base_url(request: Request) -> str:
    """The address clients reach the server at, without a trailing slash."""
    configured = settings_of(request).base_url
    return (configured or str(request.base_url)).rstrip("/")


@functools.lru_cache(maxsize=1)
def _implementation() -> dict[str, Any]:
    from xtalbase.platform.provenance import package_version

    return {"name": "xtalbase", "version": package_version(),
            "source_url": None, "maintainer": None}


PROVIDER = {"name": "xtalbase", "description": "A database-backed materials data platform: crystal structures, "
            "computed XRD patterns and model predictions.", "prefix": "xtalbase", "homepage": None}


def meta(request: Request, *, more: bool = False, returned: Optional[int] = None, available: Optional[int] = None,
         warnings: Optional[list[str]] = None) -> dict[str, Any]:
    """OPTIMADE's top-level ``meta`` for ``request``."""
    # OPTIMADE: the part of the URL after the (versioned) base URL, e.g. "/structures?filter=..."
    path = request.url.path
    versioned = path.find("/v1/")
    query = (path[versioned + 3:] if versioned >= 0 else path) + (f"?{request.url.query}" if request.url.query else "")
    out: dict[str, Any] = {
        "query": {"representation": query},
        "api_version": API_VERSION,
        "more_data_available": more,
        "time_stamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "schema": {"href": SCHEMA_URL},
        "provider": PROVIDER,
        "implementation": _implementation(),
    }
    if returned is not None:
        out["data_returned"] = returned
    if available is not None:
        out["data_available"] = available
    if warnings:
        out["warnings"] = [{"type": "warning", "title": "Warning", "detail": w} for w in warnings]
    return out


def error_response(request: Request, status: int, detail: str, parameter: Optional[str] = None) -> JSONResponse:
    """An OPTIMADE error document with ``status``."""
    error: dict[str, Any] = {"status": str(status), "title": _STATUS_TITLES.get(status, "Error"), "detail": detail}
    if parameter:
        error["source"] = {"parameter": parameter}
    return JSONResponse({"errors": [error], "meta": meta(request)}, status_code=status,
                        headers={"Allow": "GET"} if status == 405 else None)


def answer(build: Callable[..., dict[str, Any]]) -> Callable[..., Response]:
    """Run an endpoint body: a dict becomes the JSON answer, :class:`ApiError` an OPTIMADE error, and a filter that
    xtalbase cannot answer 501 (a bad one 400)."""
    from xtalbase.errors import XtalbaseError
    from xtalbase.platform.optimade_filter import FilterError, UnsupportedFilter

    @functools.wraps(build)
    def endpoint(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return JSONResponse(build(request, *args, **kwargs))
        except ApiError as exc:
            return error_response(request, exc.status, exc.detail, exc.parameter)
        except UnsupportedFilter as exc:
            return error_response(request, 501, str(exc), "filter")
        except FilterError as exc:
            return error_response(request, 400, str(exc), "filter")
        except XtalbaseError as exc:  # the database, not the request (a schema to upgrade, a lost connection)
            log.error("OPTIMADE request %s failed: %s", request.url, exc)
            return error_response(request, 500, f"the server cannot answer: {exc}")
        except Exception:  # an OPTIMADE client reads errors as JSON; the traceback goes to the server log
            log.exception("OPTIMADE request %s failed", request.url)
            return error_response(request, 500, "the server failed to answer this request; see its log")
    return endpoint


# --------------------------------------------------------------------------- parameters


@dataclass
class Params:
    """The query parameters of an entry listing, checked."""

    filter: Optional[str]
    fields: tuple[str, ...]
    sort: Optional[str]
    limit: int
    offset: int
    warnings: list[str]


def _integer(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be a non-negative integer, got {text!r}", name) from None
    if not 0 <= value < 2**63:
        raise ApiError(400, f"{name} must be a non-negative 64-bit integer, got {value}", name)
    return value


def response_fields(text: Optional[str], warnings: list[str]) -> tuple[str, ...]:
    """The attributes to return: the defaults, or those listed (known OPTIMADE fields unknown to xtalbase come as
    null; provider fields (``_x_...``) that xtalbase does not know are left out with a warning; a name without a
    prefix that OPTIMADE does not define is a 400, as OPTIMADE asks for unknown property names)."""
    if text is None:
        return DEFAULT_FIELDS
    standard = _standard_fields()
    out: list[str] = []
    for name in (n.strip() for n in text.split(",")):
        if not name or name in ("id", "type") or name in out:
            continue
        if name in BY_NAME or name in standard:
            out.append(name)
        elif not name.startswith("_"):
            raise ApiError(400, f"response_fields: {name!r} is no field of OPTIMADE structures", "response_fields")
        else:
            warnings.append(f"response_fields: {name!r} is not a field of xtalbase structures; left out")
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _standard_fields() -> frozenset[str]:
    """The attributes OPTIMADE defines for structures (the ``optimade`` package's model)."""
    from optimade.models import StructureResourceAttributes

    return frozenset(StructureResourceAttributes.model_fields)


def listing_params(request: Request) -> Params:
    """Check the parameters of ``/v1/structures``."""
    q = request.query_params
    for name in UNSUPPORTED_PARAMS & set(q):
        raise ApiError(501, f"{name} pagination is not supported; use page_offset and page_limit", name)
    fmt = q.get("response_format", "json")
    if fmt != "json":
        raise ApiError(400, f"response_format {fmt!r} is not supported; the only format is json", "response_format")
    warnings: list[str] = []
    for name in q:
        if name not in SUPPORTED_PARAMS and not name.startswith("_"):
            warnings.append(f"query parameter {name!r} is not an OPTIMADE parameter; ignored")
    limit = _integer(request, "page_limit", DEFAULT_PAGE_LIMIT)
    if limit > MAX_PAGE_LIMIT:
        raise ApiError(403, f"page_limit {limit} is larger than the largest page, {MAX_PAGE_LIMIT}", "page_limit")
    if limit == 0:
        raise ApiError(400, "page_limit must be at least 1", "page_limit")
    sort = q.get("sort") or None
    if sort:
        for key in sort.split(","):
            name = key.strip().lstrip("-")
            prop = BY_NAME.get(name)
            if prop is None or not prop.sortable:
                sortable = ", ".join(p.name for p in PROPERTIES if p.sortable)
                raise ApiError(400, f"cannot sort by {name!r}: the sortable fields are {sortable} (prefix - for "
                               "descending)", "sort")
    return Params(filter=q.get("filter") or None, fields=response_fields(q.get("response_fields"), warnings),
                  sort=sort, limit=limit, offset=_integer(request, "page_offset", 0), warnings=warnings)


# --------------------------------------------------------------------------- loading a page


def load_page(query: Any, ids: list[int], fields: tuple[str, ...]) -> Page:
    """The rows behind ``ids``, loaded in one statement per table through ``query``'s read-only connection."""
    from xtalbase.platform.repositories import optimade as repo
    from xtalbase.platform.repositories.patterns import computed_peaks

    with query.connect() as conn:
        page = Page(ids=ids, rows=repo.structure_rows(conn, ids), amounts=repo.element_amounts(conn, ids))
        if PEAKS in fields:
            recipe = default_recipe(conn)
            page.recipe = recipe
            page.peaks = computed_peaks(conn, ids, recipe[0]) if recipe else {}
        if PREDICTIONS in fields:
            page.predictions = repo.predictions_of(conn, ids)
    return page


def default_recipe(conn: Any) -> Optional[tuple[int, float]]:
    """``(id, wavelength)`` of the default XRD recipe (Cu Kα, 2θ 0-90°), ``None`` when it is not stored.

    Read through the page's read-only connection: ``db.session()`` would open a writer transaction, which on SQLite
    waits for (and holds) the write lock."""
    from sqlalchemy.orm import Session

    from xtalbase.errors import NotFound
    from xtalbase.xrd.recipe import resolve_recipe

    with Session(bind=conn) as session:
        try:
            recipe = resolve_recipe(session)
        except NotFound:
            return None
        return recipe.id, recipe.wavelength


def _query(request: Request, filter: Optional[str], sort: Optional[str] = None) -> Any:
    from xtalbase.platform.query import Query

    return Query(database(request), filter, sort=sort, optimade=True, distinct_cache=request.app.state.distinct_cache)


def _foreign_warnings(query: Any) -> list[str]:
    return [f"{name} is a field of another provider: it is unknown here, so comparisons on it are false"
            for name in query.foreign]


# --------------------------------------------------------------------------- endpoints


@router.get("/versions", include_in_schema=False)
def versions() -> Response:
    """The major versions served, as CSV (OPTIMADE: on the unversioned base URL only)."""
    return Response("version\n1\n", media_type="text/csv; header=present")


@router.get("/v1/info")
@answer
def info(request: Request) -> dict[str, Any]:
    """The base info: API version, formats, entry types and endpoints."""
    url = base_url(request)
    return {"data": {"type": "info", "id": "/", "attributes": {
        "api_version": API_VERSION,
        "available_api_versions": [{"url": f"{url}/v1/", "version": API_VERSION}],
        "formats": ["json"],
        "entry_types_by_format": {"json": list(ENTRY_ENDPOINTS)},
        "available_endpoints": ["info", "links", *ENTRY_ENDPOINTS],
        "is_index": False}},
        "meta": meta(request)}


@router.get("/v1/info/structures")
@answer
def info_structures(request: Request) -> dict[str, Any]:
    """The properties of structure resources: type, description, unit, sortable."""
    return {"data": {
        "id": "structures", "type": "info",
        "description": "Crystal structures stored in xtalbase (3D-periodic cells), with their space group, "
                       "computed XRD peaks and model predictions as _xtalbase_ fields.",
        "properties": {p.name: p.info() for p in PROPERTIES},
        "formats": ["json"],
        "output_fields_by_format": {"json": [p.name for p in PROPERTIES]}},
        "meta": meta(request)}


@router.get("/v1/links")
@answer
def links(request: Request) -> dict[str, Any]:
    """Links to other OPTIMADE databases: none."""
    return {"data": [], "meta": meta(request, returned=0, available=0)}


@router.get("/v1/structures")
@answer
def structures(request: Request) -> dict[str, Any]:
    """A page of the structures that match ``filter``, in ``sort`` order (default: by id)."""
    params = listing_params(request)
    query = _query(request, params.filter, params.sort)
    # the count runs on its own connection while the page is read: the request waits for the slower, not the sum
    deadline = time.monotonic() + COUNT_BUDGET_S
    counting = None if params.filter is None else _counter().submit(_count_until, query, deadline)
    with query.connect() as conn:
        # one id beyond the page tells whether there is more, whether or not the count is given
        ids = list(conn.execute(query.window(params.offset, params.limit + 1).statement()).scalars())
        available = total_structures(request, conn)
    more, ids = len(ids) > params.limit, ids[:params.limit]
    url = base_url(request)
    page = load_page(query, ids, params.fields)
    warnings = params.warnings + _foreign_warnings(query)
    returned = available if counting is None else _count_result(counting, deadline)
    if returned is None:
        warnings.append(f"data_returned is left out: counting the matches took longer than {COUNT_BUDGET_S * 1000:.0f} ms; "
                        "follow links.next to page through them")
    top_links: dict[str, Any] = {"next": None, "base_url": url}
    if more:
        top_links["next"] = f"{url}/v1/structures?" + _next_query(request, params.offset + len(ids), params.limit)
    return {"data": resources(page, params.fields, url), "links": top_links,
            "meta": meta(request, more=more, returned=returned, available=available, warnings=warnings)}


@functools.lru_cache(maxsize=1)
def _counter() -> Any:
    """The threads that count matches beside the page reads (one per concurrent request, a few at most)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="optimade-count")


def _count_until(query: Any, deadline: float) -> Optional[int]:
    """The query's count if it ends by ``deadline`` (``time.monotonic()``); ``None`` when it started too late."""
    left = deadline - time.monotonic()
    return query.count_within(left) if left > 0 else None


def _count_result(counting: Any, deadline: float) -> Optional[int]:
    """The count, or ``None``: the budget runs from the request, not from when a counting thread got free, so a
    count still queued at the deadline is dropped instead of holding the answer."""
    from concurrent.futures import TimeoutError as FutureTimeout

    try:
        return counting.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        if counting.cancel():  # never started
            return None
        return counting.result()  # running: the database stops it at the deadline


def total_structures(request: Request, conn: Any) -> int:
    """How many structures are stored (``data_available``), counted again when a structure was added or
    :data:`TOTAL_TTL_S` seconds have passed: a full count costs tens of ms at 100,000 structures."""
    from xtalbase.platform.repositories.optimade import count_structures, newest_structure_id

    newest, now = newest_structure_id(conn), time.monotonic()
    cached = getattr(request.app.state, "optimade_total", None)
    if cached is not None and cached[0] == newest and now - cached[2] < TOTAL_TTL_S:
        return cached[1]
    total = count_structures(conn)
    request.app.state.optimade_total = (newest, total, now)
    return total


def _next_query(request: Request, offset: int, limit: int) -> str:
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page_offset", "page_limit")]
    return urlencode([*items, ("page_limit", str(limit)), ("page_offset", str(offset))])


_ID = re.compile(r"[1-9][0-9]*")


@router.get("/v1/structures/{entry_id}")
@answer
def structure(request: Request, entry_id: str) -> dict[str, Any]:
    """One structure by id."""
    params = listing_params(request)
    if params.filter:
        params.warnings.append("filter is ignored on a single entry")
    # ids are ASCII digits without leading zeros (str.isdigit() also takes "²", which int() refuses)
    if not _ID.fullmatch(entry_id) or int(entry_id) >= 2**63:
        raise ApiError(404, f"no structure with id {entry_id!r} (ids are positive integers)")
    page = load_page(_query(request, None), [int(entry_id)], params.fields)
    data = resources(page, params.fields, base_url(request))
    if not data:
        raise ApiError(404, f"no structure with id {entry_id}")
    return {"data": data[0], "links": {"next": None, "base_url": base_url(request)},
            "meta": meta(request, returned=1, available=None, warnings=params.warnings)}


@router.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False)
def not_found(request: Request, rest: str) -> Response:
    """Unknown paths under ``/v1`` are 404 OPTIMADE errors; known ones refuse every method but GET (read-only API)."""
    path = rest.strip("/")
    if path in V1_ENDPOINTS or (path.startswith("structures/") and path.count("/") == 1):
        if request.method == "GET":  # a trailing slash: the canonical path
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"{base_url(request)}/v1/{path}{query}", status_code=307)
        return error_response(request, 405, f"{request.method} is not allowed: the OPTIMADE API is read-only (GET)")
    return error_response(request, 404, f"no OPTIMADE endpoint /v1/{rest}; see /v1/info for the endpoints")


@router.api_route("/v{major:int}/{rest:path}", methods=["GET"], include_in_schema=False)
@router.api_route("/v{major:int}", methods=["GET"], include_in_schema=False)
def other_version(request: Request, major: int, rest: str = "") -> Response:
    """Major versions other than 1: 553 Version Not Supported."""
    if major == 1:
        return error_response(request, 404, "no OPTIMADE endpoint /v1; see /v1/info for the endpoints")
    return error_response(request, 553, f"OPTIMADE version {major} is not supported; the supported version is 1 "
                          "(see /versions)")
