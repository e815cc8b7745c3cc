"""The XRD builder: find structures without a pattern for a recipe, compute them in batches, write them.

Shaped like a maggma Builder: :func:`missing_structures` reads the sources, :func:`compute_chunk`
is pure (arrays in, peak arrays out; it runs in worker processes through
:class:`~xtalbase.platform.runner.Runner`), :func:`write_patterns` writes one batch per transaction.
Inserts skip (structure, recipe) pairs that already exist, so re-runs and concurrent runs are
idempotent, and a killed run loses at most its unfinished batch. A structure the engine cannot
compute is stored in ``xrd_failures`` and skipped by later runs unless they retry failures.

Stored patterns are never recomputed: a recipe's hash includes the physics version, so a pattern
cannot go stale, and predictions refer to pattern ids.
"""

from __future__ import annotations

import time
from itertools import repeat
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
from sqlalchemy import Connection, delete, exists, select

from xtalbase.errors import XtalbaseError
from xtalbase.platform.config import resolve_scheduler
from xtalbase.platform.repositories import IN_CHUNK as ID_CHUNK
from xtalbase.platform.repositories import insert_ignore_statement
from xtalbase.platform.repositories.bulk import bulk_insert, insert_tuples
from xtalbase.schema import Structure, XrdFailure, XrdPattern, XrdPeak, XrdRecipe
from xtalbase.schema.arrays import pack
from xtalbase.xrd.engine import Pattern

if TYPE_CHECKING:
    from xtalbase.platform.database import Database

DEFAULT_BATCH = 2000


def compute_missing(db: "Database", recipe: XrdRecipe | dict[str, Any] | None = None, *, structure_ids: Sequence[int] | None = None,
                    workers: int = 1, scheduler: str | None = None, batch_size: int = DEFAULT_BATCH, hkl: bool = False,
                    progress: Any = None, retry_failed: bool = False) -> dict[str, Any]:
    """Compute and store patterns (and ``xrd_peaks`` rows) for structures that lack one for ``recipe``.

    Parameters
    ----------
    recipe : XrdRecipe or dict, optional
        A stored recipe, or keyword arguments of :func:`get_or_create_recipe` (``radiation``,
        ``wavelength``, ``two_theta``, ``merge_tol``...); default Cu Kα, 2θ 0-90°.
    structure_ids : sequence of int, optional
        Only these structures (default: every structure in the database).
    workers : int
        Worker processes computing batches (the parent writes).
    scheduler : str, optional
        A ``dask.distributed`` scheduler whose workers compute the batches instead (default
        ``$XTALBASE_DASK_SCHEDULER``; ``""``: local processes). Only this process writes.
    batch_size : int
        Structures per computed and written batch.
    hkl : bool
        Also store ``hkl_families`` per peak.
    progress : callable, optional
        Called as ``progress(done, total)`` after each written batch.
    retry_failed : bool
        Also try structures that failed for this recipe before (``xrd_failures``); skipped otherwise.

    Returns
    -------
    dict
        ``run_id``, ``recipe_id``, ``recipe_hash``, ``missing`` (found without a pattern and, unless
        retried, without a stored failure), ``computed`` (patterns written), ``failed`` (list of
        ``{"structure_id", "code", "reason"}``, also stored in ``xrd_failures``), ``skipped_failed``
        (structures left out for an earlier failure), ``seconds``.
    """
    from xtalbase.platform.runner import Runner
    from xtalbase.xrd.recipe import get_or_create_recipe, recipe_options

    db.require_schema()
    with db.session() as s:
        if isinstance(recipe, XrdRecipe):
            rec = s.get(XrdRecipe, recipe.id)
        else:
            rec = get_or_create_recipe(s, **(recipe or {}))
        s.commit()
        recipe_id, recipe_hash, options = rec.id, rec.hash, recipe_options(rec)
    if batch_size < 1:
        raise XtalbaseError(f"batch size must be >= 1, got {batch_size}")
    cluster = resolve_scheduler(scheduler)  # where it ran, recorded ($XTALBASE_DASK_SCHEDULER too); the runner resolves the same
    params = {"recipe_id": recipe_id, "recipe_hash": recipe_hash, "workers": None if cluster else workers,
              "scheduler": cluster, "batch_size": batch_size, "hkl": hkl,
              "structure_ids": len(structure_ids) if structure_ids is not None else "all", "retry_failed": retry_failed}
    t0 = time.perf_counter()
    with db.run("xrd", params) as run:
        run.link_input("xrd_recipe", recipe_id, sha256=recipe_hash)
        missing = missing_structures(db, recipe_id, structure_ids)
        failed_before = [sid for sid, failed in missing if failed]
        todo = [sid for sid, failed in missing if retry_failed or not failed]
        summary: dict[str, Any] = {"run_id": run.id, "recipe_id": recipe_id, "recipe_hash": recipe_hash, "missing": len(todo),
                                   "computed": 0, "failed": [], "skipped_failed": 0 if retry_failed else len(failed_before)}
        batches = ((None, (load_structure_arrays(db, todo[lo:lo + batch_size]), options, hkl))
                   for lo in range(0, len(todo), batch_size))
        with Runner(compute_chunk, workers=workers, scheduler=scheduler, name="xrd") as runner:
            done = 0
            for _, (ids, (patterns, failures)) in runner.map(batches):
                with db.engine.begin() as conn:
                    summary["computed"] += write_patterns(conn, run.id, recipe_id, ids, patterns)
                    write_failures(conn, run.id, recipe_id, ids, failures)
                summary["failed"].extend(failures)
                done += len(ids) + len(failures)
                if progress is not None:
                    progress(done, len(todo))
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        run.summary = {k: v for k, v in summary.items() if k != "failed"} | {"failed": summary["failed"][:100], "n_failed": len(summary["failed"])}
    return summary


def missing_structures(db: "Database", recipe_id: int, structure_ids: Sequence[int] | None = None) -> list[tuple[int, bool]]:
    """``(id, has a stored failure for the recipe)`` of the structures without a pattern for ``recipe_id``
    (ascending id), optionally among ``structure_ids``: one query answers both."""
    has_pattern = exists().where(XrdPattern.structure_id == Structure.id, XrdPattern.recipe_id == recipe_id)
    failed = exists().where(XrdFailure.structure_id == Structure.id, XrdFailure.recipe_id == recipe_id)
    stmt = select(Structure.id, failed).where(~has_pattern).order_by(Structure.id)
    with db.session() as s:
        if structure_ids is None:
            return [(sid, bool(f)) for sid, f in s.execute(stmt)]
        wanted = sorted({int(i) for i in structure_ids})
        found: list[tuple[int, bool]] = []
        for lo in range(0, len(wanted), ID_CHUNK):
            found.extend((sid, bool(f)) for sid, f in s.execute(stmt.where(Structure.id.in_(wanted[lo:lo + ID_CHUNK]))))
        return sorted(found)


def load_structure_arrays(db: "Database", ids: Sequence[int]) -> list[tuple[int, tuple]]:
    """``(id, (cell, numbers, frac_coords, occupancy or None))`` of stored structures, decoded from the array columns.

    Disordered structures (``site_occupancies``) become one entry per (site, element) with its occupancy.
    """
    from ase.data import atomic_numbers

    from xtalbase.platform.convert import row_arrays

    cols = (Structure.id, Structure.nsites, Structure.cell, Structure.numbers, Structure.frac_coords, Structure.site_occupancies)
    out = []
    with db.session() as s:
        for lo in range(0, len(ids), ID_CHUNK):
            for row in s.execute(select(*cols).where(Structure.id.in_(list(ids[lo:lo + ID_CHUNK]))).order_by(Structure.id)):
                cell, numbers, frac = row_arrays(row)
                occ = None
                if row.site_occupancies:
                    z, f, occ_list = [], [], []
                    for site, species in enumerate(row.site_occupancies):
                        for element, amount in species.items():
                            z.append(atomic_numbers[element])
                            f.append(frac[site])
                            occ_list.append(float(amount))
                    numbers, frac, occ = np.array(z), np.array(f), np.array(occ_list)
                out.append((row.id, (cell, numbers, frac, occ)))
    return out


def compute_chunk(items: list[tuple[int, tuple]], options: dict[str, Any], hkl: bool = False) -> tuple[list[int], tuple[list[Pattern], list[dict]]]:
    """Pure: patterns of ``items`` (from :func:`load_structure_arrays`); structures the engine rejects are reported, not raised."""
    from xtalbase.xrd import compute_xrd
    from xtalbase.xrd.constants import scattering_table

    _, known = scattering_table()
    good, failures = [], []
    for sid, arrays in items:
        numbers = np.asarray(arrays[1])
        if len(numbers) == 0:
            failures.append({"structure_id": sid, "code": "no_sites", "reason": "structure has no sites"})
        elif not np.isfinite(arrays[0]).all() or abs(np.linalg.det(arrays[0])) < 1e-6:
            failures.append({"structure_id": sid, "code": "bad_cell", "reason": "degenerate or non-finite cell"})
        elif (numbers < 1).any() or (numbers >= len(known)).any() or not known[numbers].all():
            bad = sorted({int(z) for z in numbers if not (0 < z < len(known) and known[z])})
            failures.append({"structure_id": sid, "code": "no_scattering_factors",
                             "reason": f"no X-ray scattering factors for atomic number(s) {bad}"})
        else:
            good.append((sid, arrays))
    if not good:
        return [], ([], failures)
    from xtalbase.platform.convert import StructureArrays

    structures = []
    for _, (cell, numbers, frac, occ) in good:
        arrays = _Occupied(cell, numbers, frac, occ)
        structures.append(arrays if occ is not None else StructureArrays(cell, numbers, frac))
    try:
        patterns = compute_xrd(structures, hkl=hkl, **options)
    except Exception:  # noqa: BLE001 - one structure the engine chokes on must not fail its whole batch
        ids, patterns = [], []
        for (sid, _), structure in zip(good, structures):
            try:
                patterns.extend(compute_xrd([structure], hkl=hkl, **options))
                ids.append(sid)
            except Exception as exc:  # noqa: BLE001 - stored as this structure's failure
                failures.append({"structure_id": sid, "code": "engine_error", "reason": f"{type(exc).__name__}: {str(exc)[:300]}"})
        return ids, (patterns, failures)
    return [sid for sid, _ in good], (patterns, failures)


class _Occupied:
    """Arrays with per-entry occupancy (what :func:`compute_xrd` reads from a disordered structure)."""

    def __init__(self, cell: np.ndarray, numbers: np.ndarray, frac_coords: np.ndarray, occupancy: np.ndarray) -> None:
        self.cell, self.numbers, self.frac_coords, self.occupancy = cell, numbers, frac_coords, occupancy


def write_patterns(conn: Connection, run_id: int | None, recipe_id: int, structure_ids: Sequence[int], patterns: Sequence[Pattern]) -> int:
    """Insert computed patterns and their peak rows in the caller's transaction; existing (structure, recipe) pairs are skipped.

    Returns the number of patterns inserted.
    """
    if not patterns:
        return 0
    rows = [pattern_row(p, kind="computed", structure_id=sid, recipe_id=recipe_id, run_id=run_id) for sid, p in zip(structure_ids, patterns)]
    # COPY on PostgreSQL (pattern rows through a staging table, peaks straight in), executemany on SQLite
    inserted = bulk_insert(conn, XrdPattern.__table__, rows, ("structure_id", "recipe_id"), returning=("id", "structure_id"))
    by_structure = dict(zip(structure_ids, patterns))
    insert_tuples(conn, XrdPeak.__table__, PEAK_COLUMNS,
                  [row for pid, sid in inserted for row in peak_tuples(by_structure[sid], pid, recipe_id, sid)])
    return len(inserted)


def write_failures(conn: Connection, run_id: int | None, recipe_id: int, computed: Sequence[int],
                   failures: Sequence[dict[str, Any]]) -> None:
    """In the caller's transaction: drop the stored failures of structures now ``computed``, store ``failures``
    (from :func:`compute_chunk`), replacing an older failure of the same structure for this recipe."""
    table = XrdFailure.__table__
    redone = [*computed, *(f["structure_id"] for f in failures)]
    for lo in range(0, len(redone), ID_CHUNK):
        conn.execute(delete(table).where(table.c.recipe_id == recipe_id, table.c.structure_id.in_(redone[lo:lo + ID_CHUNK])))
    if failures:
        rows = [{"structure_id": f["structure_id"], "recipe_id": recipe_id, "reason": f["code"], "message": f["reason"],
                 "run_id": run_id} for f in failures]
        conn.execute(insert_ignore_statement(conn, table, ("structure_id", "recipe_id")), rows)


def pattern_row(p: Pattern, **fields: Any) -> dict[str, Any]:
    """Column values of an ``xrd_patterns`` row for ``p`` (peak arrays as float64 bytes)."""
    return {"npeaks": len(p.two_theta), "two_theta": pack(p.two_theta), "intensity": pack(p.intensity), "d_spacing": pack(p.d_spacing),
            "hkl_families": p.hkl_families, "wavelength": p.wavelength, **fields}


#: The columns of :func:`peak_tuples`, in order.
PEAK_COLUMNS = ("pattern_id", "rank", "recipe_id", "structure_id", "two_theta", "intensity", "d_spacing")


def peak_tuples(p: Pattern, pattern_id: int, recipe_id: int | None, structure_id: int | None) -> Iterator[tuple[Any, ...]]:
    """``xrd_peaks`` rows of one pattern as tuples of :data:`PEAK_COLUMNS`; rank 0 is the lowest 2θ."""
    n = len(p.two_theta)
    return zip(repeat(pattern_id, n), range(n), repeat(recipe_id, n), repeat(structure_id, n),
               p.two_theta.tolist(), p.intensity.tolist(), p.d_spacing.tolist())


def peak_rows_of(p: Pattern, pattern_id: int, recipe_id: int | None, structure_id: int | None) -> Iterator[dict[str, Any]]:
    """``xrd_peaks`` rows of one pattern as dictionaries; rank 0 is the lowest 2θ."""
    return (dict(zip(PEAK_COLUMNS, row)) for row in peak_tuples(p, pattern_id, recipe_id, structure_id))


