"""CLI group `secops-ai data` (being built; each command calls into its package)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
