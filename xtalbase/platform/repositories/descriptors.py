"""SQL of descriptor recipes and their cached vectors, and the structure inputs descriptors are computed from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import delete, select

from xtalbase.errors import NotFound
from xtalbase.platform.repositories import chunks, insert_ignore
from xtalbase.schema import DescriptorRecipe, DescriptorValue, Structure, StructureElement

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


#: Shortest hash prefix that names a recipe.
MIN_PREFIX = 8


def recipe_by_hash(session: "Session", digest: str) -> DescriptorRecipe | None:
    """The stored recipe with content hash ``digest``, or ``None``."""
    return session.scalars(select(DescriptorRecipe).where(DescriptorRecipe.hash == digest)).first()


def add_recipe(session: "Session", row: dict[str, Any]) -> DescriptorRecipe:
    """Store a recipe unless one with its hash exists (a concurrent writer may win); returns the stored row."""
    insert_ignore(session.connection(), DescriptorRecipe.__table__, [row], ["hash"])
    found = recipe_by_hash(session, row["hash"])
    assert found is not None  # inserted, or inserted by the writer that won
    return found


def find_recipe(session: "Session", ref: int | str) -> DescriptorRecipe:
    """A stored recipe by id, name (the newest of that name) or hash prefix; :class:`NotFound` lists the stored ones."""
    text = str(ref).strip()
    found = session.get(DescriptorRecipe, int(text)) if text.isdigit() else None
    if found is None and text:
        found = session.scalars(select(DescriptorRecipe).where(DescriptorRecipe.name == text).order_by(DescriptorRecipe.id.desc())).first()
    if found is None and len(text) >= MIN_PREFIX:
        matches = list(session.scalars(select(DescriptorRecipe).where(DescriptorRecipe.hash.startswith(text.lower())).limit(2)))
        if len(matches) > 1:
            raise NotFound(f"hash prefix {text!r} names more than one descriptor recipe; give more characters")
        found = matches[0] if matches else None
    if found is None:
        stored = [f"{r.id} ({r.name})" for r in session.scalars(select(DescriptorRecipe).order_by(DescriptorRecipe.id).limit(20))]
        raise NotFound(f"no descriptor recipe {text!r}; stored: {', '.join(stored) or 'none'}")
    return found


def recipes(session: "Session") -> list[DescriptorRecipe]:
    """Every stored recipe, oldest first."""
    return list(session.scalars(select(DescriptorRecipe).order_by(DescriptorRecipe.id)))


def cached(session: "Session", recipe_id: int, structure_ids: Sequence[int]) -> dict[int, tuple[bytes | None, str | None]]:
    """``structure id -> (vector bytes, error)`` of the ids that already have a row under ``recipe_id``."""
    out: dict[int, tuple[bytes | None, str | None]] = {}
    for part in chunks(structure_ids):
        stmt = select(DescriptorValue.structure_id, DescriptorValue.vector, DescriptorValue.error).where(
            DescriptorValue.recipe_id == recipe_id, DescriptorValue.structure_id.in_(part))
        for sid, vector, error in session.execute(stmt):
            out[int(sid)] = (None if vector is None else bytes(vector), error)
    return out


def add_values(session: "Session", rows: Iterable[dict[str, Any]]) -> None:
    """Insert ``(recipe_id, structure_id, vector, error, run_id)`` rows; rows another writer stored first are kept."""
    for part in chunks(list(rows), 2000):
        insert_ignore(session.connection(), DescriptorValue.__table__, part, ["recipe_id", "structure_id"])


def delete_failed(session: "Session", recipe_id: int, structure_ids: Sequence[int]) -> None:
    """Remove the error rows (no vector) of ``structure_ids`` under ``recipe_id``, before they are computed again."""
    for part in chunks(structure_ids):
        session.execute(delete(DescriptorValue).where(DescriptorValue.recipe_id == recipe_id, DescriptorValue.structure_id.in_(part),
                                                      DescriptorValue.vector.is_(None)))


def compositions(session: "Session", structure_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """``structure id -> {element: amount in the cell}`` from ``structure_elements`` (partial occupancies included)."""
    out: dict[int, dict[str, float]] = {}
    for part in chunks(structure_ids):
        stmt = select(StructureElement.structure_id, StructureElement.element, StructureElement.amount).where(
            StructureElement.structure_id.in_(part))
        for sid, element, amount in session.execute(stmt):
            out.setdefault(int(sid), {})[element] = float(amount)
    return out


def structure_rows(session: "Session", structure_ids: Sequence[int]) -> dict[int, Any]:
    """``structure id -> row`` with the array columns :func:`xtalbase.platform.convert.row_arrays` reads."""
    out: dict[int, Any] = {}
    for part in chunks(structure_ids):
        stmt = select(Structure.id, Structure.nsites, Structure.cell, Structure.numbers, Structure.frac_coords).where(Structure.id.in_(part))
        for row in session.execute(stmt):
            out[int(row.id)] = row
    return out


def existing_ids(session: "Session", structure_ids: Sequence[int]) -> set[int]:
    """The ids of ``structure_ids`` that are stored structures."""
    out: set[int] = set()
    for part in chunks(structure_ids):
        out.update(int(i) for i in session.scalars(select(Structure.id).where(Structure.id.in_(part))))
    return out


def missing_structures(session: "Session", structure_ids: Sequence[int]) -> None:
    """Raise :class:`NotFound` naming the first ids that are not stored structures."""
    missing = sorted(set(structure_ids) - existing_ids(session, structure_ids))
    if missing:
        raise NotFound(f"{len(missing)} structure id(s) are not stored: {', '.join(map(str, missing[:10]))}")
