"""Health routes: always open, even when API keys are set."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
