"""The curator pages over a live server (both backends): stored values shown, filter errors with their position,
paging, quarantine counts and raw records, predictions with provenance, and the write actions' token rule."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from markupsafe import escape

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


def test_a_bad_sort_field_is_an_error_not_a_crash(live):
    response = get(live, "/", filter="nsites > 1", sort="no_such_field")
    assert response.status_code == 400 and "no_such_field" in element(response.text, "filter-error")


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


# --------------------------------------------------------------------------- quarantine


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


def test_a_reingested_record_keeps_the_original_file_name():
    from xtalbase.server.page_writes import reingest_file_name

    # the stored raw text is decompressed, so a compression suffix would send the reader the wrong bytes
    assert reingest_file_name("/data/vasp/run1/vasprun.xml.gz", 3) == "vasprun.xml"
    assert reingest_file_name("C:\\cifs\\NaCl.cif", 4) == "NaCl.cif"
    assert reingest_file_name("", 5) == "quarantine-5.txt" and reingest_file_name("/x/.hidden", 6) == "quarantine-6.txt"
