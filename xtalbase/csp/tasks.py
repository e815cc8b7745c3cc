"""Any stored split as a CSP benchmark: the task is, for each structure of a fold, its atoms → its structure.

The model sees the reduced composition and atom count of each test structure (the cell's atomic numbers, in the
stored order; no coordinates, no lattice). The split's content hash travels with every result, so two results
are comparable exactly when their hashes are equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from xtalbase.platform.convert import StructureArrays, row_arrays
from xtalbase.platform.repositories.csp import source_ids

if TYPE_CHECKING:
    from xtalbase.ml.splits import SplitHandle
    from xtalbase.platform.database import Database

#: Selection of the MP-20-like benchmark: stored Materials Project structures with at most this many sites.
MP20_MAX_SITES = 20


@dataclass(frozen=True)
class Target:
    """One structure of a fold: its id, its source id (``material_id`` where the source has one) and its arrays."""

    structure_id: int
    name: str
    reference: StructureArrays

    @property
    def numbers(self) -> Any:
        """What the model is given: the atomic numbers of the cell."""
        return self.reference.numbers


@dataclass(frozen=True)
class CspTask:
    """A fold of a stored split as a CSP task."""

    split: "SplitHandle"
    fold: str
    targets: tuple[Target, ...]

    @property
    def split_hash(self) -> str:
        """The split's content hash (``splits.hash``)."""
        return self.split.id

    def by_name(self) -> dict[str, Target]:
        """Targets by every name they are known by: source ids and the structure id as text."""
        out: dict[str, Target] = {}
        for t in self.targets:
            out[str(t.structure_id)] = t
            for n in t.name.split("|"):
                out.setdefault(n, t)
        return out


def fold_structures(split: "SplitHandle", fold: str) -> list[StructureArrays]:
    """The structures of ``fold`` as arrays, by structure id (what a model is fitted on)."""
    return [row_arrays(r) for r in split.rows(fold)]


def load_task(db: "Database", split: "SplitHandle", fold: str = "test") -> CspTask:
    """The targets of ``fold`` of ``split``, ordered by structure id."""
    rows = list(split.rows(fold))
    with db.session() as s:
        names = source_ids(s, [r.id for r in rows])
    targets = tuple(Target(r.id, "|".join(names.get(r.id, [])) or str(r.id), row_arrays(r)) for r in rows)
    return CspTask(split, fold, targets)


def mp20_like(splits: Any, name: str, *, max_sites: int = MP20_MAX_SITES, source: str = "MP", seed: int = 0,
              fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> "SplitHandle":
    """An MP-20-like benchmark split: stored ``source`` structures with ≤ ``max_sites`` sites, grouped by reduced formula
    (no composition's polymorphs straddle folds). ``splits`` is ``db.splits``."""
    filter_ = f'_xtalbase_source = "{source}" AND nsites <= {int(max_sites)}'
    return splits.create(name, strategy="group", by="formula_reduced", fractions=tuple(fractions), seed=seed, filter=filter_)


def perov5(splits: Any, name: str, *, seed: int = 0, fractions: Sequence[float] = (0.6, 0.2, 0.2),
           source: str = "perov5") -> "SplitHandle":
    """The Perov-5 benchmark split of the stored ``source`` rows (ingest with ``source="perov5"``, or from a path
    naming ``perov5``): 60/20/20 grouped by reduced formula."""
    return splits.create(name, strategy="group", by="formula_reduced", fractions=tuple(fractions), seed=seed,
                         filter=f'_xtalbase_source = "{source}"')
