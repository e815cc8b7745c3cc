"""What an XRD model trains on: the structures of a split fold or dataset, their labels and XRD features.

Rows are always ordered by the structures' exact hash, so the matrices (and so the fitted model and its
artifact hash) do not depend on insertion order, database ids or the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from sqlalchemy import select

from xtalbase.errors import XtalbaseError
from xtalbase.ml.features import FeatureRecipe
from xtalbase.ml.targets import Target, get_target
from xtalbase.platform.repositories import chunks, named_row
from xtalbase.platform.repositories.patterns import computed_peaks
from xtalbase.schema import Dataset, DatasetMember, Split, SplitMember, Structure

if TYPE_CHECKING:
    from sqlalchemy.orm import Session



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


def get_split(session: "Session", name: str) -> Split:
    """The split named ``name`` or :class:`NotFound` listing the known names."""
    return named_row(session, Split, name, "split")


def get_dataset(session: "Session", name: str) -> Dataset:
    """The dataset named ``name`` or :class:`NotFound`."""
    return named_row(session, Dataset, name, "dataset")


def split_fold_ids(session: "Session", split: Split, fold: str) -> list[int]:
    """Structure ids of ``fold`` of ``split`` (unordered)."""
    return list(session.scalars(select(SplitMember.structure_id).where(SplitMember.split_id == split.id, SplitMember.fold == fold)))


def dataset_ids(session: "Session", dataset: Dataset) -> list[int]:
    """Structure ids of a dataset's members."""
    return list(session.scalars(select(DatasetMember.structure_id).where(DatasetMember.dataset_id == dataset.id)))


def load_fold(session: "Session", ids: Sequence[int], target: str | Target, recipe_id: int,
              feature_recipe: FeatureRecipe | dict[str, Any], *, what: str = "structures", training: bool = True) -> Fold:
    """Features and labels of ``ids`` for ``target``, ordered by exact hash.

    Raises :class:`XtalbaseError` naming how many structures lack a pattern for the recipe or a label.
    With ``training`` the target's own row filter applies (``cubic_a`` keeps only cubic structures);
    prediction passes ``training=False`` to describe every requested structure.
    """
    target = target if isinstance(target, Target) else get_target(target)
    rows = _structure_rows(session, ids)
    if training:
        rows = target.training_rows(rows)
    peaks = _peaks(session, [r.id for r in rows], recipe_id)
    missing = [r.id for r in rows if r.id not in peaks]
    if missing:
        raise XtalbaseError(f"{len(missing)} of {len(rows)} {what} have no computed XRD pattern for recipe {recipe_id} "
                            f"(e.g. structure {missing[0]}): run `xtalbase xrd compute` first")
    y = target.label(rows)
    X = FeatureRecipe.from_dict(feature_recipe).transform([peaks[r.id] for r in rows])
    return Fold(np.array([r.id for r in rows], dtype=np.int64), X, y, [r.exact_hash for r in rows],
                np.array([r.crystal_system for r in rows], dtype=object))


def labels(rows: Sequence[Any], target: str) -> np.ndarray:
    """Target values of structure rows: crystal system names, space-group numbers or lattice constants (Å)."""
    return get_target(target).label(rows)


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
    for chunk in chunks(ids):
        rows.extend(session.execute(select(*cols).where(Structure.id.in_(chunk))).all())
    rows.sort(key=lambda r: r.exact_hash)
    return rows


def _peaks(session: "Session", ids: Sequence[int], recipe_id: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    return computed_peaks(session, ids, recipe_id)
