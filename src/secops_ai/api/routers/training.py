"""Routes for training (being built): translate HTTP into calls to the package, nothing more."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
