"""CLI group ``secops-ai db``: the metadata database (registry stages, audit trail, gate results)."""

from __future__ import annotations

import json
import os

import typer

from secops_ai.cli.failure import fail

app = typer.Typer(no_args_is_help=True)


@app.command("migrate")
def migrate_cmd(
    to: str | None = typer.Option(None, "--to", help="Target URL (default: $DATABASE_URL), e.g. "
                                                     "postgresql+psycopg://user:pass@127.0.0.1:5432/secops"),
    source: str | None = typer.Option(None, "--from", help="Source URL (default: the workspace's SQLite file, "
                                                           "$SECOPS_HOME/secops.db)."),
) -> None:
    """Copy the registry from SQLite into PostgreSQL (or between any two supported databases).

    The target must be empty; the source is only read. Afterwards set DATABASE_URL to the target.
    """
    from secops_ai.config import get_settings
    from secops_ai.registry import RegistryError
    from secops_ai.registry.migrate import migrate

    settings = get_settings()
    target = to or os.environ.get("DATABASE_URL")
    if not target:
        fail("give the target with --to postgresql+psycopg://... (or set DATABASE_URL)")
    src = source or f"sqlite:///{settings.workspace.db_path}"
    if source is None and not settings.workspace.db_path.is_file():
        fail(f"no SQLite registry at {settings.workspace.db_path} to migrate (pass --from)")
    try:
        copied = migrate(src, target)
    except RegistryError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"copied": copied}, indent=2))
    typer.echo("done: set DATABASE_URL to the target to use it", err=True)
