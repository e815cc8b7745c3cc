"""The lazy Query: pandas, pymatgen and ASE results, DFT results on Atoms, pages, explain, XRD peak and energy filters."""

from __future__ import annotations

import numpy as np
import pytest

from tests.platform.test_query_fixtures import CALC_FILE, N_STRUCTURES
from xtalbase.errors import XtalbaseError
from xtalbase.platform.optimade_filter import FilterError
from xtalbase.platform.query import V_STRUCTURES_COLUMNS


def test_frame_has_view_columns_in_query_order(qdb, truth):
    frame = qdb.query('elements HAS "O"', sort="-_xtalbase_density").frame()
    assert list(frame.columns) == list(V_STRUCTURES_COLUMNS)
    assert list(frame["id"]) == qdb.query('elements HAS "O"', sort="-_xtalbase_density").ids()
    assert frame["density"].is_monotonic_decreasing
    for row in frame.itertuples():
        t = truth[row.id]
        assert row.elements == ",".join(sorted(t.elements))
        assert row.nsites == len(t.structure)
        assert row.formula_reduced == t.structure.composition.reduced_formula
        assert row.volume == pytest.approx(t.structure.volume, rel=1e-6)
        assert row.density == pytest.approx(t.structure.density, rel=1e-3)  # ASE vs pymatgen atomic masses


def test_structures_match_the_source_files(qdb, truth):
    q = qdb.query("nsites < 10", sort="nsites")
    structures = q.structures()
    assert [s.properties["xtalbase_id"] for s in structures] == q.ids()
    for s in structures:
        ref = truth[s.properties["xtalbase_id"]].structure
        assert s.composition == ref.composition
        assert np.allclose(s.lattice.matrix, ref.lattice.matrix, atol=1e-6)
        assert s.matches(ref, scale=False)


def test_atoms_match_structures(qdb):
    q = qdb.query("_xtalbase_source = \"MP\"")
    atoms, structures = q.atoms(), q.structures()
    assert len(atoms) == len(structures) == 24
    for a, s in zip(atoms, structures):
        assert a.info["xtalbase_id"] == s.properties["xtalbase_id"]
        assert a.pbc.all() and a.calc is None
        assert list(a.numbers) == [site.specie.Z for site in s]
        assert np.allclose(a.positions, s.cart_coords, atol=1e-8)
        assert np.allclose(a.cell[:], s.lattice.matrix)
        a.positions += 0.1  # decoded arrays are writable copies
        a.copy()


def test_pages_cover_the_result_once(qdb):
    every = qdb.query("nsites >= 5").ids()
    pages = list(qdb.query("nsites >= 5").pages(size=7))
    assert [i for p in pages for i in p] == every and all(len(p) <= 7 for p in pages)
    limited = list(qdb.query("nsites >= 5", limit=10).pages(size=4))
    assert [len(p) for p in limited] == [4, 4, 2]
    sorted_pages = list(qdb.query(None, sort="-nsites").pages(size=25, kind="frame"))
    assert [len(p) for p in sorted_pages] == [25, 25, 12]
    nsites = [n for p in sorted_pages for n in p["nsites"]]
    assert nsites == sorted(nsites, reverse=True)
    atoms_pages = list(qdb.query("nsites < 4").pages(size=2, kind="atoms"))
    assert sum(len(p) for p in atoms_pages) == qdb.query("nsites < 4").count()


def test_offset_windows_and_pages_follow_the_query_order(qdb):
    every = qdb.query("nsites >= 3", sort="-_xtalbase_volume").ids()
    assert len(every) > 12
    assert qdb.query("nsites >= 3", sort="-_xtalbase_volume", offset=5, limit=4).ids() == every[5:9]
    assert qdb.query("nsites >= 3", sort="-_xtalbase_volume", offset=5).count() == len(every) - 5
    assert qdb.query("nsites >= 3", offset=len(every) + 3).ids() == []
    query = qdb.query("nsites >= 3", sort="-_xtalbase_volume")
    assert query.window(7, 3).ids() == every[7:10] and query.ids() == every  # the query itself is unchanged
    page = query.page(7, 3)
    assert list(page.frame()["id"]) == every[7:10] == [s.properties["xtalbase_id"] for s in page.structures()]
    assert query.page(len(every), 3).ids() == []
    # pages of a query with an offset start at the offset, in order, by id or sorted
    by_id = qdb.query("nsites >= 3").ids()
    assert [i for p in qdb.query("nsites >= 3", offset=4).pages(size=5) for i in p] == by_id[4:]
    assert [i for p in qdb.query("nsites >= 3", sort="-_xtalbase_volume", offset=2, limit=9).pages(size=4)
            for i in p] == every[2:11]
    # a window lies within the query's own offset and limit
    limited = qdb.query("nsites >= 3", sort="-_xtalbase_volume", offset=2, limit=9)
    assert limited.window(1, 5).ids() == every[3:8] and limited.window(7, 5).ids() == every[9:11]
    assert limited.window(12, 5).ids() == [] and limited.page(1, 5).ids() == every[3:8]
    for bad in (-1, 1.5, True, None):
        with pytest.raises(XtalbaseError, match="offset"):
            qdb.query(offset=bad)
        with pytest.raises(XtalbaseError, match="offset"):
            query.window(bad, 3)
        with pytest.raises(XtalbaseError, match="size"):
            query.page(0, bad)


def test_explain_shows_parameters_inlined_and_a_plan(qdb):
    q = qdb.query('elements HAS ALL "Fe","O" AND nsites < 20')
    sql = q.explain()
    assert "structure_elements" in sql and "'Fe'" in sql and "20" in sql
    plan = q.explain(plan=True)
    assert plan and ("structure_elements" in plan or "ix_" in plan or "Index" in plan or "Scan" in plan)


def test_empty_filter_selects_everything_and_bad_arguments_fail(qdb):
    assert qdb.query().count() == qdb.query("").count() == N_STRUCTURES
    with pytest.raises(FilterError, match="cannot sort by 'elements'.*nsites"):
        qdb.query(sort="elements")
    with pytest.raises(XtalbaseError, match="limit"):
        qdb.query(limit=-1)
    with pytest.raises(XtalbaseError, match="page size"):
        next(qdb.query().pages(0))


def test_atoms_carry_dft_results_and_energy_filters(qdb):
    from ase.io import read

    report = qdb.ingest(CALC_FILE)
    assert report.inserted == 8
    frames = read(CALC_FILE, index=":")
    atoms = qdb.query('_xtalbase_source = "extxyz"').atoms()
    assert len(atoms) == 8
    for a, ref in zip(atoms, frames):
        assert a.get_potential_energy() == pytest.approx(ref.get_potential_energy())
        assert np.allclose(a.get_forces(), ref.get_forces())
        assert np.allclose(a.get_stress(), ref.get_stress())
        assert np.allclose(a.positions, ref.positions, atol=1e-8)
    per_atom = sorted(f.get_potential_energy() / len(f) for f in frames)
    cut = (per_atom[2] + per_atom[3]) / 2
    assert qdb.query(f"_xtalbase_energy_per_atom < {cut}").count() == 3
    assert qdb.query(f"_xtalbase_energy_per_atom >= {cut} AND elements HAS ONLY \"Si\",\"C\"").count() == 5
    assert qdb.query("_xtalbase_energy_per_atom IS KNOWN").count() == 8
    assert qdb.query("_xtalbase_energy_per_atom IS UNKNOWN").count() == N_STRUCTURES
    assert qdb.query("_xtalbase_energy < 0 AND _xtalbase_source = \"perov5\"").count() == 0
    without = qdb.query('_xtalbase_source = "extxyz"').atoms(calculations=False)
    assert all(a.calc is None for a in without)


def test_xrd_peak_windows_match_stored_patterns(qdb):
    from sqlalchemy import select

    from xtalbase.schema import XrdPattern
    from xtalbase.schema.arrays import unpack
    from xtalbase.xrd.builder import compute_missing

    ids = qdb.query('_xtalbase_source = "COD" OR _xtalbase_source = "perov5"').ids()
    result = compute_missing(qdb, structure_ids=ids)
    assert result["computed"] == len(ids) == 38
    with qdb.session() as s:
        patterns = {p.structure_id: (unpack(p.two_theta), unpack(p.intensity)) for p in s.scalars(select(XrdPattern))}

    def has_peak(sid, lo, hi, above):
        tt, inten = patterns.get(sid, (np.array([]), np.array([])))
        return bool(np.any((tt >= lo) & (tt <= hi) & (inten > above)))

    one = "_xtalbase_xrd_peak_2theta >= 31 AND _xtalbase_xrd_peak_2theta <= 33 AND _xtalbase_xrd_peak_intensity > 50"
    want = {sid for sid in patterns if has_peak(sid, 31, 33, 50)}
    assert set(qdb.query(one).ids()) == want and 0 < len(want) < len(ids)
    # two peaks: each parenthesised group is its own peak
    two = f"({one}) AND (_xtalbase_xrd_peak_two_theta >= 44 AND _xtalbase_xrd_peak_two_theta <= 47 AND _xtalbase_xrd_peak_intensity > 20)"
    want_two = {sid for sid in want if has_peak(sid, 44, 47, 20)}
    assert set(qdb.query(two).ids()) == want_two
    # the window binds to one peak: a strong peak elsewhere does not satisfy a weak window
    loose = "_xtalbase_xrd_peak_2theta >= 31 AND _xtalbase_xrd_peak_2theta <= 33"
    assert set(qdb.query(loose).ids()) == {sid for sid in patterns if has_peak(sid, 31, 33, -1)}
    assert set(qdb.query(f"NOT ({one})").ids()) == set(qdb.query().ids()) - want
    recipe = result["recipe_id"]
    assert set(qdb.query(f"{one} AND _xtalbase_xrd_recipe_id = {recipe}").ids()) == want
    assert qdb.query(f"{one} AND _xtalbase_xrd_recipe_id = {recipe + 1000}").count() == 0
    d = "_xtalbase_xrd_peak_d_spacing > 2.8 AND _xtalbase_xrd_peak_d_spacing < 2.9 AND elements HAS \"O\""
    assert qdb.query(d).count() >= 1


def test_queries_inside_an_open_run_do_not_wait_for_its_write_lock(qdb):
    import time

    from xtalbase.platform.repositories.runs import add_note

    with qdb.run("query-probe") as run:
        add_note(run.session, run.id, "probe: nsites > 20")
        run.session.flush()  # the run's transaction now holds SQLite's write lock
        started = time.perf_counter()
        assert qdb.query("nsites > 20").count() == len(qdb.query("nsites > 20").ids()) > 0
        assert time.perf_counter() - started < 5


def test_distinct_cache_keeps_spellings_until_a_structure_is_added_or_they_expire(db, monkeypatch):
    import xtalbase.platform.query as query_module
    from tests.conftest import TEST_DATA
    from xtalbase.platform.query import DistinctCache, Query

    reads = []
    real = query_module.distinct_values
    monkeypatch.setattr(query_module, "distinct_values", lambda conn, col: reads.append(col.key) or real(conn, col))
    cif = TEST_DATA / "ingest" / "cif"
    assert db.ingest([cif / "CaO.cif"]).inserted == 1
    cache = DistinctCache(ttl_s=3600)

    def ids(filter_: str, cache_: DistinctCache | None = cache) -> list[int]:
        return Query(db, filter_, optimade=True, distinct_cache=cache_).ids()

    assert len(ids('chemical_formula_reduced > "A"')) == 1 and len(reads) == 1
    assert ids('chemical_formula_reduced STARTS "Ca"') == ids('chemical_formula_reduced < "Z"') and len(reads) == 1
    assert db.ingest([cif / "CaTiO3.cif"]).inserted == 1
    after = ids('chemical_formula_reduced STARTS "Ca"')  # a structure was added: read again, and the new one is found
    assert len(reads) == 2 and len(after) == 2 and after == ids('chemical_formula_reduced STARTS "Ca"', None)
    expired = DistinctCache(ttl_s=0)
    ids('chemical_formula_reduced > "A"', expired), ids('chemical_formula_reduced > "A"', expired)
    assert len(reads) == 2 + 1 + 2  # the uncached query above, then both expired reads


def test_distinct_cache_is_renewed_once_when_many_requests_miss_at_once(db, monkeypatch):
    import threading
    import time

    import xtalbase.platform.query as query_module
    from tests.conftest import TEST_DATA
    from xtalbase.platform.query import DistinctCache, Query

    assert db.ingest([TEST_DATA / "ingest" / "cif" / "CaO.cif"]).inserted == 1
    reads = []
    real = query_module.distinct_values

    def slow(conn, col):  # noqa: ANN001, ANN202
        reads.append(col.key)
        time.sleep(0.3)  # long enough that every thread misses before the first read ends
        return real(conn, col)

    monkeypatch.setattr(query_module, "distinct_values", slow)
    cache, answers = DistinctCache(ttl_s=3600), []

    def request() -> None:
        answers.append(Query(db, 'chemical_formula_reduced STARTS "Ca"', optimade=True, distinct_cache=cache).ids())

    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 4 and all(a == answers[0] and len(a) == 1 for a in answers)
    assert reads == ["formula_reduced"]  # one renewal; the other three waited for it
