"""What an XRD model trains on: the structures of a split fold or dataset, their labels and XRD features.

Rows are always ordered by the structures' exact hash, so the matrices (and so the fitted model and its
artifact hash) do not depend on insertion order, database ids or the backend.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from sqlalchemy import func, select

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.ml.feature_recipe import featurize
from xtalbase.schema import Dataset, DatasetMember, Split, SplitMember, Structure, XrdPattern, XrdRecipe
from xtalbase.schema.arrays import unpack

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from xtalbase.platform.database import Database

#: Targets, their task and output names.
TARGETS: dict[str, tuple[str, list[str]]] = {
    "crystal_system": ("classification", ["crystal_system"]),
    "space_group": ("classification", ["space_group"]),
    "lattice": ("regression", ["a", "b", "c"]),
    "cubic_a": ("regression", ["a"]),
}


@dataclass
class Fold:
    """Structures of one fold with their features and labels, rows ordered by exact hash.

    ``ids`` (n,) structure ids, ``X`` (n, n_features) float32, ``y`` (n,) labels or (n, n_outputs) Å.
    """

    ids: np.ndarray
    X: np.ndarray
    y: np.ndarray
    exact_hashes: list[str]
    crystal_systems: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def set_hash(self) -> str:
        """The identity of the set of structures (:func:`xtalbase.platform.hashing.set_hash`, as datasets)."""
        from xtalbase.platform.hashing import set_hash

        return set_hash(self.exact_hashes)


def check_target(target: str) -> str:
    """The task (``classification``/``regression``) of ``target``; raises naming the known targets."""
    if target not in TARGETS:
        raise XtalbaseError(f"unknown target {target!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[target][0]


def get_split(session: "Session", name: str) -> Split:
    """The split named ``name`` or :class:`NotFound` listing the known names."""
    split = session.scalars(select(Split).where(Split.name == name)).first()
    if split is None:
        known = session.scalars(select(Split.name).order_by(Split.name).limit(20)).all()
        raise NotFound(f"no split named {name!r}; known splits: {', '.join(known) or 'none (create one with `xtalbase split create`)'}")
    return split


def get_dataset(session: "Session", name: str) -> Dataset:
    """The dataset named ``name`` or :class:`NotFound`."""
    ds = session.scalars(select(Dataset).where(Dataset.name == name)).first()
    if ds is None:
        raise NotFound(f"no dataset named {name!r}")
    return ds


def split_fold_ids(session: "Session", split: Split, fold: str) -> list[int]:
    """Structure ids of ``fold`` of ``split`` (unordered)."""
    return list(session.scalars(select(SplitMember.structure_id).where(SplitMember.split_id == split.id, SplitMember.fold == fold)))


def dataset_ids(session: "Session", dataset: Dataset) -> list[int]:
    """Structure ids of a dataset's members."""
    return list(session.scalars(select(DatasetMember.structure_id).where(DatasetMember.dataset_id == dataset.id)))


def resolve_recipe(session: "Session", recipe: str | int | None) -> XrdRecipe:
    """An XRD recipe by id, hash prefix or name; by default the one with the most computed patterns."""
    if recipe is None:
        row = session.execute(
            select(XrdPattern.recipe_id, func.count()).where(XrdPattern.kind == "computed", XrdPattern.recipe_id.is_not(None))
            .group_by(XrdPattern.recipe_id).order_by(func.count().desc(), XrdPattern.recipe_id)
        ).first()
        if row is None:
            raise NotFound("no computed XRD patterns in the database: run `xtalbase xrd compute` first")
        return session.get(XrdRecipe, row[0])
    text = str(recipe)
    found = session.get(XrdRecipe, int(text)) if text.isdigit() else None
    found = found or session.scalars(select(XrdRecipe).where((XrdRecipe.name == text) | XrdRecipe.hash.startswith(text))).first()
    if found is None:
        raise NotFound(f"no XRD recipe {text!r} (give an id, a name or a hash prefix; see `xtalbase xrd recipes`)")
    return found


def load_fold(session: "Session", ids: Sequence[int], target: str, recipe_id: int, feature_recipe: dict[str, Any],
              *, what: str = "structures") -> Fold:
    """Features and labels of ``ids`` for ``target``, ordered by exact hash.

    Raises :class:`XtalbaseError` naming how many structures lack a pattern for the recipe or a label.
    ``cubic_a`` keeps only cubic structures.
    """
    rows = _structure_rows(session, ids)
    if target == "cubic_a":
        rows = [r for r in rows if r.crystal_system == "cubic"]
    peaks = _peaks(session, [r.id for r in rows], recipe_id)
    missing = [r.id for r in rows if r.id not in peaks]
    if missing:
        raise XtalbaseError(f"{len(missing)} of {len(rows)} {what} have no computed XRD pattern for recipe {recipe_id} "
                            f"(e.g. structure {missing[0]}): run `xtalbase xrd compute` first")
    y = labels(rows, target)
    X = featurize([peaks[r.id] for r in rows], feature_recipe)
    return Fold(np.array([r.id for r in rows], dtype=np.int64), X, y, [r.exact_hash for r in rows],
                np.array([r.crystal_system for r in rows], dtype=object))


def labels(rows: Sequence[Any], target: str) -> np.ndarray:
    """Target values of structure rows: crystal system names, space-group numbers or lattice constants (Å)."""
    if target == "crystal_system":
        values = [r.crystal_system for r in rows]
    elif target == "space_group":
        values = [r.spacegroup_number for r in rows]
    else:
        lattice = conventional_lattice(rows)
        return lattice if target == "lattice" else lattice[:, 0]
    unlabelled = [r.id for r, v in zip(rows, values) if v is None]
    if unlabelled:
        raise XtalbaseError(f"{len(unlabelled)} structures have no {target} (symmetry not determined), e.g. structure {unlabelled[0]}")
    return np.asarray(values)


def conventional_lattice(rows: Sequence[Any]) -> np.ndarray:
    """Conventional-cell a, b, c (Å) of each row from spglib at the row's ``symprec``, (n, 3).

    The XRD pattern does not depend on the cell a structure was stored in; the conventional (standardised)
    cell is the one whose constants a pattern determines.
    """
    import warnings

    import spglib

    from xtalbase.platform.convert import row_arrays

    out = np.empty((len(rows), 3))
    for i, r in enumerate(rows):
        cell, numbers, frac = row_arrays(r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # spglib's notice about its error-handling mode
            std = spglib.standardize_cell((cell, frac, numbers), to_primitive=False, no_idealize=False, symprec=r.symprec or 0.01)
        lattice = std[0] if std is not None else cell
        out[i] = np.linalg.norm(lattice, axis=1)
    return out


def _structure_rows(session: "Session", ids: Sequence[int]) -> list[Any]:
    cols = (Structure.id, Structure.exact_hash, Structure.crystal_system, Structure.spacegroup_number, Structure.symprec,
            Structure.nsites, Structure.cell, Structure.numbers, Structure.frac_coords)
    rows: list[Any] = []
    ids = sorted(set(int(i) for i in ids))
    for chunk in _chunks(ids):
        rows.extend(session.execute(select(*cols).where(Structure.id.in_(chunk))).all())
    rows.sort(key=lambda r: r.exact_hash)
    return rows


def _peaks(session: "Session", ids: Sequence[int], recipe_id: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for chunk in _chunks(list(ids)):
        stmt = select(XrdPattern.structure_id, XrdPattern.two_theta, XrdPattern.intensity).where(
            XrdPattern.recipe_id == recipe_id, XrdPattern.kind == "computed", XrdPattern.structure_id.in_(chunk))
        for sid, tt, inten in session.execute(stmt):
            out[sid] = (unpack(tt), unpack(inten))
    return out


def _chunks(values: list[int], size: int = 5000) -> list[list[int]]:
    return [values[i:i + size] for i in range(0, len(values), size)]
