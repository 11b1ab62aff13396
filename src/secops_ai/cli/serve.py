"""`secops-ai serve` and `secops-ai base ...`."""

from __future__ import annotations

import typer

base_app = typer.Typer(no_args_is_help=True)


def serve() -> None:
    """Start the API server (being built)."""
    raise typer.Exit(1)
