"""Datasets: named, hashed, immutable sets of structures; retraining sets extend a parent with reasons.

``db.datasets.create("v1", split="perov", fold="train")`` takes a fold of a split;
``db.datasets.extend("v1", "v2", ids=[...], reason="key-motif score", score={...})``
makes a child holding every member of ``v1`` (``inherited``) plus the additions,
each carrying its reason, optional score and source run. ``lineage("v2")``
walks back to the root. A dataset's hash is the sha256 of its members' sorted
exact hashes, so equal sets have equal hashes on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from sqlalchemy import func, select, update

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.platform.hashing import set_hash  # noqa: F401 - also this module's public name
from xtalbase.platform.repositories import chunks, named_row
from xtalbase.platform.repositories.bulk import bulk_insert
from xtalbase.schema import Dataset, DatasetMember, Run, Split, Structure

if TYPE_CHECKING:
    import pandas as pd

    from xtalbase.platform.database import Database

_CHUNK = 20_000  # dataset_members rows per bulk insert (IN lists use repositories.chunks)


class DatasetError(XtalbaseError):
    """A dataset request is invalid (unknown ids, nothing new to add, name taken by another set)."""


@dataclass(frozen=True, eq=False)
class DatasetHandle:
    """A stored dataset: ``name``, content ``hash``, ``n_members``, ``parent`` name, source ``split``/``fold``."""

    db: "Database"
    pk: int
    name: str
    hash: str
    n_members: int
    parent: str | None
    split: str | None
    fold: str | None
    description: str | None
    created_at: datetime
    run_id: int | None

    def __repr__(self) -> str:
        return f"DatasetHandle(name={self.name!r}, hash={self.hash[:12]!r}, n_members={self.n_members}, parent={self.parent!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetHandle) and (self.name, self.hash) == (other.name, other.hash)

    def __hash__(self) -> int:
        return hash((self.name, self.hash))

    def ids(self) -> list[int]:
        """Sorted structure ids of every member."""
        stmt = (select(DatasetMember.structure_id).where(DatasetMember.dataset_id == self.pk)
                .order_by(DatasetMember.structure_id))
        with self.db.session() as s:
            return list(s.scalars(stmt))

    def members(self) -> list[dict[str, Any]]:
        """One dict per member: ``structure_id``, ``inherited``, ``reason``, ``score``, ``source_run_id``."""
        stmt = select(DatasetMember).where(DatasetMember.dataset_id == self.pk).order_by(DatasetMember.structure_id)
        with self.db.session() as s:
            return [{"structure_id": m.structure_id, "inherited": m.inherited, "reason": m.reason, "score": m.score,
                     "source_run_id": m.source_run_id} for m in s.scalars(stmt)]

    def frame(self) -> "pd.DataFrame":
        """The members as a pandas DataFrame (columns as :meth:`members`)."""
        import pandas as pd

        return pd.DataFrame(self.members(), columns=["structure_id", "inherited", "reason", "score", "source_run_id"])

    def summary(self) -> dict[str, Any]:
        """Name, hash, counts and origin, ready for JSON."""
        return {"name": self.name, "hash": self.hash, "n_members": self.n_members, "parent": self.parent,
                "split": self.split, "fold": self.fold, "description": self.description,
                "created_at": self.created_at.isoformat() if self.created_at else None, "run_id": self.run_id}


class DatasetStore:
    """Create, extend, load and trace datasets of one database (``db.datasets``)."""

    def __init__(self, db: "Database") -> None:
        self.db = db

    def _handle(self, s: Any, row: Dataset) -> DatasetHandle:
        parent = s.scalar(select(Dataset.name).where(Dataset.id == row.parent_id)) if row.parent_id else None
        split = s.scalar(select(Split.name).where(Split.id == row.split_id)) if row.split_id else None
        return DatasetHandle(self.db, row.id, row.name, row.hash, row.n_members, parent, split, row.fold,
                             row.description, row.created_at, row.run_id)

    def get(self, name: str) -> DatasetHandle:
        """The dataset called ``name``; raises :class:`NotFound` naming known datasets otherwise."""
        with self.db.session() as s:
            return self._handle(s, named_row(s, Dataset, name, "dataset"))

    def list(self) -> list[dict[str, Any]]:
        """Every dataset's summary, oldest first."""
        with self.db.session() as s:
            return [self._handle(s, r).summary() for r in s.scalars(select(Dataset).order_by(Dataset.id))]

    def __contains__(self, name: str) -> bool:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(Dataset).where(Dataset.name == name)) > 0

    def create(self, name: str, *, split: str, fold: str, description: str | None = None) -> DatasetHandle:
        """A root dataset holding the structures of ``fold`` of ``split``; same request twice returns it."""
        from xtalbase.ml.splits import SplitStore

        handle = SplitStore(self.db).get(split)
        ids = handle.ids(fold)  # raises naming the folds when ``fold`` is not one
        if not ids:
            raise DatasetError(f"fold {fold!r} of split {split!r} is empty")
        existing = self._existing(name)
        if existing is not None:
            if (existing.split, existing.fold, existing.parent) != (split, fold, None):
                raise DatasetError(f"dataset {name!r} already exists (from {existing.split or existing.parent}:"
                                   f"{existing.fold}); datasets are immutable: choose a new name")
            return existing
        reason = f"fold {fold} of split {split} ({handle.id[:12]})"
        members = [{"structure_id": i, "inherited": False, "reason": reason, "score": None, "source_run_id": None}
                   for i in ids]
        return self._write(name, members, parent=None, split_pk=handle.pk, fold=fold, description=description,
                           params={"split": split, "split_id": handle.id, "fold": fold})

    def extend(
        self,
        name: str,
        new_name: str,
        *,
        ids: Sequence[int] | None = None,
        filter: str | None = None,
        reason: str | Mapping[int, str],
        score: float | Mapping[int, float] | None = None,
        source_run: int | None = None,
        description: str | None = None,
    ) -> DatasetHandle:
        """A child of ``name`` with its members plus new structures (by ``ids`` and/or OPTIMADE ``filter``).

        Each added member stores ``reason`` (required free text: one for all, or structure
        id -> text, e.g. the strategy, score and generator of each surrogate), ``score`` (one
        number for all, or structure id -> number) and ``source_run`` (the run that proposed
        it, e.g. a prediction run). Structures already in the parent stay inherited with
        their original reasons; the request fails when it adds nothing new.
        """
        if isinstance(reason, Mapping):
            if ids is None or {int(i) for i in ids} != {int(k) for k in reason} or \
                    any(not str(r).strip() for r in reason.values()):
                raise DatasetError("per-member reasons need one non-empty reason for each id added")
            reason = {int(k): str(v) for k, v in reason.items()}
        elif not reason or not reason.strip():
            raise DatasetError("extending a dataset needs a --reason saying why the structures are added")
        if ids is None and filter is None:
            raise DatasetError("give the structures to add: ids and/or a filter")
        parent = self.get(name)
        wanted: set[int] = {int(i) for i in ids} if ids is not None else set()
        if filter is not None:
            from xtalbase.ml.splits import _filter_ids

            wanted |= set(_filter_ids(self.db, filter))
        with self.db.session() as s:
            present = set()
            listed = sorted(wanted)
            for chunk in chunks(listed):
                present.update(s.scalars(select(Structure.id).where(Structure.id.in_(chunk))))
            if source_run is not None and s.get(Run, source_run) is None:
                raise DatasetError(f"source run {source_run} does not exist")
        missing = sorted(wanted - present)
        if missing:
            raise DatasetError(f"{len(missing)} structure ids not in the database: {missing[:10]}")
        inherited = parent.members()
        had = {m["structure_id"] for m in inherited}
        added = sorted(wanted - had)
        if isinstance(score, Mapping):
            unknown = sorted(set(map(int, score)) - wanted)
            if unknown:
                raise DatasetError(f"scores given for structures not being added: {unknown[:10]}")
        existing = self._existing(new_name)
        if existing is not None:
            same = existing.parent == name and sorted(m["structure_id"] for m in existing.members() if not m["inherited"]) == added
            if not same:
                raise DatasetError(f"dataset {new_name!r} already exists with other members; datasets are immutable: "
                                   "choose a new name")
            return existing
        if not added:
            raise DatasetError(f"nothing to add: all {len(wanted)} structures are already in {name!r}")
        rows = [dict(m, inherited=True) for m in inherited]
        for sid in added:
            value = score.get(sid, score.get(str(sid))) if isinstance(score, Mapping) else score  # type: ignore[union-attr]
            why = reason[sid] if isinstance(reason, Mapping) else reason
            rows.append({"structure_id": sid, "inherited": False, "reason": str(why).strip(),
                         "score": None if value is None else float(value), "source_run_id": source_run})
        return self._write(new_name, rows, parent=parent.pk, split_pk=None, fold=None, description=description,
                           params={"parent": name, "parent_hash": parent.hash, "added": len(added),
                                   "reason": "per member" if isinstance(reason, Mapping) else reason,
                                   "filter": filter, "source_run": source_run})

    def lineage(self, name: str) -> list[dict[str, Any]]:
        """The chain from ``name`` back to its root: name, hash, n_members, added, reasons (reason -> count)."""
        chain = []
        seen: set[str] = set()
        current: str | None = name
        while current is not None and current not in seen:
            seen.add(current)
            handle = self.get(current)
            members = handle.members()
            reasons: dict[str, int] = {}
            for m in members:
                if not m["inherited"]:
                    reasons[m["reason"] or ""] = reasons.get(m["reason"] or "", 0) + 1
            chain.append({**handle.summary(), "added": sum(reasons.values()), "reasons": reasons})
            current = handle.parent
        return chain

    def _existing(self, name: str) -> DatasetHandle | None:
        try:
            return self.get(name)
        except NotFound:
            return None

    def _write(self, name: str, members: list[dict[str, Any]], *, parent: int | None, split_pk: int | None,
               fold: str | None, description: str | None, params: dict[str, Any]) -> DatasetHandle:
        ids = [m["structure_id"] for m in members]
        with self.db.session() as s:
            exact = {}
            for chunk in chunks(ids):
                exact.update(s.execute(select(Structure.id, Structure.exact_hash).where(Structure.id.in_(chunk))).all())
        content = set_hash(exact.values())
        with self.db.run("dataset", {"name": name, **params}) as run:
            s = run.session
            row = Dataset(name=name, hash=content, parent_id=parent, split_id=split_pk, fold=fold,
                          description=description, n_members=len(members), sealed=False, run_id=run.id)
            s.add(row)
            s.flush()
            for start in range(0, len(members), _CHUNK):  # COPY on PostgreSQL
                bulk_insert(s.connection(), DatasetMember.__table__, [dict(m, dataset_id=row.id) for m in members[start:start + _CHUNK]], None)
            s.execute(update(Dataset).where(Dataset.id == row.id).values(sealed=True))
            run.link_output("dataset", row.id, label=name, sha256=content)
            run.summary.update({"dataset": name, "hash": content, "n_members": len(members)})
            pk = row.id
        with self.db.session() as s:
            return self._handle(s, s.get(Dataset, pk))

