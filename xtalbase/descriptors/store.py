"""Descriptor matrices of stored structures, computed once per (recipe, structure) and read back from the cache.

``DescriptorStore(db).frame("xenonpy", filter='elements HAS "O"')`` stores the recipe (once per content hash),
computes the vectors of the structures that have none under it, in chunks committed as they finish (an
interrupted run keeps what it computed), and returns a DataFrame indexed by structure id. Composition recipes
read ``structure_elements`` (so partial occupancies count); structural recipes decode the stored arrays.
A structure a recipe cannot describe (an element missing from a table, a cell CrystalNN cannot handle) gets a
row with the reason in ``error``: it is reported, not retried, and its vector is NaN in the frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from xtalbase.descriptors.recipes import PRESETS, Recipe, default_name, digest, from_spec, preset, spec
from xtalbase.errors import XtalbaseError
from xtalbase.platform.repositories import descriptors as repo

if TYPE_CHECKING:
    import pandas as pd

    from xtalbase.platform.database import Database

log = logging.getLogger(__name__)

#: Structures computed and committed together.
CHUNK = 2000
#: Structures per task of a structural recipe (a worker's unit of work).
BLOCK = 32


class DescriptorError(XtalbaseError):
    """Descriptors were asked for something that cannot be given (unknown structures, a failing recipe)."""


@dataclass(frozen=True)
class StoredRecipe:
    """A recipe and its stored row's id, name and hash."""

    id: int
    name: str
    hash: str
    recipe: Any

    def names(self) -> list[str]:
        """Feature names in column order."""
        return list(self.recipe.names())


@dataclass(frozen=True)
class DescriptorMatrix:
    """Vectors of ``ids`` in order (``values`` (n, p), NaN rows for failures), their ``names`` and the ``errors``."""

    ids: list[int]
    names: list[str]
    values: np.ndarray
    errors: dict[int, str]
    computed: int


def _compute_chunk(recipe: Recipe, items: list[Any], labels: list[int]) -> tuple[np.ndarray, dict[int, str]]:
    """Vectors of one chunk; when the batch fails, each item alone, so one bad record names itself."""
    try:
        return np.asarray(recipe.transform(items, labels=labels), dtype=float), {}
    except XtalbaseError:
        pass
    width = len(recipe.names())
    out = np.full((len(items), width), np.nan)
    errors: dict[int, str] = {}
    for i, (item, label) in enumerate(zip(items, labels)):
        try:
            out[i] = recipe.transform([item], labels=[label])[0]
        except XtalbaseError as exc:
            errors[label] = str(exc)
    return out, errors


class DescriptorStore:
    """Stored recipes and cached descriptor vectors of one database."""

    def __init__(self, db: "Database") -> None:
        self.db = db

    # ------------------------------------------------------------------ recipes
    def recipe(self, ref: Any = "xenonpy", **params: Any) -> StoredRecipe:
        """A recipe object, a preset name (with ``params`` overriding its parameters) or a stored recipe's
        id/name/hash prefix; stored when new."""
        if isinstance(ref, StoredRecipe):
            return ref if not params else self._store_recipe(from_spec(ref.recipe.kind, {**ref.recipe.to_dict(), **params}))
        if isinstance(ref, str) and ref in PRESETS:
            recipe = preset(ref, **params)
        elif isinstance(ref, (str, int)):
            with self.db.session() as s:
                row = repo.find_recipe(s, ref)
                recipe = from_spec(row.kind, {**row.params, **params})
        else:
            recipe = ref if not params else from_spec(ref.kind, {**ref.to_dict(), **params})
        return self._store_recipe(recipe)

    def _store_recipe(self, recipe: Recipe) -> StoredRecipe:
        from xtalbase.platform.provenance import code_version

        h = digest(recipe)
        with self.db.session() as s:
            row = repo.recipe_by_hash(s, h)
            if row is None:
                names = list(recipe.names())
                row = repo.add_recipe(s, {"hash": h, "name": default_name(recipe), "kind": recipe.kind, "version": int(recipe.version),
                                          "params": spec(recipe)["params"], "n_features": len(names), "names": names,
                                          "code_version": code_version()})
                s.commit()
            return StoredRecipe(row.id, row.name, row.hash, recipe)

    def recipes(self) -> list[dict[str, Any]]:
        """Every stored recipe: id, name, kind, version, n_features, hash, params."""
        with self.db.session() as s:
            return [{"id": r.id, "name": r.name, "kind": r.kind, "version": r.version, "n_features": r.n_features,
                     "hash": r.hash, "params": r.params} for r in repo.recipes(s)]

    # ------------------------------------------------------------------ vectors
    def matrix(self, recipe: Any, ids: Sequence[int], *, compute: bool = True, workers: int = 1, scheduler: str | None = None,
               retry_failed: bool = False, on_progress: Callable[[int, int], None] | None = None) -> DescriptorMatrix:
        """Descriptor vectors of structures ``ids`` (in that order); those not cached are computed and stored
        unless ``compute=False``, in which case they are an error. ``workers`` processes (or a Dask ``scheduler``)
        compute blocks of :data:`BLOCK` structures; the database is written by this process only. Structures stored
        with an error are not computed again unless ``retry_failed``."""
        stored = recipe if isinstance(recipe, StoredRecipe) else self.recipe(recipe)
        ids = [int(i) for i in ids]
        width = len(stored.names())
        with self.db.session() as s:
            repo.missing_structures(s, ids)
            found = repo.cached(s, stored.id, ids)
        # ascending ids: two processes describing overlapping sets insert in the same order (no deadlock on PostgreSQL)
        todo = sorted(i for i in set(ids) if i not in found or (retry_failed and found[i][0] is None))
        if todo and not compute:
            raise DescriptorError(f"{len(todo)} structure(s) have no {stored.name} descriptors yet (first: {todo[:5]}); "
                                  "compute them with `xtalbase describe` or compute=True")
        if todo:
            found.update(self._compute(stored, todo, on_progress, workers, scheduler, retry_failed))
        values = np.full((len(ids), width), np.nan)
        errors: dict[int, str] = {}
        for row, sid in enumerate(ids):
            vector, error = found[sid]
            if vector is not None:
                if len(vector) != 8 * width:
                    raise DescriptorError(f"structure {sid}: the cached {stored.name} vector has {len(vector) // 8} values, the "
                                          f"recipe {width}; the recipe's definition changed without a new version")
                values[row] = np.frombuffer(vector, dtype="<f8")
            else:
                errors[sid] = error or "no vector"
        return DescriptorMatrix(ids, stored.names(), values, errors, len(todo))

    def frame(self, recipe: Any = "xenonpy", ids: Sequence[int] | None = None, filter: str | None = None,
              *, compute: bool = True, workers: int = 1, scheduler: str | None = None, retry_failed: bool = False,
              on_progress: Callable[[int, int], None] | None = None) -> "pd.DataFrame":
        """A DataFrame of descriptor vectors (index ``structure_id``, one column per feature) of the structures
        ``ids`` or those matching the OPTIMADE ``filter`` (every structure when both are ``None``)."""
        import pandas as pd

        if ids is None:
            from xtalbase.platform.query import Query

            ids = Query(self.db, filter).ids()
        elif filter is not None:
            raise DescriptorError("give structure ids or a filter, not both")
        m = self.matrix(recipe, ids, compute=compute, workers=workers, scheduler=scheduler, retry_failed=retry_failed,
                        on_progress=on_progress)
        frame = pd.DataFrame(m.values, index=pd.Index(m.ids, name="structure_id"), columns=m.names)
        frame.attrs["errors"] = m.errors
        return frame

    def _compute(self, stored: StoredRecipe, todo: list[int], on_progress: Callable[[int, int], None] | None,
                 workers: int, scheduler: str | None, retry_failed: bool = False) -> dict[int, tuple[bytes | None, str | None]]:
        from xtalbase.platform.config import resolve_scheduler
        from xtalbase.platform.runner import Runner

        recipe = stored.recipe
        out: dict[int, tuple[bytes | None, str | None]] = {}
        params = {"recipe": stored.name, "recipe_hash": stored.hash, "structures": len(todo), "workers": workers,
                  "scheduler": resolve_scheduler(scheduler)}  # where it ran, $XTALBASE_DASK_SCHEDULER too
        with self.db.run("describe", params) as run, Runner(_compute_chunk, workers=workers, scheduler=scheduler,
                                                            name=f"describe {stored.name}") as runner:
            for start in range(0, len(todo), CHUNK):
                part = todo[start:start + CHUNK]
                with self.db.session() as s:
                    if recipe.input == "composition":
                        comps = repo.compositions(s, part)
                        items: list[Any] = [comps[i] for i in part]
                    else:
                        from xtalbase.platform.convert import row_arrays

                        rows = repo.structure_rows(s, part)
                        items = [row_arrays(rows[i]) for i in part]
                # composition recipes are vectorised: one block per chunk; structural ones are per structure
                size = len(part) if recipe.input == "composition" else BLOCK
                blocks = [(b, (recipe, items[b:b + size], part[b:b + size])) for b in range(0, len(part), size)]
                values = np.empty((len(part), len(stored.names())))
                errors: dict[int, str] = {}
                for b, (block_values, block_errors) in runner.map(blocks):
                    values[b:b + size] = block_values
                    errors.update(block_errors)
                new = {sid: (None, errors[sid]) if sid in errors else (np.ascontiguousarray(values[j], "<f8").tobytes(), None)
                       for j, sid in enumerate(part)}
                with self.db.session() as s:
                    if retry_failed:  # a retried failure is replaced, never kept beside its vector
                        repo.delete_failed(s, stored.id, part)
                    repo.add_values(s, [{"recipe_id": stored.id, "structure_id": sid, "vector": vec, "error": err, "run_id": run.id}
                                        for sid, (vec, err) in new.items()])
                    s.commit()
                    # another process may have stored some first: read back what is stored
                    out.update(repo.cached(s, stored.id, part))
                if on_progress:
                    on_progress(min(start + CHUNK, len(todo)), len(todo))
            failed = sum(1 for v in out.values() if v[0] is None)
            run.summary.update({"computed": len(todo), "failed": failed})
            if failed:
                log.warning("%s: %d of %d structures could not be described (see the frame's attrs['errors'])", stored.name, failed, len(todo))
        return out

