"""OPTIMADE v1 endpoints (``/v1/info``, ``/v1/structures``, ...)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
