"""The curator's HTML pages: search, structure, quarantine."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
