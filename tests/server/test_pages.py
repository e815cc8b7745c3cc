"""The curator pages over a live server (both backends): stored values shown, filter errors with their position,
paging, quarantine counts and raw records, predictions with provenance, and the write actions' token rule."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from markupsafe import escape

from xtalbase.errors import XtalbaseError
from xtalbase.platform.repositories.notes import notes_of_structure

TOKEN = "test-token"
LINK = re.compile(r'class="structure-link" href="/structures/(\d+)"')


def get(server, path: str, **params) -> httpx.Response:  # noqa: ANN001
    return httpx.get(server.url + path, params=params, timeout=60)


def post(server, path: str, data: dict[str, str], **kwargs) -> httpx.Response:  # noqa: ANN001
    return httpx.post(server.url + path, data=data, timeout=120, **kwargs)


def element(page: str, element_id: str) -> str:
    """The unescaped text inside the element with ``id`` (tags stripped, whitespace collapsed)."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(td|span|p|pre|div|table)>', page, re.S)
    assert found, f"no element #{element_id} in the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def table_rows(page: str, table_id: str) -> list[list[str]]:
    """The cells of each body row of the table with ``id`` (unescaped text)."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert found, f"no table #{table_id}"
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        if cells:
            rows.append([" ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells])
    return rows


def notes(db, structure_id: int) -> list[str]:  # noqa: ANN001
    with db.session() as s:
        return [n.text for n in notes_of_structure(s, structure_id)]


# --------------------------------------------------------------------------- search


def test_search_pages_through_the_matching_structures(live):
    flt = "nelements >= 3"
    ids = live.db.query(flt).ids()
    assert len(ids) > 20
    first = get(live, "/", filter=flt, size=10)
    assert first.status_code == 200
    assert [int(i) for i in LINK.findall(first.text)] == ids[:10]
    assert f"{len(ids)} structures match" in element(first.text, "result-count")
    pages = -(-len(ids) // 10)
    second = get(live, "/", filter=flt, size=10, page=2)
    assert [int(i) for i in LINK.findall(second.text)] == ids[10:20]
    last = get(live, "/", filter=flt, size=10, page=pages + 5)  # past the end: the last page
    assert [int(i) for i in LINK.findall(last.text)] == ids[(pages - 1) * 10:]
    assert 'id="next-page"' not in last.text and 'id="prev-page"' in last.text
    # sorted by density, descending: the order db.query gives
    dense = get(live, "/", filter=flt, size=25, sort="-_xtalbase_density")
    assert [int(i) for i in LINK.findall(dense.text)] == live.db.query(flt, sort="-_xtalbase_density").ids()[:25]


def test_search_rows_show_the_stored_columns(live):
    frame = live.db.query("nsites <= 5", limit=1).frame()
    row = frame.iloc[0]
    page = get(live, "/", filter=f"id = \"{row['id']}\"").text
    cells = table_rows(page, "results")
    assert len(cells) == 1
    sid, formula, spacegroup, system, nsites = cells[0][:5]
    assert (int(sid), formula, int(nsites)) == (row["id"], row["formula_reduced"], row["nsites"])
    assert spacegroup == f"{row['spacegroup_symbol']} ({row['spacegroup_number']})" and system == row["crystal_system"]
    assert cells[0][6].startswith(row["source_database"])


def test_search_rows_show_missing_values_as_missing(live):
    # pandas keeps a missing text value as NaN, which is truthy: rows without an external id showed "extxyz:nan"
    frame = live.db.query().frame()
    assert len(frame) <= 100 and frame["source_external_id"].isna().any() and frame["source_external_id"].notna().any()
    cells = {int(r[0]): r for r in table_rows(get(live, "/", size=100).text, "results")}
    assert set(cells) == set(frame["id"])
    for rec in frame.to_dict("records"):
        external = rec["source_external_id"] if isinstance(rec["source_external_id"], str) else None
        assert cells[rec["id"]][6].split(" (+")[0] == rec["source_database"] + (f":{external}" if external else "")
        assert "nan" not in (cells[rec["id"]][2], cells[rec["id"]][3], cells[rec["id"]][5])


@pytest.mark.parametrize(("bad", "culprit"), [('nsites > 3 AND elements HAS "Si', '"Si'), ("nsites > 3 AND foo = 1", "foo"),
                                              ("nsites >", None)])
def test_a_bad_filter_shows_the_message_and_a_caret_at_its_position(live, bad, culprit):
    response = get(live, "/", filter=bad)
    assert response.status_code == 400
    position = int(re.search(r"position (\d+)", element(response.text, "filter-error")).group(1))
    # the position is the culprit's first character (1-based), or just past the end for a filter that ends too early
    assert position == (bad.index(culprit) + 1 if culprit else len(bad) + 1)
    caret = re.search(r'<span class="caret">( *)\^</span>', response.text)
    assert caret and len(caret.group(1)) == position - 1
    assert 'id="results"' not in response.text


@pytest.mark.parametrize(("bad", "line", "pad"), [
    ("   nsites > 3 AND foo = 1", "   nsites > 3 AND foo = 1", " " * 18),  # pasted with leading spaces
    ("nsites > 3\tAND foo = 1", "nsites > 3\tAND foo = 1", " " * 10 + "\t    "),  # a tab is wider than a space
    ("nsites > 3\nAND foo = 1", "AND foo = 1", " " * 4),  # a pasted second line: the caret under that line
])
def test_the_caret_stands_under_the_culprit_as_typed(live, bad, line, pad):
    response = get(live, "/", filter=bad)
    assert response.status_code == 400
    assert int(re.search(r"position (\d+)", element(response.text, "filter-error")).group(1)) == bad.index("foo") + 1
    shown = re.search(r'<pre id="filter-caret">(.*?)\n<span class="caret">(.*?)\^</span>', response.text, re.S)
    assert shown and (html.unescape(shown.group(1)), shown.group(2)) == (line, pad)
    assert html.escape(bad, quote=True) in response.text  # the box keeps what was typed


def test_every_offered_example_and_sort_works(live):
    from xtalbase.server.page_data import EXAMPLE_FILTERS

    page = get(live, "/").text
    examples = [html.unescape(e) for e in re.findall(r'class="example" data-filter="([^"]*)"', page)]
    sorts = [html.unescape(v) for v in re.findall(r'<option value="([^"]*)"', re.search(r'<select id="sort".*?</select>', page, re.S).group(0))]
    assert examples == list(EXAMPLE_FILTERS) and "-_xtalbase_density" in sorts
    for flt in examples:  # a click fills the box; the search must then answer, not show an error
        response = get(live, "/", filter=flt)
        assert response.status_code == 200 and element(response.text, "result-count").endswith(".")
        assert int(element(response.text, "result-count").split()[0]) == live.db.query(flt).count()
    for sort in sorts:
        assert [int(i) for i in LINK.findall(get(live, "/", sort=sort, size=10).text)] == live.db.query(sort=sort or None).ids()[:10]


def test_a_bad_sort_field_is_an_error_not_a_crash(live):
    response = get(live, "/", filter="nsites > 1", sort="no_such_field")
    assert response.status_code == 400 and "no_such_field" in element(response.text, "filter-error")


def test_odd_page_numbers_and_sizes_give_a_page_not_a_crash(live):
    ids = live.db.query().ids()
    pages = -(-len(ids) // 10)
    huge = get(live, "/", size=10, page="9" * 40)  # past the end: the last page
    assert huge.status_code == 200 and [int(i) for i in LINK.findall(huge.text)] == ids[(pages - 1) * 10:]
    below = get(live, "/", size=-5, page=-7)  # the nearest offered size (10), the first page
    assert below.status_code == 200 and [int(i) for i in LINK.findall(below.text)] == ids[:10]
    none = get(live, "/", filter="nsites > 100000", page=3)
    assert none.status_code == 200 and element(none.text, "result-count") == "0 structures match."
    assert 'id="results"' not in none.text
    for params in ({"page": "two"}, {"size": "1e3"}):
        response = get(live, "/", **params)
        assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
        assert f"must be a whole number, got '{next(iter(params.values()))}'" in html.unescape(element(response.text, "error-message"))


def test_a_far_page_reads_only_its_own_rows(served_db, monkeypatch):
    from xtalbase.platform.query import Query
    from xtalbase.server import page_data

    loaded: list[int] = []
    frame = Query.frame

    def spy(self):  # noqa: ANN001, ANN202
        out = frame(self)
        loaded.append(len(out))
        return out

    monkeypatch.setattr(Query, "frame", spy)
    for sort in ("", "-_xtalbase_density"):
        ids = served_db.query("nelements >= 2", sort=sort or None).ids()
        pages = -(-len(ids) // 10)
        assert pages >= 3
        for page in (2, pages):
            result = page_data.search(served_db, "nelements >= 2", sort, page, 10)
            assert [r["id"] for r in result.rows] == ids[(page - 1) * 10:page * 10]
    # the page's rows only: not the offset + size rows before it
    assert loaded and max(loaded) <= 10


def test_times_are_shown_in_utc_whatever_the_database_session_zone():
    from datetime import datetime, timedelta, timezone

    from xtalbase.server.pages import environment

    when = environment().filters["when"]
    berlin = datetime(2026, 12, 6, 14, 30, 5, tzinfo=timezone(timedelta(hours=1)))  # PostgreSQL in a local zone
    assert when(berlin) == when(datetime(2026, 12, 6, 13, 30, 5)) == "2026-12-06 13:30:05 UTC"  # SQLite: naive UTC
    assert when(None) == ""


# --------------------------------------------------------------------------- structure page


def test_structure_page_shows_the_stored_structure(live):
    from xtalbase.platform.repositories.structures import sources_of
    from xtalbase.xrd.plot import load_pattern

    sid = live.db.query("_xtalbase_energy IS KNOWN").ids()[0]  # one with a calculation
    row = live.db.query(f'id = "{sid}"').frame().iloc[0]
    page = get(live, f"/structures/{sid}").text
    assert element(page, "formula") == row["formula_reduced"]
    assert element(page, "spacegroup") == f"{row['spacegroup_symbol']} ({row['spacegroup_number']})"
    assert element(page, "crystal-system") == row["crystal_system"]
    assert float(element(page, "volume")) == pytest.approx(row["volume"], rel=1e-5)
    lattice = [float(v) for v in table_rows(page, "lattice")[0]]
    assert lattice == pytest.approx([row[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")], rel=1e-5)
    assert len(table_rows(page, "sites")) == row["nsites"]
    with live.db.session() as s:
        sources = sources_of(s, sid)
        assert sources and all(html.escape(src.file_path, quote=False) in page for src in sources)
    calcs = table_rows(page, "calculations")
    assert len(calcs) >= 1 and "eV" in calcs[0][1]
    # the pattern: one stick per stored peak
    pattern = load_pattern(live.db, sid)
    assert 'id="xrd-plot"' in page
    assert page.count('<line class="peak"') == len(pattern["two_theta"]) > 0


def test_structure_page_shows_source_properties(live):
    sid = live.db.query('_xtalbase_source = "perov5"').ids()[0]
    from xtalbase.platform.repositories.structures import sources_of

    with live.db.session() as s:
        props = {p.name: p.value_float if p.value_float is not None else p.value_text for src in sources_of(s, sid) for p in src.properties}
    assert props
    page = get(live, f"/structures/{sid}").text
    cells = [c for table in re.findall(r'<table class="properties">(.*?)</table>', page, re.S)
             for c in re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", table)]
    shown = {html.unescape(k): html.unescape(v) for k, v in cells}
    assert set(shown) == set(props)
    for name, value in props.items():
        assert (float(shown[name]) == pytest.approx(value, rel=1e-5)) if isinstance(value, float) else shown[name] == value


def test_unknown_structure_is_a_404_page(live):
    response = get(live, "/structures/987654")
    assert response.status_code == 404 and "no structure with id 987654" in response.text


@pytest.mark.parametrize("key", ["2147483648", "9" * 30, "abc", "0", "-3", "1.5"])
@pytest.mark.parametrize("path", ["/structures/{}", "/quarantine/{}"])
def test_an_id_that_names_no_row_is_a_404_page(live, path, key):
    # past the 32-bit id columns, PostgreSQL and SQLite's driver fail rather than find nothing: that was a 500
    response = get(live, path.format(key))
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    assert "not found" in response.text


@pytest.fixture(scope="module")
def prediction(served_db):  # noqa: ANN001
    """A crystal-system model trained on a split of the served structures and its prediction for one structure."""
    from xtalbase.ml.predict import predict_structures
    from xtalbase.ml.training import train_xrd
    from xtalbase.xrd.builder import compute_missing

    compute_missing(served_db)  # structures a write test added since need their pattern too
    served_db.splits.create("pages", strategy="random", seed=0)
    model = train_xrd(served_db, target="crystal_system", split="pages", algorithm="extratrees", params={"n_estimators": 5})
    sid = served_db.query().ids()[0]
    report = predict_structures(served_db, model.model_id, [sid])
    return model, sid, report.prediction_ids[0]


def test_structure_page_shows_predictions_with_their_provenance(live, prediction):
    from xtalbase.ml.provenance import prediction_chain

    model, sid, pid = prediction
    page = get(live, f"/structures/{sid}").text
    with live.db.session() as s:
        chain = prediction_chain(s, pid)
    assert f"prediction {pid}" in page and f"crystal_system = {chain['prediction']['label']}" in page
    steps = re.findall(r"<li><b>(.*?)</b>(.*?)</li>", page)
    kinds = [k for k, _ in steps]
    # prediction -> model -> training run -> split -> training data -> ingest run -> source files, in that order
    order = ["predict run", "model", "training run", "split", "training data", "ingest run", "source files"]
    assert [k for k in kinds if k in order] == sorted((k for k in kinds if k in order), key=order.index)
    assert set(order) <= set(kinds)
    text = dict((k, html.unescape(v)) for k, v in steps if k != "ingest run")
    assert text["model"].strip().startswith(f"{model.model_id}") and "extratrees" in text["model"]
    assert f"train run {chain['model_chain']['train_run']['id']}" in text["training run"]
    assert text["split"].strip().startswith("pages") and "matches the hash recorded" in text["training data"]


def test_a_models_chain_is_read_once_per_structure_page(served_db, prediction, monkeypatch):
    import xtalbase.ml.provenance as provenance
    from xtalbase.ml.predict import predict_structures
    from xtalbase.server import page_data

    model, sid, pid = prediction
    more = [predict_structures(served_db, model.model_id, [sid]).prediction_ids[0] for _ in range(2)]
    calls: list[int] = []
    chain = provenance.model_chain

    def spy(session, model_id):  # noqa: ANN001, ANN202
        calls.append(model_id)
        return chain(session, model_id)

    monkeypatch.setattr(provenance, "model_chain", spy)
    shown = page_data.structure_page(served_db, sid)["predictions"]
    # re-hashing the training set and reading its sources once per prediction made a page cost N model chains
    assert calls == [model.model_id]
    assert {p["id"] for p in shown} >= {pid, *more}
    ours = [p for p in shown if p["id"] in {pid, *more}]
    with served_db.session() as s:
        full = {p["id"]: page_data._model_steps(provenance.prediction_chain(s, p["id"])["model_chain"]) for p in ours}
    for p in ours:
        assert p["steps"][0]["what"] == "predict run" and p["steps"][1:] == full[p["id"]]
    assert len({p["steps"][0]["text"] for p in ours}) == len(ours)  # each its own predict run


# --------------------------------------------------------------------------- quarantine


def test_the_quarantine_list_does_not_read_the_raw_records(served_db):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from xtalbase.server import page_data

    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # noqa: ANN001, ANN202
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        listed = page_data.quarantine_page(served_db, None)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert listed["rows"] and any("quarantine" in s for s in statements)
    # up to 500 rows of up to 64 KiB each that the list never shows
    assert not [s for s in statements if "raw_text" in s]


def test_quarantine_counts_equal_the_database(live):
    frame = live.db.quarantine()
    assert len(frame) > 0
    page = get(live, "/quarantine").text
    assert {r: int(n) for r, n in table_rows(page, "by-reason")} == frame["reason"].value_counts().to_dict()
    assert {int(r): int(n) for r, n in table_rows(page, "by-run")} == frame["run_id"].value_counts().to_dict()
    assert element(page, "quarantine-total").startswith(f"{len(frame)} quarantined")
    listed = table_rows(page, "quarantine-list")
    assert [(int(r[0]), r[1]) for r in listed] == list(zip(frame["id"], frame["reason"]))
    one = frame["reason"].iloc[0]
    only = table_rows(get(live, "/quarantine", reason=one).text, "quarantine-list")
    assert {r[1] for r in only} == {one} and len(only) == (frame["reason"] == one).sum()


def test_a_quarantined_record_shows_its_reason_message_and_raw_text(live):
    frame = live.db.quarantine()
    kept = frame[frame["raw_text"].notna()]
    assert len(kept) > 0
    for q in kept.head(3).itertuples():
        page = get(live, f"/quarantine/{q.id}").text
        assert element(page, "reason") == q.reason
        assert element(page, "message") == " ".join(q.message.split())
        raw = re.search(r'<pre id="raw-text">(.*?)</pre>', page, re.S).group(1)
        assert html.unescape(raw) == q.raw_text
    assert get(live, "/quarantine/987654").status_code == 404


# --------------------------------------------------------------------------- writes


def test_a_read_only_server_refuses_writes_and_shows_no_forms(live):
    sid = live.db.query().ids()[0]
    qid = int(live.db.quarantine()["id"].iloc[0])
    before = notes(live.db, sid)
    page = get(live, f"/structures/{sid}").text
    assert 'id="note-form"' not in page and 'id="reingest-form"' not in get(live, f"/quarantine/{qid}").text
    for path, data in ((f"/structures/{sid}/notes", {"text": "nope", "token": TOKEN}),
                       (f"/quarantine/{qid}/reingest", {"record": "data_x", "token": TOKEN})):
        response = post(live, path, data)
        assert response.status_code == 403 and "read-only" in response.text
    assert notes(live.db, sid) == before


@pytest.mark.parametrize("how", ["no token", "wrong token", "wrong header", "cross-site form"])
def test_writes_need_the_right_token(live_writable, how):
    sid = live_writable.db.query().ids()[1]
    before = notes(live_writable.db, sid)
    data, headers = {"text": f"should not be stored ({how})"}, {}
    if how == "wrong token":
        data["token"] = "test-token-but-wrong"
    elif how == "wrong header":
        headers["X-Xtalbase-Token"] = "nope"
    elif how == "cross-site form":  # a page elsewhere can post the form, but cannot know the token
        headers["Origin"] = "https://evil.example"
    response = post(live_writable, f"/structures/{sid}/notes", data, headers=headers)
    assert response.status_code == 403 and "token" in response.text
    assert notes(live_writable.db, sid) == before


def test_a_chunked_form_is_cut_off_at_the_limit():
    import asyncio

    from starlette.requests import Request

    from xtalbase.server import pages

    chunk, sent = b"text=" + b"a" * (64 * 1024), 0
    total = 4 * pages.MAX_FORM_BYTES // len(chunk)

    async def receive() -> dict:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < total}

    # no Content-Length (chunked transfer): the size is known only while reading
    request = Request({"type": "http", "method": "POST", "headers": [(b"content-type", pages.FORM_TYPE.encode())]}, receive)
    with pytest.raises(XtalbaseError, match="larger than"):
        asyncio.run(pages._form(request))
    assert sent <= pages.MAX_FORM_BYTES // len(chunk) + 1 < total  # stopped at the limit, not after reading it all


def test_an_oversized_form_is_refused_with_413(live_writable):
    sid = live_writable.db.query().ids()[3]
    before = notes(live_writable.db, sid)

    def body():  # a generator: httpx sends it chunked, without Content-Length
        yield f"token={TOKEN}&text=".encode()
        for _ in range(40):
            yield b"a" * 32768

    response = httpx.post(f"{live_writable.url}/structures/{sid}/notes", content=body(), timeout=60,
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and "larger than" in response.text
    assert notes(live_writable.db, sid) == before


def test_writes_to_an_id_that_names_no_row_are_404_pages(live_writable):
    for path, data in (("/structures/{}/notes", {"text": "x", "token": TOKEN}), ("/quarantine/{}/reingest", {"record": "x", "token": TOKEN})):
        for key in ("9" * 30, "abc"):
            response = post(live_writable, path.format(key), data)
            assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")


def test_a_note_is_stored_and_shown_escaped(live_writable):
    sid = live_writable.db.query().ids()[2]
    page = get(live_writable, f"/structures/{sid}").text
    assert 'id="note-form"' in page
    text = '<script>alert("x")</script> checked the cell & the occupancies'
    response = post(live_writable, f"/structures/{sid}/notes", {"text": text, "token": TOKEN}, follow_redirects=True)
    assert response.status_code == 200 and str(response.url).endswith(f"/structures/{sid}#notes")
    assert notes(live_writable.db, sid)[-1] == text
    assert str(escape(text)) in response.text and "<script>" not in response.text
    by_header = post(live_writable, f"/structures/{sid}/notes", {"text": "second note"}, headers={"X-Xtalbase-Token": TOKEN})
    assert by_header.status_code == 303 and notes(live_writable.db, sid)[-2:] == [text, "second note"]
    empty = post(live_writable, f"/structures/{sid}/notes", {"text": "   ", "token": TOKEN})
    assert empty.status_code == 400 and "needs some text" in empty.text
    # PostgreSQL text cannot hold NUL: that was a 500 there (and stored on SQLite); now refused on both
    nul = post(live_writable, f"/structures/{sid}/notes", {"text": "pasted\x00bytes", "token": TOKEN})
    assert nul.status_code == 400 and "NUL" in nul.text and notes(live_writable.db, sid)[-2:] == [text, "second note"]


def test_reingest_of_a_corrected_record_inserts_the_structure(live_writable):
    db = live_writable.db
    frame = db.quarantine("unknown_element")
    q = frame.iloc[-1]
    assert "Xx" in q["raw_text"]
    corrected = q["raw_text"].replace("Xx", "Na")  # the record's only fault: 'Xx' is no element
    before = db.query().count()
    page = get(live_writable, f"/quarantine/{q['id']}").text
    assert 'id="reingest-form"' in page
    response = post(live_writable, f"/quarantine/{q['id']}/reingest", {"record": corrected, "token": TOKEN})
    assert response.status_code == 200, response.text
    assert element(response.text, "reingest-summary").startswith("1 read, 1 inserted")
    (new,) = [int(i) for i in LINK.findall(response.text)]
    assert db.query().count() == before + 1
    assert db.query(f'id = "{new}"').frame()["formula_reduced"].iloc[0] == "NaCl"
    with db.session() as s:
        from xtalbase.platform.repositories.structures import sources_of

        assert [src.file_path.rsplit("/", 1)[-1] for src in sources_of(s, new)] == ["unknown_element.cif"]
    assert f"quarantine record {q['id']}" in notes(db, new)[0]


def test_reingest_of_a_still_broken_record_quarantines_it_again(live_writable):
    db = live_writable.db
    q = db.quarantine("parse_error").iloc[-1]
    before = len(db.quarantine("parse_error"))
    response = post(live_writable, f"/quarantine/{q['id']}/reingest", {"record": q["raw_text"], "token": TOKEN})
    assert response.status_code == 200
    assert "0 inserted" in element(response.text, "reingest-summary")
    assert [r[1] for r in table_rows(response.text, "quarantined-again")] == ["parse_error"]
    assert len(db.quarantine("parse_error")) == before + 1


def test_reingest_keeps_the_original_runs_options_and_folder_names(live_writable, tmp_path):
    from tests.server.conftest import BAD_RECORDS
    from xtalbase.platform.repositories.structures import sources_of

    db = live_writable.db
    folder = tmp_path / "perov5_curated" / "batch1"  # the folder name gives the source database at ingest
    folder.mkdir(parents=True)
    bad = (BAD_RECORDS / "unknown_element.cif").read_text().replace("hand-made", "a second hand-made")
    (folder / "kcl.cif").write_text(bad)
    first = db.ingest([tmp_path / "perov5_curated"], licence="CC-BY-4.0 (curated)")
    assert first.quarantined == 1
    q = db.quarantine("unknown_element").iloc[0]
    assert q["file_path"].endswith("kcl.cif")
    response = post(live_writable, f"/quarantine/{q['id']}/reingest", {"record": bad.replace("Xx", "K"), "token": TOKEN})
    assert response.status_code == 200, response.text
    (new,) = [int(i) for i in LINK.findall(response.text)]
    with db.session() as s:
        (src,) = sources_of(s, new)
        # as a first ingest of the corrected file would have stored it: not 'local' and no licence
        assert (src.database, src.licence, src.file_path.rsplit("/", 1)[-1]) == ("perov5", "CC-BY-4.0 (curated)", "kcl.cif")


@pytest.mark.parametrize(("file_path", "named", "folders"), [
    ("/data/perov5/a/x.cif", ["/data/perov5"], ["perov5", "a"]),
    ("/data/perov5/a/x.cif", ["/data", "/data/perov5/a"], ["a"]),  # the longest given path that holds the file
    ("/data/x.cif", ["/data/x.cif"], []),                          # a file given by name: its name alone
    ("/data/../../etc/x.cif", ["/data"], ["data", "etc"]),         # '..' dropped: nothing lands outside the folder
    ("rel/mp_cgcnn/x.cif", ["rel"], ["rel", "mp_cgcnn"]),
    ("/elsewhere/x.cif", ["/data"], []),
])
def test_the_folders_a_reingested_record_is_written_below(file_path, named, folders):
    from xtalbase.server.page_writes import original_folders

    assert original_folders(file_path, named) == folders


def test_a_reingested_record_keeps_the_original_file_name():
    from xtalbase.server.page_writes import reingest_file_name

    # the stored raw text is decompressed, so a compression suffix would send the reader the wrong bytes
    assert reingest_file_name("/data/vasp/run1/vasprun.xml.gz", 3) == "vasprun.xml"
    assert reingest_file_name("C:\\cifs\\NaCl.cif", 4) == "NaCl.cif"
    assert reingest_file_name("", 5) == "quarantine-5.txt" and reingest_file_name("/x/.hidden", 6) == "quarantine-6.txt"
