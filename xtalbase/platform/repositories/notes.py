"""Curator notes on structures (``structure_notes``): add one, read them back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from xtalbase.errors import NotFound, XtalbaseError
from xtalbase.schema import Structure, StructureNote

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Longest note accepted, in characters (a note is a remark, not a document).
MAX_NOTE_LENGTH = 10_000


def add_structure_note(session: "Session", structure_id: int, text: str) -> StructureNote:
    """Attach ``text`` to structure ``structure_id`` (the caller commits); :class:`NotFound` for an unknown structure,
    :class:`XtalbaseError` for an empty or over-long note, or one with a NUL character."""
    if session.get(Structure, structure_id) is None:
        raise NotFound(f"no structure with id {structure_id}")
    text = text.strip()
    if not text:
        raise XtalbaseError(f"structure {structure_id}: a note needs some text")
    if len(text) > MAX_NOTE_LENGTH:
        raise XtalbaseError(f"structure {structure_id}: a note has at most {MAX_NOTE_LENGTH} characters, got {len(text)}")
    if "\x00" in text:  # PostgreSQL text cannot hold it (SQLite can): refused on both, never a database error
        raise XtalbaseError(f"structure {structure_id}: a note cannot contain a NUL character (at {text.index(chr(0)) + 1})")
    note = StructureNote(structure_id=structure_id, text=text)
    session.add(note)
    session.flush()
    return note


def notes_of_structure(session: "Session", structure_id: int) -> list[StructureNote]:
    """The notes of one structure, oldest first."""
    return list(session.scalars(select(StructureNote).where(StructureNote.structure_id == structure_id).order_by(StructureNote.id)))


__all__ = ["MAX_NOTE_LENGTH", "add_structure_note", "notes_of_structure"]
