"""The OPTIMADE v1 API of ``xtalbase serve`` over HTTP, on both backends (the ``live`` server of conftest.py).

Answers are checked against the library (``db.query(filter).ids()``, the stored arrays) and against the
``optimade`` package's response models; errors against OPTIMADE's status codes.
"""

from __future__ import annotations

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")

FILTERS = [
    'elements HAS ALL "O","Ti"',
    'elements HAS ANY "Cs","Rb" AND nsites <= 5',
    'elements HAS ONLY "Si","O"',
    'elements LENGTH 1',
    'chemical_formula_reduced = "O3SrTi"',
    'chemical_formula_reduced < "Fe"',
    'chemical_formula_reduced STARTS WITH "Al"',
    'chemical_formula_anonymous = "A3BC"',
    'chemical_formula_anonymous > "A2B"',
    'chemical_formula_descriptive CONTAINS "O3"',
    '_xtalbase_space_group_number = 221 OR space_group_it_number = 225',
    'NOT _xtalbase_space_group_number = 221',
    '_xtalbase_crystal_system = "cubic" AND nsites >= 2',
    'nsites > 3 AND nsites < 10',
    '_xtalbase_xrd_peak_2theta >= 28 AND _xtalbase_xrd_peak_2theta <= 33 AND _xtalbase_xrd_peak_intensity > 50',
    'id < "10"',
    'id ENDS "1"',
    'structure_features HAS "disorder"',
    'structure_features LENGTH 0',
    'nperiodic_dimensions = 3 AND nelements >= 4',
    '_exmpl_band_gap > 2 OR nsites = 2',
    'last_modified >= "2000-01-01T00:00:00Z"',
]


#: Filters whose answer differs from ``xtalbase query``'s by design: formula order and substrings compare OPTIMADE's
#: spelling (the query command the stored one), and other providers' fields are unknown values (there: errors).
OPTIMADE_ONLY = {'chemical_formula_reduced < "Fe"', 'chemical_formula_reduced STARTS WITH "Al"',
                 'chemical_formula_anonymous > "A2B"', '_exmpl_band_gap > 2 OR nsites = 2'}


def get(live, path: str, **params) -> httpx.Response:  # noqa: ANN001
    return httpx.get(f"{live.url}{path}", params=params or None, timeout=30)


def all_ids(live, **params) -> list[str]:  # noqa: ANN001
    """Every id a listing returns, following ``links.next`` (and checking each page against OPTIMADE's model)."""
    from optimade.models import StructureResponseMany

    ids, url = [], f"{live.url}/v1/structures"
    first = True
    while url:
        r = httpx.get(url, params=params if first else None, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        StructureResponseMany(**body)
        ids += [d["id"] for d in body["data"]]
        assert body["meta"]["more_data_available"] == (body["links"]["next"] is not None)
        url, first = body["links"]["next"], False
    return ids


def test_info_describes_the_api_and_the_fields(live) -> None:  # noqa: ANN001
    import optimade
    from optimade.models import EntryInfoResponse, InfoResponse

    from xtalbase.platform.optimade_filter import known_fields

    info = get(live, "/v1/info").json()
    InfoResponse(**info)
    attributes = info["data"]["attributes"]
    assert attributes["api_version"] == info["meta"]["api_version"] == optimade.__api_version__
    assert attributes["entry_types_by_format"] == {"json": ["structures"]}
    assert info["meta"]["provider"]["prefix"] == "xtalbase"
    entry = get(live, "/v1/info/structures").json()
    EntryInfoResponse(**entry)
    props = entry["data"]["properties"]
    for name in ("_xtalbase_space_group_number", "_xtalbase_xrd_peaks", "_xtalbase_predictions", "structure_features"):
        assert props[name]["description"]
    assert props["_xtalbase_volume"]["unit"] == "Å^3"
    # a field flagged sortable sorts; one that is not is refused
    for name, prop in props.items():
        r = get(live, "/v1/structures", sort=f"-{name}", page_limit=2)
        assert (r.status_code == 200) == prop["sortable"], (name, r.text)
    # every filterable provider field of the catalogue is one the filter language knows
    assert {n for n in props if n.startswith("_xtalbase_") and "xrd_peaks" not in n and "predictions" not in n} <= set(known_fields())


def test_pagination_returns_every_structure_once(live) -> None:  # noqa: ANN001
    ids = all_ids(live, page_limit=7)
    assert ids == [str(i) for i in live.db.query().ids()]
    first = get(live, "/v1/structures", page_limit=7).json()
    assert first["meta"]["data_returned"] == first["meta"]["data_available"] == len(ids)
    assert len(first["data"]) == 7
    last = get(live, "/v1/structures", page_limit=7, page_offset=len(ids) - 3).json()
    assert [d["id"] for d in last["data"]] == ids[-3:] and not last["meta"]["more_data_available"]
    assert get(live, "/v1/structures", page_offset=len(ids) + 5).json()["data"] == []
    default = get(live, "/v1/structures").json()
    assert len(default["data"]) == 20


@pytest.mark.parametrize("filter_", FILTERS)
def test_filter_answers_equal_the_query_command(live, filter_: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from xtalbase.platform.query import Query
    from xtalbase.server import optimade

    # the count is checked here, not its budget: on a loaded machine even these counts can pass 60 ms
    monkeypatch.setattr(optimade, "COUNT_BUDGET_S", 10.0)

    expected = [str(i) for i in Query(live.db, filter_, optimade=True).ids()]
    if filter_ not in OPTIMADE_ONLY:
        assert expected == [str(i) for i in live.db.query(filter_).ids()]
    assert all_ids(live, filter=filter_, page_limit=25) == expected
    body = get(live, "/v1/structures", filter=filter_, page_limit=1).json()
    assert body["meta"]["data_returned"] == len(expected)
    assert body["meta"]["data_available"] == live.db.query().count()


def test_filters_select_something(live) -> None:  # noqa: ANN001
    """The filter set above is not vacuous: most filters select some structures but not all."""
    total = live.db.query().count()
    from xtalbase.platform.query import Query

    partial = [f for f in FILTERS if 0 < Query(live.db, f, optimade=True).count() < total]
    assert len(partial) >= len(FILTERS) // 2, partial


@pytest.mark.parametrize("inline", [100, 0], ids=["in-list", "json-list"])
def test_formula_filters_compare_optimade_spellings(live, inline: int, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from xtalbase.platform import optimade_filter

    monkeypatch.setattr(optimade_filter, "INLINE_IN_VALUES", inline)  # 0: the one-parameter JSON list of large answers
    data = get(live, "/v1/structures", page_limit=100, response_fields="chemical_formula_reduced,chemical_formula_anonymous").json()["data"]
    reduced = {d["id"]: d["attributes"]["chemical_formula_reduced"] for d in data}
    some = sorted(set(reduced.values()))[len(reduced) // 3]
    for op, test in (("<", str.__lt__), (">=", str.__ge__)):
        got = all_ids(live, filter=f'chemical_formula_reduced {op} "{some}"')
        assert sorted(got, key=int) == sorted((i for i, f in reduced.items() if test(f, some)), key=int)
    anonymous = {d["id"]: d["attributes"]["chemical_formula_anonymous"] for d in data}
    got = all_ids(live, filter='chemical_formula_anonymous STARTS "A2"')
    assert sorted(got, key=int) == sorted((i for i, f in anonymous.items() if f.startswith("A2")), key=int)


def test_response_fields_and_provider_fields(live) -> None:  # noqa: ANN001
    body = get(live, "/v1/structures", response_fields="nsites,_xtalbase_xrd_peaks,_xtalbase_space_group_symbol",
               page_limit=50).json()
    for d in body["data"]:
        assert set(d["attributes"]) == {"nsites", "_xtalbase_xrd_peaks", "_xtalbase_space_group_symbol"}
    with_peaks = [d for d in body["data"] if d["attributes"]["_xtalbase_xrd_peaks"]]
    assert with_peaks, "the test database has XRD patterns"
    peaks = with_peaks[0]["attributes"]["_xtalbase_xrd_peaks"]
    assert len(peaks["two_theta"]) == len(peaks["intensity"]) > 0 and max(peaks["intensity"]) == pytest.approx(100)
    assert all(0 <= t <= 90 for t in peaks["two_theta"]) and peaks["two_theta"] == sorted(peaks["two_theta"])
    default = get(live, "/v1/structures", page_limit=1).json()["data"][0]["attributes"]
    assert "_xtalbase_xrd_peaks" not in default and {"elements", "lattice_vectors", "species"} <= set(default)
    odd = get(live, "/v1/structures", response_fields="nsites,chemical_formula_hill,_other_x,_xtalbase_nonsense", page_limit=1).json()
    assert odd["data"][0]["attributes"] == {"nsites": odd["data"][0]["attributes"]["nsites"], "chemical_formula_hill": None}
    assert any("_xtalbase_nonsense" in w["detail"] for w in odd["meta"]["warnings"])
    # OPTIMADE: an unknown name without a provider prefix is no field at all, a 400 naming it (as in optimade's server)
    bad = get(live, "/v1/structures", response_fields="nsites,nonsense")
    assert bad.status_code == 400 and "nonsense" in bad.json()["errors"][0]["detail"], bad.text
    assert bad.json()["errors"][0]["source"] == {"parameter": "response_fields"}


def test_sort_matches_the_query(live) -> None:  # noqa: ANN001
    ids = all_ids(live, sort="-nsites,_xtalbase_density", page_limit=9)
    assert sorted(ids, key=int) == [str(i) for i in live.db.query().ids()]
    rows = live.db.query().frame().set_index("id")
    keys = [(-rows.loc[int(i), "nsites"], rows.loc[int(i), "density"]) for i in ids]
    assert keys == sorted(keys)
    # many structures share an element count: across pages, ties come in id order
    by_count = all_ids(live, sort="-nelements", page_limit=4)
    assert by_count == [str(i) for i in sorted(rows.index, key=lambda i: (-rows.loc[i, "nelements"], i))]
    assert all_ids(live, sort="-_xtalbase_volume", filter="nsites < 8") == [
        str(i) for i in live.db.query("nsites < 8", sort="-_xtalbase_volume").ids()]


def test_single_structure_matches_the_stored_one(live) -> None:  # noqa: ANN001
    from optimade.models import StructureResponseOne

    sid = live.db.query("nelements >= 3", limit=1).ids()[0]
    body = get(live, f"/v1/structures/{sid}").json()
    StructureResponseOne(**body)
    attributes = body["data"]["attributes"]
    atoms = live.db.query(f"id = {sid}").atoms(calculations=False)[0]
    assert body["data"]["id"] == str(sid)
    assert attributes["nsites"] == len(atoms)
    np.testing.assert_allclose(attributes["lattice_vectors"], atoms.cell[:], atol=1e-9)
    np.testing.assert_allclose(attributes["cartesian_site_positions"], atoms.positions, atol=1e-9)
    assert attributes["species_at_sites"] == atoms.get_chemical_symbols()
    assert attributes["elements"] == sorted(set(atoms.get_chemical_symbols()))
    assert sum(attributes["elements_ratios"]) == pytest.approx(1)
    assert get(live, f"/v1/structures/{sid}", response_fields="immutable_id").json()["data"]["attributes"] == {
        "immutable_id": live.db.query(f"id = {sid}").frame()["exact_hash"][0]}


def test_predictions_field(live) -> None:  # noqa: ANN001
    from xtalbase.schema import Model, Prediction

    sid = live.db.query(limit=1).ids()[0]
    with live.db.session() as s:
        model = Model(name="test-model", task="classification", target="crystal_system", algorithm="xgboost",
                      code_version="test", artifact_format="none", artifact_sha256="0" * 64)
        s.add(model)
        s.flush()
        s.add(Prediction(model_id=model.id, structure_id=sid, target="crystal_system", label="cubic", value=0.9))
        s.add(Prediction(model_id=model.id, structure_id=sid, target="crystal_system", label="cubic", value=float("nan")))
        s.commit()
        model_id = model.id
    try:
        attrs = get(live, f"/v1/structures/{sid}", response_fields="_xtalbase_predictions").json()["data"]["attributes"]
        expected = {"model_id": model_id, "model_name": "test-model", "algorithm": "xgboost",
                    "target": "crystal_system", "value": 0.9, "label": "cubic", "run_id": None}
        # JSON has no NaN: a non-finite prediction is shown as null instead of failing the page
        assert attrs["_xtalbase_predictions"] == [expected, {**expected, "value": None}]
    finally:
        with live.db.session() as s:
            s.query(Prediction).filter(Prediction.model_id == model_id).delete()
            s.query(Model).filter(Model.id == model_id).delete()
            s.commit()


@pytest.mark.parametrize(("path", "params", "status", "says"), [
    ("/v1/structures", {"filter": "nsites >"}, 400, "position 9"),
    ("/v1/structures", {"filter": 'elements HAS "O" AND nsites = "x"'}, 400, "position 22"),
    ("/v1/structures", {"filter": "crazyfield = 2"}, 400, "unknown field 'crazyfield'"),
    ("/v1/structures", {"filter": "_xtalbase_nonsense = 2"}, 400, "unknown field"),
    ("/v1/structures", {"filter": "lattice_vectors HAS 1"}, 501, "lattice_vectors"),
    ("/v1/structures", {"page_limit": "100000"}, 403, "page_limit"),
    ("/v1/structures", {"page_limit": "x"}, 400, "page_limit"),
    ("/v1/structures", {"page_offset": str(2**64)}, 400, "page_offset"),
    ("/v1/structures", {"page_number": "2"}, 501, "page_offset"),
    ("/v1/structures", {"sort": "chemical_formula_reduced"}, 400, "sortable"),
    ("/v1/structures", {"response_format": "xml"}, 400, "json"),
    ("/v1/structures/999999", {}, 404, "999999"),
    ("/v1/structures/abc", {}, 404, "abc"),
    ("/v1/structures/\u00b2", {}, 404, "\u00b2"),  # str.isdigit() is true for a superscript two, int() fails on it
    ("/v1/structures/\u0663", {}, 404, "\u0663"),  # an Arabic-Indic three is no id either
    ("/v1/structures/01", {}, 404, "01"),  # nor a zero-padded one (the answer's id would not be the one asked for)
    ("/v1/references", {}, 404, "/v1/references"),
    ("/v1/versions", {}, 404, "versions"),
    ("/v2/info", {}, 553, "version 2"),
    ("/v1", {}, 404, "/v1"),
])
def test_errors_are_optimade_errors(live, path: str, params: dict, status: int, says: str) -> None:  # noqa: ANN001
    from optimade.models import ErrorResponse

    r = get(live, path, **params)
    assert r.status_code == status, r.text
    body = r.json()
    ErrorResponse(**body)
    assert body["errors"][0]["status"] == str(status) and says in body["errors"][0]["detail"]


def test_versions_and_foreign_fields(live) -> None:  # noqa: ANN001
    slash = httpx.get(f"{live.url}/v1/structures/?page_limit=3", follow_redirects=True, timeout=30)
    assert slash.status_code == 200 and len(slash.json()["data"]) == 3
    r = get(live, "/versions")
    assert r.status_code == 200 and r.text.split() == ["version", "1"] and r.headers["content-type"].startswith("text/csv")
    body = get(live, "/v1/structures", filter="_exmpl_x = 1").json()
    assert body["data"] == [] and "_exmpl_x" in body["meta"]["warnings"][0]["detail"]
    assert all_ids(live, filter="_exmpl_x IS UNKNOWN") == [str(i) for i in live.db.query().ids()]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_api_is_read_only(live, method: str) -> None:  # noqa: ANN001
    before = live.db.query().count()
    for path in ("/v1/structures", "/v1/structures/1", "/v1/info"):
        r = httpx.request(method, f"{live.url}{path}", json={"data": {}}, timeout=30)
        assert r.status_code == 405, (method, path, r.text)
        assert r.json()["errors"][0]["status"] == "405"
    assert live.db.query().count() == before


def test_new_filter_fields_against_python(live) -> None:  # noqa: ANN001
    """id text matching, immutable_id, last_modified and the descriptive formula, checked against the stored rows."""
    frame = live.db.query().frame()
    ids = [str(i) for i in frame["id"]]
    assert all_ids(live, filter='id CONTAINS "1"') == [i for i in ids if "1" in i]
    assert all_ids(live, filter='id STARTS "2"') == [i for i in ids if i.startswith("2")]
    assert all_ids(live, filter=f'id = "{ids[0]}"') == [ids[0]]
    assert all_ids(live, filter=f'id = "0{ids[0]}"') == [] and all_ids(live, filter=f'id = " {ids[0]}"') == []  # strings
    one = frame.iloc[len(frame) // 2]
    assert all_ids(live, filter=f'immutable_id = "{one.exact_hash}"') == [str(one.id)]
    shown = get(live, f"/v1/structures/{one.id}", response_fields="last_modified").json()["data"]["attributes"]["last_modified"]
    assert str(one.id) in all_ids(live, filter=f'last_modified >= "{shown}"')
    assert all_ids(live, filter='last_modified < "2000-01-01T00:00:00Z"') == []
    assert all_ids(live, filter=f'chemical_formula_descriptive = "{one.formula_reduced}"') == [
        str(i) for i, f in zip(frame["id"], frame["formula_reduced"]) if f == one.formula_reduced]
    r = get(live, "/v1/structures", filter='last_modified > "yesterday"')
    assert r.status_code == 400 and "ISO 8601" in r.json()["errors"][0]["detail"]


def test_disordered_structure_has_species_with_concentrations(live) -> None:  # noqa: ANN001
    from optimade.models import StructureResponseOne

    from tests.conftest import TEST_DATA

    report = live.db.ingest([TEST_DATA / "ingest" / "cif" / "1011100.cif"], allow_disorder=True)  # TiN, 0.88 occupied
    assert report.inserted == 1, report
    sid = report.structure_ids[0]
    body = get(live, f"/v1/structures/{sid}").json()
    StructureResponseOne(**body)
    attributes = body["data"]["attributes"]
    assert attributes["structure_features"] == ["disorder"]
    species = {s["name"]: s for s in attributes["species"]}
    assert set(attributes["species_at_sites"]) == set(species)
    for s in species.values():
        assert s["chemical_symbols"][-1] == "vacancy" and s["concentration"] == pytest.approx([0.88, 0.12])
    assert all_ids(live, filter='structure_features HAS "disorder"') == [str(sid)]
    # its formulas have non-integer counts, so OPTIMADE's formula fields are null: no comparison selects it
    assert attributes["chemical_formula_reduced"] is None and attributes["chemical_formula_anonymous"] is None
    for filter_ in ('chemical_formula_reduced > "A"', 'chemical_formula_reduced CONTAINS "N"',
                    'chemical_formula_anonymous >= "A"', 'chemical_formula_anonymous STARTS "A"'):
        assert str(sid) not in all_ids(live, filter=filter_), filter_
    assert str(sid) not in all_ids(live, filter="structure_features LENGTH 0")


def test_a_slow_count_is_left_out_and_paging_goes_on(live, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """When counting the matches exceeds its budget the page still comes, without data_returned but with a warning."""
    from xtalbase.platform.query import Query

    filter_ = "nsites >= 2"
    expected = [str(i) for i in live.db.query(filter_).ids()]
    assert Query(live.db, filter_).count_within(30) == len(expected)
    monkeypatch.setattr(Query, "count_within", lambda self, seconds: None)
    body = get(live, "/v1/structures", filter=filter_, page_limit=10).json()
    assert "data_returned" not in body["meta"] and any("data_returned" in w["detail"] for w in body["meta"]["warnings"])
    assert body["meta"]["more_data_available"] == (len(expected) > 10)
    assert all_ids(live, filter=filter_, page_limit=10) == expected


def test_meta_query_representation_follows_the_versioned_base_url(live) -> None:  # noqa: ANN001
    """OPTIMADE: ``meta.query.representation`` is the part of the URL after the (versioned) base URL."""
    assert get(live, "/v1/structures", page_limit=3).json()["meta"]["query"]["representation"] == "/structures?page_limit=3"
    assert get(live, "/v1/info").json()["meta"]["query"]["representation"] == "/info"
    sid = live.db.query(limit=1).ids()[0]
    assert get(live, f"/v1/structures/{sid}").json()["meta"]["query"]["representation"] == f"/structures/{sid}"


def test_peaks_are_read_while_a_writer_holds_the_database(live) -> None:  # noqa: ANN001
    """A page with XRD peaks reads through the read-only connection: an open write transaction (an ingest, a run)
    must not make it wait for SQLite's write lock (60 s, then "database is locked")."""
    with live.db.engine.connect() as writer:
        writer.begin()  # BEGIN IMMEDIATE on SQLite: the write lock, until rollback
        writer.exec_driver_sql("SELECT 1")
        r = httpx.get(f"{live.url}/v1/structures", params={"response_fields": "_xtalbase_xrd_peaks", "page_limit": 5},
                      timeout=10)
        writer.rollback()
    assert r.status_code == 200, r.text
    assert any(d["attributes"]["_xtalbase_xrd_peaks"] for d in r.json()["data"])


def test_a_count_queued_behind_others_does_not_hold_the_page(live, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """When every counting thread is busy, a request does not wait for its count to get a turn: the count's budget
    runs from the request, and a count that has not started by its end is dropped (data_returned left out)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from xtalbase.server import optimade

    busy, release = ThreadPoolExecutor(max_workers=1), threading.Event()
    busy.submit(release.wait, 30)
    monkeypatch.setattr(optimade, "_counter", lambda: busy)
    try:
        r = httpx.get(f"{live.url}/v1/structures", params={"filter": "nsites >= 2", "page_limit": 3}, timeout=10)
    finally:
        release.set()
        busy.shutdown(wait=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "data_returned" not in body["meta"] and len(body["data"]) == 3 and body["meta"]["more_data_available"]
