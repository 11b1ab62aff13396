"""Routes for training: start a fine-tuning run in the background, read its status and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as Path_
from pydantic import BaseModel, Field

from secops_ai.api.deps import SettingsDep
from secops_ai.api.errors import APIError
from secops_ai.api.openapi_doc import errors
from secops_ai.config import Settings

router = APIRouter(prefix="/training", tags=["training"])


_RUN_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class StartRun(BaseModel):
    """Either an inline ``config`` (RunConfig keys) or a ``config_path`` to a YAML file, plus overrides."""

    config: dict[str, Any] | None = None
    config_path: str | None = Field(
        default=None, description="A .yaml file inside the project's configs/ folder or $SECOPS_HOME/configs/ "
                                  "(relative to either); any other path is refused without being read.")
    overrides: list[str] = Field(default_factory=list, description="key=value overrides")
    run_id: str | None = Field(default=None, pattern=_RUN_ID)


def config_roots(settings: Settings) -> tuple[Path, ...]:
    """Folders a caller may name configs from: the workspace's and the server's project ``configs/``."""
    return (settings.workspace.root / "configs", Path.cwd() / "configs")


def _confined_config(raw: str, settings: Settings) -> Path:
    """The real path of ``raw`` if it is a YAML file inside a config root; the same refusal otherwise, so a
    caller learns nothing about files outside (not even whether they exist)."""
    from secops_ai.config.confine import resolve_inside

    refusal = APIError(400, "config_path must name a .yaml file inside the project's configs/ folder or "
                            "$SECOPS_HOME/configs/ (or send the config inline as 'config')",
                       param="config_path", code="config_path_not_allowed")
    if "\x00" in raw or Path(raw).suffix not in (".yaml", ".yml"):
        raise refusal
    path = resolve_inside(raw, config_roots(settings))
    if path is None or path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise refusal  # a symlink inside a root that leads out of it resolves outside: refused too
    return path


@router.post("/runs", status_code=202, responses=errors(409))
def start_run(body: StartRun, settings: SettingsDep) -> dict[str, Any]:
    from secops_ai.training.config import ConfigError, RunConfig, parse_overrides
    from secops_ai.training.jobs import start_run as start

    if (body.config is None) == (body.config_path is None):
        raise APIError(400, "give exactly one of 'config' (an object) or 'config_path' (a YAML file)",
                       param="config")
    try:
        if body.config is not None:
            config = RunConfig.from_dict({**body.config, **parse_overrides(body.overrides)}, source="config")
        else:
            config = RunConfig.from_yaml(_confined_config(body.config_path, settings), overrides=body.overrides)
        run_id = start(config, settings, run_id=body.run_id)
    except ConfigError as exc:
        raise APIError(400, str(exc), param="config") from None
    except FileExistsError as exc:
        raise APIError(409, str(exc), param="run_id") from None
    return {"id": run_id, "status": "queued", "run_name": f"{config.provider}/{run_id}"}


@router.get("/runs")
def list_runs(settings: SettingsDep) -> dict[str, Any]:
    from secops_ai.training.jobs import list_runs as runs

    warnings: list[str] = []
    data = runs(settings, warnings)
    return {"object": "list", "data": data, "warnings": warnings}


@router.get("/runs/{run_id}", responses=errors(404, 409))
def get_run(run_id: Annotated[str, Path_(pattern=_RUN_ID)],
            settings: SettingsDep) -> dict[str, Any]:
    from secops_ai.training.jobs import JobNotFound, StatusUnreadable, run_status

    try:
        return run_status(run_id, settings)
    except JobNotFound as exc:
        raise APIError(404, str(exc), param="run_id", code="run_not_found") from None
    except StatusUnreadable as exc:
        raise APIError(409, f"training run {run_id}: {exc}", param="run_id", code="run_status_unreadable") from None
