"""Content-addressed, immutable splits: ``db.splits.create(...)``, ``db.splits.get(name)``.

A split is defined by a **recipe** (selection, strategy, parameters, seed, mode);
the fold of each structure comes from the strategy's class in :mod:`xtalbase.ml.splitters`
(a pure function of seed, group key and canonical hash), looked up by name in ``SPLITTERS``. The split's id is the
sha256 of the recipe and of the membership written as sorted
``exact_hash<TAB>fold`` lines, so it is the same on every backend and never
depends on row ids. Once written the split is sealed and database triggers
refuse any change (migration 0004).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.ml.split_strategies import ALGORITHM, SplitError, leakage, prototype_key
from xtalbase.ml.splitters import Splitter, as_utc, make_splitter
from xtalbase.platform.hashing import canonical_json, json_sha256, membership_hash, sha256_bytes, split_hash
from xtalbase.platform.repositories import chunks, named_row
from xtalbase.schema import Source, SourceProperty, Split, SplitMember, Structure

if TYPE_CHECKING:
    import pandas as pd
    from ase import Atoms
    from pymatgen.core import Structure as PmgStructure

    from xtalbase.platform.database import Database

#: ``by`` aliases for the structure columns people name in other ways.
BY_ALIASES = {
    "formula": "formula_reduced", "reduced_formula": "formula_reduced", "chemical_formula_reduced": "formula_reduced",
    "anonymous_formula": "formula_anonymous", "chemical_formula_anonymous": "formula_anonymous",
    "chemsys": "chemical_system", "elements": "chemical_system",
    "spacegroup": "spacegroup_number", "space_group": "spacegroup_number", "space_group_number": "spacegroup_number",
    "sg": "spacegroup_number",
}
#: Structure columns loaded for selection, grouping and predicates (everything but the arrays).
SCALAR_COLUMNS = (
    "id", "exact_hash", "canonical_hash", "hash_version", "formula_reduced", "formula_anonymous", "chemical_system",
    "nelements", "nsites", "a", "b", "c", "alpha", "beta", "gamma", "volume", "density", "spacegroup_number",
    "spacegroup_symbol", "crystal_system", "symprec", "created_at", "run_id",
)
_CHUNK = 20_000  # split_members rows per bulk insert (IN lists use repositories.chunks)


@dataclass(frozen=True, eq=False)
class SplitHandle:
    """A stored split. ``id`` is the content hash shown to users; ``pk`` the ``splits.id`` row key.

    ``counts`` maps fold name to number of structures; ``folds`` lists the fold
    names in order (``train``, ``val``, ``test`` or ``fold0``...).
    """

    db: "Database"
    pk: int
    id: str
    name: str
    strategy: str
    mode: str
    seed: int
    recipe: dict[str, Any]
    counts: dict[str, int]
    created_at: datetime
    run_id: int | None

    @classmethod
    def from_row(cls, db: "Database", row: Split) -> "SplitHandle":
        return cls(db, row.id, row.hash, row.name, row.strategy, row.mode, row.seed, dict(row.recipe),
                   {k: int(v) for k, v in row.counts.items()}, as_utc(row.created_at), row.run_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SplitHandle) and (self.id, self.name) == (other.id, other.name)

    def __hash__(self) -> int:
        return hash((self.id, self.name))

    def __repr__(self) -> str:
        return f"SplitHandle(name={self.name!r}, id={self.id[:12]!r}, counts={self.counts})"

    @property
    def folds(self) -> list[str]:
        """Fold names in order."""
        return list(self.recipe.get("folds") or self.counts)

    def summary(self) -> dict[str, Any]:
        """``id``, ``name``, ``recipe``, ``counts`` and the rest, ready for JSON."""
        return {"id": self.id, "name": self.name, "strategy": self.strategy, "mode": self.mode, "seed": self.seed,
                "recipe": self.recipe, "counts": self.counts, "n_members": sum(self.counts.values()),
                "created_at": self.created_at.isoformat() if self.created_at else None, "run_id": self.run_id}

    def members(self) -> dict[int, str]:
        """Structure id -> fold name, for every member."""
        stmt = select(SplitMember.structure_id, SplitMember.fold).where(SplitMember.split_id == self.pk)
        with self.db.session() as s:
            return {sid: fold for sid, fold in s.execute(stmt)}

    def _check_fold(self, fold: str | None) -> None:
        if fold is not None and fold not in self.folds:
            raise SplitError(f"split {self.name!r} has no fold {fold!r}; its folds are {', '.join(self.folds)}")

    def ids(self, fold: str | None = None) -> list[int]:
        """Sorted structure ids in ``fold`` (every member when ``None``)."""
        self._check_fold(fold)
        stmt = select(SplitMember.structure_id).where(SplitMember.split_id == self.pk).order_by(SplitMember.structure_id)
        if fold is not None:
            stmt = stmt.where(SplitMember.fold == fold)
        with self.db.session() as s:
            return list(s.scalars(stmt))

    def frame(self, fold: str | None = None) -> "pd.DataFrame":
        """One row per member: ``structure_id``, ``fold``, hashes, formulas, ``prototype``, symmetry, lattice."""
        import pandas as pd

        self._check_fold(fold)
        cols = [Structure.__table__.c[c] for c in SCALAR_COLUMNS]
        stmt = (select(SplitMember.fold, *cols).join(Structure, Structure.id == SplitMember.structure_id)
                .where(SplitMember.split_id == self.pk).order_by(Structure.id))
        if fold is not None:
            stmt = stmt.where(SplitMember.fold == fold)
        with self.db.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame.from_records(rows, columns=["fold", *SCALAR_COLUMNS]).rename(columns={"id": "structure_id"})
        df.insert(0, "structure_id", df.pop("structure_id"))
        df.insert(3, "prototype", [prototype_key(a, n) for a, n in zip(df["formula_anonymous"], df["spacegroup_number"])])
        return df

    def rows(self, fold: str | None = None) -> Iterable[Structure]:
        """Stored ``Structure`` rows of ``fold`` (all folds when ``None``) by id, read in chunks."""
        for chunk in chunks(self.ids(fold)):
            with self.db.session() as s:
                yield from s.scalars(select(Structure).where(Structure.id.in_(chunk)).order_by(Structure.id))

    def structures(self, fold: str | None = None) -> list["PmgStructure"]:
        """pymatgen ``Structure`` objects of ``fold``, ordered by structure id."""
        from xtalbase.platform.convert import to_pymatgen

        return [to_pymatgen(r) for r in self.rows(fold)]

    def atoms(self, fold: str | None = None) -> list["Atoms"]:
        """ASE ``Atoms`` of ``fold``, ordered by structure id.

        ``info`` holds ``structure_id`` (also as ``xtalbase_id``, as ``db.query().atoms()`` does),
        ``canonical_hash`` and ``fold``; a structure with a calculation carries it as a single-point
        calculator (energy eV, forces eV/Å, stress eV/Å³), as in the ``extxyz`` export, chosen as
        :mod:`xtalbase.platform.repositories.structures` documents.
        """
        from xtalbase.ml.export import member_atoms, members
        from xtalbase.platform.convert import identity_info

        out = []
        for m in members(self, fold, calculations=True):
            atoms = member_atoms(m)
            atoms.info.update(identity_info(m.row.id))
            out.append(atoms)
        return out

    def check(self, examples: int = 5) -> dict[str, Any]:
        """Leakage report: values of each identity key found in more than one fold; see :func:`leakage`."""
        df = self.frame()
        report = leakage(df["fold"].tolist(), {k: df[k].astype(str).tolist() for k in LEAKAGE_KEYS}, examples=examples)
        return {"split": self.name, "id": self.id, "n_members": len(df), "keys": report,
                "leaked": any(v["values"] for v in report.values())}

    def export(self, directory: str, format: str = "cdvae-csv", **options: Any) -> dict[str, Any]:
        """Write the split to ``directory`` in ``format`` with a ``manifest.json``; returns the manifest."""
        from xtalbase.ml.export import export_split

        return export_split(self, directory, format, **options)


LEAKAGE_KEYS = ("canonical_hash", "formula_reduced", "chemical_system", "prototype")


class SplitStore:
    """Create, load, list and import splits of one database (``db.splits``)."""

    def __init__(self, db: "Database", *, cdvae_matcher: Any = None) -> None:
        self.db = db
        # ml may not import ingest (layer rule): the matcher of CDVAE rows is handed in by xtalbase.api
        self._cdvae_matcher = cdvae_matcher

    # ------------------------------------------------------------------ read
    def get(self, name: str) -> SplitHandle:
        """The split called ``name``; raises :class:`NotFound` naming the known splits otherwise."""
        with self.db.session() as s:
            return SplitHandle.from_row(self.db, named_row(s, Split, name, "split"))

    def list(self) -> list[dict[str, Any]]:
        """Every split: name, id, strategy, mode, seed, counts, created_at, oldest first."""
        with self.db.session() as s:
            return [SplitHandle.from_row(self.db, r).summary() for r in s.scalars(select(Split).order_by(Split.id))]

    def __contains__(self, name: str) -> bool:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(Split).where(Split.name == name)) > 0

    # ---------------------------------------------------------------- create
    def create(
        self,
        name: str,
        *,
        strategy: str,
        by: str | None = None,
        fractions: Sequence[float] | None = (0.6, 0.2, 0.2),
        k: int | None = None,
        seed: int = 0,
        filter: str | None = None,
        ids: Sequence[int] | None = None,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        mode: str = "stable",
        cut: int | str | datetime | None = None,
        **params: Any,
    ) -> SplitHandle:
        """Assign the selected structures to folds and store the split (immutable).

        Parameters
        ----------
        name : unique split name.
        strategy : a name in :data:`xtalbase.ml.splitters.SPLITTERS`: ``random``, ``stratified``,
            ``group``, ``kfold``, ``time`` or a registered one.
        by : grouping/stratum column: a structure column (``formula_reduced``,
            ``chemical_system``, ``prototype``, ``spacegroup_number``, ``crystal_system``,
            ...) or a source property name (``heat_ref``). Defaults: ``formula_reduced``
            for ``group``, ``crystal_system`` for ``stratified``; optional for ``kfold``.
        fractions : train [val] test fractions (ignored by ``kfold``).
        k : folds of ``kfold``.
        seed : hash key; same seed, same folds.
        filter, ids, predicate : selection (intersected when several are given): an
            OPTIMADE filter (``db.query``), explicit structure ids, or a Python callable
            taking a dict of the scalar structure columns (see :data:`SCALAR_COLUMNS`,
            plus ``prototype``) and returning True to keep the structure.
        mode : ``stable`` (default; growth never moves a structure) or ``exact``.
        cut : ``time`` only: a run id (structures of later runs are the test side) or
            an ISO timestamp (structures created after it). Default: the run boundary
            whose later share is closest to the test fraction, resolved now and
            stored in the recipe.
        params : further parameters of a registered strategy's class.

        Creating an existing name with the same recipe returns the stored split;
        with another recipe it raises :class:`SplitError`.
        """
        splitter = make_splitter(strategy, by=by, fractions=fractions, k=k, cut=cut, seed=seed, mode=mode,
                                 **params)
        recipe = self._recipe(splitter, filter, ids, predicate)
        existing = self._existing(name, recipe)
        if existing is not None:
            return existing
        rows = self._select(filter, ids, predicate)
        if not rows["id"]:
            raise SplitError(f"split {name!r}: the selection matches no structures")
        key_column = recipe["resolved"]["by"]
        keys = self._keys(rows, key_column) if key_column is not None else None
        inputs, resolved = splitter.inputs(rows, keys)
        recipe["resolved"].update(resolved)
        folds, names = splitter.assign(rows["canonical_hash"], **inputs)
        fold_of = [names[f] for f in folds]
        counts = {n: int(c) for n, c in zip(names, np.bincount(folds, minlength=len(names)))}
        recipe["folds"] = list(names)
        content = split_hash(recipe, membership_hash(zip(rows["exact_hash"], fold_of)))
        try:
            return self._write(name, recipe, content, counts, rows["id"], fold_of)
        except IntegrityError:
            # another process stored the same name meanwhile: same recipe returns it, else explain
            existing = self._existing(name, recipe)
            if existing is None:
                raise
            return existing

    def _recipe(self, splitter: Splitter, filter: str | None, ids: Sequence[int] | None,
                predicate: Callable | None) -> dict[str, Any]:
        """The splitter's own recipe plus the selection, the hash algorithm and the resolved ``by``."""
        recipe = splitter.recipe()
        resolved_by = splitter.key_column
        if resolved_by is not None:
            resolved_by = BY_ALIASES.get(resolved_by, resolved_by)
        selection: dict[str, Any] = {"filter": filter}
        if ids is not None:
            id_list = sorted({int(i) for i in ids})
            selection["ids"] = {"n": len(id_list), "sha256": json_sha256(id_list)}
        if predicate is not None:
            selection["predicate"] = _describe_callable(predicate)
        recipe.update(selection=selection, algorithm=ALGORITHM, resolved={"by": resolved_by, "cut": None})
        return recipe

    def _existing(self, name: str, recipe: dict[str, Any]) -> SplitHandle | None:
        """The stored split ``name`` when its recipe equals ``recipe``; None when absent; else an error."""
        try:
            handle = self.get(name)
        except NotFound:
            return None
        stored = {k: v for k, v in handle.recipe.items() if k not in ("resolved", "folds")}
        wanted = {k: v for k, v in recipe.items() if k not in ("resolved", "folds")}
        if canonical_json(stored) != canonical_json(wanted):
            diff = sorted(k for k in set(stored) | set(wanted) if canonical_json(stored.get(k)) != canonical_json(wanted.get(k)))
            detail = "; ".join(f"{k}: stored {stored.get(k)!r}, given {wanted.get(k)!r}" for k in diff)
            raise SplitError(f"split {name!r} already exists with a different recipe ({detail}); "
                             "splits are immutable: choose a new name")
        return handle

    def _select(self, filter: str | None, ids: Sequence[int] | None, predicate: Callable | None) -> dict[str, list]:
        """Scalar columns (column -> list, ordered by id) of the selected structures."""
        stmt = select(*[Structure.__table__.c[c] for c in SCALAR_COLUMNS]).order_by(Structure.id)
        with self.db.engine.connect() as conn:  # Core: no ORM row bookkeeping for large selections
            records = [tuple(r) for r in conn.execute(stmt)]
        keep: set[int] | None = None
        if ids is not None:
            wanted = {int(i) for i in ids}
            present = {r[0] for r in records}
            missing = sorted(wanted - present)
            if missing:
                raise SplitError(f"{len(missing)} structure ids not in the database: {missing[:10]}")
            keep = wanted
        if filter is not None:
            matched = set(_filter_ids(self.db, filter))
            keep = matched if keep is None else keep & matched
        if keep is not None:
            records = [r for r in records if r[0] in keep]
        if predicate is not None:
            kept = []
            for r in records:
                row = dict(zip(SCALAR_COLUMNS, r))
                row["prototype"] = prototype_key(row["formula_anonymous"], row["spacegroup_number"])
                if predicate(row):
                    kept.append(r)
            records = kept
        columns = list(zip(*records)) if records else [() for _ in SCALAR_COLUMNS]
        return {c: list(v) for c, v in zip(SCALAR_COLUMNS, columns)}

    def _keys(self, rows: dict[str, list], column: str) -> list[str]:
        """Group/stratum key per selected structure from a structure column or a source property."""
        if column == "prototype":
            return [prototype_key(a, n) for a, n in zip(rows["formula_anonymous"], rows["spacegroup_number"])]
        if column in rows and column not in ("id", "created_at", "run_id"):
            values = rows[column]
        else:
            values = self._property_values(rows["id"], column)
        missing = [sid for sid, v in zip(rows["id"], values) if v is None]
        if missing:
            raise SplitError(f"{len(missing)} selected structures have no value for {column!r} "
                             f"(e.g. structure ids {missing[:5]}): narrow the selection or pick another --by")
        return [_key_text(v) for v in values]

    def _property_values(self, ids: list[int], name: str) -> list[Any]:
        """Value of source property ``name`` per structure (from its lowest-id source carrying it)."""
        stmt = (select(Source.structure_id, Source.id, SourceProperty.value_float, SourceProperty.value_text)
                .join(SourceProperty, SourceProperty.source_id == Source.id).where(SourceProperty.name == name))
        with self.db.session() as s:
            found = s.execute(stmt).all()
            if not found:
                names = list(s.scalars(select(SourceProperty.name).distinct().order_by(SourceProperty.name).limit(30)))
                columns = sorted(set(SCALAR_COLUMNS) - {"id", "created_at", "run_id"}) + ["prototype"]
                raise SplitError(f"unknown --by column {name!r}: not a structure column ({', '.join(columns)}) "
                                 f"nor a stored source property ({', '.join(names) or 'none stored'})")
        best: dict[int, tuple[int, Any]] = {}
        for sid, src, vf, vt in found:
            value = vt if vt is not None else vf
            if value is not None and (sid not in best or src < best[sid][0]):
                best[sid] = (src, value)
        return [best[i][1] if i in best else None for i in ids]

    def _write(self, name: str, recipe: dict[str, Any], content: str, counts: dict[str, int],
               ids: list[int], folds: list[str]) -> SplitHandle:
        with self.db.run("split", {"name": name, "recipe": recipe}) as run:
            s = run.session
            row = Split(name=name, hash=content, strategy=recipe["strategy"], recipe=recipe, seed=recipe["seed"],
                        mode=recipe["mode"], counts=counts, sealed=False, run_id=run.id)
            s.add(row)
            s.flush()
            write_members(s, row.id, ids, folds)
            s.execute(update(Split).where(Split.id == row.id).values(sealed=True))
            run.link_output("split", row.id, label=name, sha256=content)
            run.summary.update({"split": name, "id": content, "counts": counts})
            s.flush()
            handle = SplitHandle(self.db, row.id, content, name, row.strategy, row.mode, row.seed, recipe, counts,
                                 row.created_at, run.id)
        return handle

    # ---------------------------------------------------------------- import
    def import_cdvae(self, name: str, directory: str, **options: Any) -> tuple[SplitHandle, dict[str, Any]]:
        """Rebuild a published split from CDVAE CSVs by canonical hash; see :func:`xtalbase.ml.split_import.import_cdvae`."""
        from xtalbase.ml.split_import import import_cdvae

        if self._cdvae_matcher is None:
            raise XtalbaseError("importing a CDVAE split needs ingest's row matcher: open the database with xtalbase.connect()")
        return import_cdvae(self, name, directory, matcher=self._cdvae_matcher, **options)

    def store_imported(self, name: str, recipe: dict[str, Any], ids: list[int], folds: list[str],
                       exact_hashes: list[str], fold_names: list[str]) -> SplitHandle:
        """Store a membership decided elsewhere (an import) under ``recipe``; same-recipe re-imports return it."""
        recipe = dict(recipe, folds=list(fold_names), resolved={"by": None, "cut": None})
        existing = self._existing(name, recipe)
        if existing is not None:
            return existing
        counts = {f: 0 for f in fold_names}
        for f in folds:
            counts[f] += 1
        content = split_hash(recipe, membership_hash(zip(exact_hashes, folds)))
        return self._write(name, recipe, content, counts, ids, folds)


def write_members(session: Any, split_pk: int, ids: Sequence[int], folds: Sequence[str]) -> None:
    """Insert ``split_members`` rows in chunks inside the caller's transaction (COPY on PostgreSQL, executemany on SQLite)."""
    from xtalbase.platform.repositories.bulk import bulk_insert

    conn = session.connection()
    for start in range(0, len(ids), _CHUNK):
        bulk_insert(conn, SplitMember.__table__, ({"split_id": split_pk, "structure_id": int(i), "fold": f}
                                                  for i, f in zip(ids[start:start + _CHUNK], folds[start:start + _CHUNK])), None)


def _filter_ids(db: "Database", filter: str) -> list[int]:
    return list(db.query(filter).ids())


def _describe_callable(fn: Callable) -> dict[str, Any]:
    """Name and source hash of a predicate, so a recipe records which code selected its structures."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = repr(fn)
    return {"name": getattr(fn, "__qualname__", repr(fn)), "source_sha256": sha256_bytes(source.encode())}


def _key_text(value: Any) -> str:
    """A backend-independent text form of a key value (floats by repr, so 1.0 and 1 differ from '1')."""
    if isinstance(value, float):
        return repr(value)
    return str(value)
