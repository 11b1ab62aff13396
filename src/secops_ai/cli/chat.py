"""`secops-ai chat` (being built)."""

from __future__ import annotations

import typer


def chat() -> None:
    """Streaming terminal chat (being built)."""
    raise typer.Exit(1)
