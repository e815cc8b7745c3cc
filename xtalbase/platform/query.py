"""The lazy query returned by ``db.query(filter, sort=, limit=)``.

Nothing runs until a result is asked for: ``count()``, ``ids()``, ``frame()``
(pandas, the columns of the ``v_structures`` view), ``structures()`` (pymatgen),
``atoms()`` (ASE, with DFT results attached), ``pages(size)`` (any of those in
chunks) and ``explain()`` (the SQL, or the database's plan for it).

Examples
--------
>>> q = db.query('elements HAS ALL "Sr","Ti" AND nsites <= 5', sort="-_xtalbase_volume", limit=10)
>>> q.count(), q.ids()[:3]
>>> atoms = q.atoms()          # list of ase.Atoms, energy/forces via SinglePointCalculator
"""

from __future__ import annotations

import copy
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

from sqlalchemy import Select, column, func, select, table, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import NullType

from xtalbase.errors import XtalbaseError
from xtalbase.platform.convert import attach_calculation, batch_to_ase, batch_to_pymatgen, decode_batch
from xtalbase.platform.optimade_filter import FilterError, compile_filter, deepest_parenthesis, sort_column, spelled
from xtalbase.platform.repositories.optimade import distinct_values, newest_structure_id
from xtalbase.platform.repositories.structures import calculation_rows
from xtalbase.schema import Structure

if TYPE_CHECKING:
    import pandas as pd
    from ase import Atoms
    from pymatgen.core import Structure as PmgStructure

    from xtalbase.platform.database import Database

#: Columns of the ``v_structures`` view (created by migration 0005), in order.
V_STRUCTURES_COLUMNS = (
    "id", "formula_reduced", "formula_anonymous", "chemical_system", "elements", "nelements", "nsites",
    "spacegroup_number", "spacegroup_symbol", "crystal_system", "a", "b", "c", "alpha", "beta", "gamma",
    "volume", "density", "source_database", "source_external_id", "nsources", "exact_hash", "canonical_hash",
    "created_at", "run_id",
)
v_structures = table("v_structures", *(column(c) for c in V_STRUCTURES_COLUMNS))

PageKind = Literal["ids", "frame", "structures", "atoms"]

# what SQLite and PostgreSQL say when an expression is too deep for their parsers
_TOO_COMPLEX = ("parser stack overflow", "Expression tree is too large", "stack depth limit exceeded")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise XtalbaseError(f"{name} must be a non-negative 64-bit integer, got {value!r}")


class DistinctCache:
    """The distinct stored values of a column with their OPTIMADE spellings (:data:`~.optimade_filter.Distinct`),
    computed again once a structure was added or ``ttl_s`` seconds passed.

    For a server answering formula comparisons (<, >, STARTS...): at a million structures (885,900 distinct reduced
    formulas) reading and re-spelling them took 13 s, each time; with the spellings kept, only the comparison runs.
    """

    def __init__(self, ttl_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self._kept: dict[tuple[str, Any], tuple[int | None, list[tuple[Any, str]], float]] = {}
        self._renewing = threading.Lock()  # one request renews; the others wait for its answer, not redo it

    def spelled(self, conn: Any, column: Any, spelling: Callable[[str], str | None]) -> list[tuple[Any, str]]:
        """``(stored, shown)`` pairs of ``column`` (read through ``conn`` unless a fresh copy is kept).

        Freshness is judged by the largest structure id: structures are only added (never deleted or changed
        in place), and each ingest batch commits under the writer's lock, so a new structure raises it.
        """
        key, newest = (column.key, spelling), newest_structure_id(conn)
        kept = self._fresh(key, newest)
        if kept is not None:
            return kept
        with self._renewing:
            kept = self._fresh(key, newest)
            if kept is not None:
                return kept
            pairs = spelled(distinct_values(conn, column), spelling)
            self._kept[key] = (newest, pairs, time.monotonic())
            return pairs

    def _fresh(self, key: tuple[str, Any], newest: int | None) -> list[tuple[Any, str]] | None:
        kept = self._kept.get(key)
        if kept is not None and kept[0] == newest and time.monotonic() - kept[2] < self.ttl_s:
            return kept[1]
        return None


class Query:
    """Structures selected by an OPTIMADE filter, optionally sorted and limited; evaluated on demand.

    Parameters
    ----------
    db : Database
    filter : str, optional
        OPTIMADE filter (see :mod:`xtalbase.platform.optimade_filter`); ``None`` selects everything.
    sort : str, optional
        A sortable field name (``nsites``, ``_xtalbase_density``, ...); prefix ``-`` for descending.
        Ties and the default order are by structure id.
    limit : int, optional
        At most this many structures.
    offset : int
        Skip this many matches first (in query order): with ``limit``, one page of a listing.

    The filter and sort are checked when the query is made, so a bad filter
    fails at ``db.query(...)`` with a :class:`FilterError` naming the position.
    """

    def __init__(self, db: "Database", filter: str | None = None, *, sort: str | None = None, limit: int | None = None,
                 offset: int = 0, optimade: bool = False, distinct_cache: "DistinctCache | None" = None) -> None:
        if limit is not None:
            _check_count("limit", limit)
        _check_count("offset", offset)
        self.db = db
        self.filter = filter
        self.sort = sort
        self.limit = limit
        self.offset = offset
        self._distinct_cache = distinct_cache
        #: Other providers' fields the filter named: with ``optimade=True`` (the API) they are unknown values, as
        #: OPTIMADE asks, and the formula fields compare OPTIMADE's spelling with <, >, STARTS, ENDS, CONTAINS;
        #: otherwise (``xtalbase query``) other providers' fields are errors and formulas compare the stored spelling.
        self.foreign: list[str] = []
        self.where = compile_filter(filter, distinct=self._distinct if optimade else None,
                                    foreign=self.foreign if optimade else None)
        # ``sort`` may list several keys, "a,-b": each ascending unless prefixed with -
        keys = [sort_column(k.strip()) for k in sort.split(",")] if sort else []
        self._sort_keys: list[tuple[str, bool]] = [(col.key, desc) for col, desc in keys]
        self._order = [(col.desc() if desc else col.asc()).nulls_last() for col, desc in keys] + [Structure.id.asc()]

    def window(self, offset: int, size: int) -> "Query":
        """The ``size`` matches after the first ``offset`` of this query's result (which may itself have an
        ``offset`` and ``limit``: the window lies within it)."""
        _check_count("offset", offset)
        _check_count("size", size)
        window = copy.copy(self)
        window.offset = self.offset + offset
        window.limit = size if self.limit is None else max(0, min(size, self.limit - offset))
        return window

    def page(self, offset: int, size: int) -> "Query":
        """This query narrowed to the ids of :meth:`window` ``(offset, size)``, in the same order.

        The page's ids are read once (OFFSET over ids only), so loading the page's rows reads only those rows
        however far the page is; an empty page selects nothing.
        """
        return self._page(offset, size)[0]

    def _page(self, offset: int, size: int) -> tuple["Query", list[int]]:
        page = self.window(offset, size)
        ids = page.ids()
        page.where, page.offset, page.limit = Structure.id.in_(ids), 0, None
        return page, ids

    def _distinct(self, col: Any, spelling: Callable[[str], str | None]) -> list[tuple[Any, str]]:
        """Every distinct stored value of ``col`` with its ``spelling`` (the filter's comparisons that SQL cannot
        answer on the stored spelling)."""
        with self._connect() as conn:
            if self._distinct_cache is not None:
                return self._distinct_cache.spelled(conn, col, spelling)
            return spelled(distinct_values(conn, col), spelling)

    def __repr__(self) -> str:
        return f"Query(filter={self.filter!r}, sort={self.sort!r}, limit={self.limit!r}, offset={self.offset!r})"

    # ------------------------------------------------------------------ statements
    def statement(self, *columns: Any) -> Select:
        """The SELECT of ``columns`` (default: ``structures.id``) for this filter, order, offset and limit."""
        stmt = select(*(columns or (Structure.id,))).where(self.where).order_by(*self._order)
        if self.offset:
            stmt = stmt.offset(self.offset)
        return stmt.limit(self.limit) if self.limit is not None else stmt

    def explain(self, plan: bool = False) -> str:
        """The SQL this query runs (values inlined), or with ``plan=True`` the database's query plan for it."""
        sql = str(self.statement().compile(dialect=self.db.engine.dialect, compile_kwargs={"literal_binds": True}))
        if not plan:
            return sql
        prefix = "EXPLAIN QUERY PLAN " if self.db.backend == "sqlite" else "EXPLAIN "
        with self.db.read_only_engine().connect() as conn:
            rows = conn.exec_driver_sql(prefix + sql).all()
        return "\n".join(" ".join(str(v) for v in (r[-1:] if self.db.backend == "sqlite" else r)) for r in rows)

    def connect(self) -> Any:
        """The read-only connection this query reads through (a context manager), for loading related rows."""
        return self._connect()

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """A read-only connection: plain ``BEGIN`` on SQLite (the writer engine takes the write lock with
        ``BEGIN IMMEDIATE``, which would queue reads behind an open ``db.run``), read-only transactions on PostgreSQL.

        A filter the database's own parser cannot hold (SQLite's parser stack, PostgreSQL's stack depth)
        becomes the positioned :class:`FilterError`, pointing at the deepest parenthesis."""
        engine = self.db.engine
        if self.db.backend != "sqlite" or engine.url.database not in (None, "", ":memory:"):
            engine = self.db.read_only_engine()
        try:
            with engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            reason = str(exc.orig)
            if not any(s in reason for s in _TOO_COMPLEX) or not self.filter:
                raise
            where = deepest_parenthesis(self.filter)
            raise FilterError(f"invalid filter at position {where + 1}: the filter is too deeply nested for "
                              f"{self.db.backend} ({reason.splitlines()[0]}); use fewer parentheses") from None

    # ------------------------------------------------------------------ results
    def _count_statement(self) -> Select:
        if self.limit is None and not self.offset:
            return select(func.count()).select_from(Structure).where(self.where)
        return select(func.count()).select_from(self.statement().subquery())

    def count(self) -> int:
        """How many structures match (after ``offset`` and ``limit``)."""
        with self._connect() as conn:
            return int(conn.execute(self._count_statement()).scalar_one())

    def count_within(self, seconds: float) -> int | None:
        """:meth:`count`, or ``None`` when counting takes longer than ``seconds`` (the database stops the statement:
        PostgreSQL's ``statement_timeout``, a SQLite progress handler). For answers that may leave the count out."""
        postgresql = self.db.backend == "postgresql"
        with self._connect() as conn:
            if postgresql:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
            else:
                deadline = time.monotonic() + seconds
                raw = conn.connection.driver_connection
                raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)  # non-zero interrupts
            try:
                return int(conn.execute(self._count_statement()).scalar_one())
            except DBAPIError as exc:
                if ("statement timeout" if postgresql else "interrupted") not in str(exc.orig):
                    raise
                return None
            finally:
                if not postgresql:
                    raw.set_progress_handler(None, 0)

    def ids(self) -> list[int]:
        """Structure ids in query order."""
        with self._connect() as conn:
            return list(conn.execute(self.statement()).scalars())

    def frame(self) -> "pd.DataFrame":
        """A pandas ``DataFrame`` with the ``v_structures`` columns, one row per structure, in query order."""
        import pandas as pd

        stmt = select(v_structures).where(v_structures.c.id.in_(self.statement()))
        for name, desc in self._sort_keys:
            key = v_structures.c[name]
            stmt = stmt.order_by((key.desc() if desc else key.asc()).nulls_last())
        stmt = stmt.order_by(v_structures.c.id)
        with self._connect() as conn:
            result = conn.execute(stmt)
            return pd.DataFrame(result.all(), columns=list(result.keys()))

    def structures(self) -> list["PmgStructure"]:
        """pymatgen ``Structure`` objects in query order (disordered sites keep their occupancies)."""
        return self._load(self.statement(*_ARRAY_COLUMNS, Structure.site_occupancies), "structures")

    def atoms(self, calculations: bool = True) -> list["Atoms"]:
        """Periodic ASE ``Atoms`` in query order; ``info["structure_id"]`` is the structure id
        (also under ``info["xtalbase_id"]``, the key this method used first).

        With ``calculations`` (default), a structure that has a DFT calculation gets
        one attached as a ``SinglePointCalculator`` (energy eV, forces eV/Å, stress
        eV/Å³ in ASE's sign convention), chosen as in :mod:`xtalbase.platform.repositories.structures`
        (the newest not known to be unconverged); its id is ``info["calculation_id"]``.
        """
        return self._load(self.statement(*_ARRAY_COLUMNS), "atoms", calculations)

    def pages(self, size: int = 1000, kind: PageKind = "ids") -> Iterator[Any]:
        """Iterate over the result ``size`` structures at a time, each page as ``kind``.

        The default order pages by id (keyset, so each page is one index range);
        a sorted query, or one with an ``offset``, pages by offset.
        """
        if size <= 0:
            raise XtalbaseError(f"page size must be positive, got {size}")
        keyset = not self._sort_keys and not self.offset
        done, last_id = 0, None
        while self.limit is None or done < self.limit:
            n = size if self.limit is None else min(size, self.limit - done)
            if keyset:
                page = self.window(0, n)
                if last_id is not None:
                    page.where = self.where & (Structure.id > last_id)
                page_ids = page.ids()
            else:
                page, page_ids = self._page(done, n)
            if not page_ids:
                return
            yield page_ids if kind == "ids" else getattr(page, kind)()
            done += len(page_ids)
            last_id = page_ids[-1]
            if len(page_ids) < n:
                return

    # ------------------------------------------------------------------ loading
    def _load(self, stmt: Select, kind: str, calculations: bool = False) -> list[Any]:
        with self._connect() as conn:
            rows = conn.execute(stmt).all()
            calcs = calculation_rows(conn, self.statement()) if calculations and rows else {}
        if not rows:
            return []
        ids, nsites, cells, numbers, fracs = (list(c) for c in zip(*(r[:5] for r in rows)))
        batch = decode_batch(nsites, cells, numbers, fracs)
        if kind == "structures":
            out = batch_to_pymatgen(batch, [r[5] for r in rows])
            for sid, s in zip(ids, out):
                s.properties["xtalbase_id"] = sid
            return out
        atoms = batch_to_ase(batch, ids)
        if calcs:
            for sid, a in zip(ids, atoms):
                calc = calcs.get(sid)
                if calc is not None:
                    attach_calculation(a, calc.energy, calc.forces, calc.stress, calc.stress_unit, calculation_id=calc.id)
        return atoms


# Raw DBAPI bytes for the array columns: LargeBinary's per-value result processing costs more than decoding.
_ARRAY_COLUMNS = (Structure.id, Structure.nsites, *(type_coerce(c, NullType()).label(c.key)
                                                    for c in (Structure.cell, Structure.numbers, Structure.frac_coords)))

__all__ = ["FilterError", "Query", "V_STRUCTURES_COLUMNS", "v_structures"]
