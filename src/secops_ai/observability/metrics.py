"""Prometheus metrics (being built)."""

from __future__ import annotations

from fastapi import FastAPI


def install_metrics(app: FastAPI) -> None:
    return None
