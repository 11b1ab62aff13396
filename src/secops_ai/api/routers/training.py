"""Routes for training: start a fine-tuning run in the background, read its status and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from secops_ai.api.deps import get_app_settings
from secops_ai.api.errors import APIError
from secops_ai.config import Settings

router = APIRouter(prefix="/training", tags=["training"])


class StartRun(BaseModel):
    """Either an inline ``config`` (RunConfig keys) or a ``config_path`` to a YAML file, plus overrides."""

    config: dict[str, Any] | None = None
    config_path: str | None = None
    overrides: list[str] = Field(default_factory=list, description="key=value overrides")
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")


@router.post("/runs", status_code=202)
def start_run(body: StartRun, settings: Settings = Depends(get_app_settings)) -> dict[str, Any]:
    from secops_ai.training.config import ConfigError, RunConfig, parse_overrides
    from secops_ai.training.jobs import start_run as start

    if (body.config is None) == (body.config_path is None):
        raise APIError(400, "give exactly one of 'config' (an object) or 'config_path' (a YAML file)",
                       param="config")
    try:
        if body.config is not None:
            config = RunConfig.from_dict({**body.config, **parse_overrides(body.overrides)}, source="config")
        else:
            path = Path(body.config_path)
            if path.suffix not in (".yaml", ".yml"):
                raise APIError(400, f"config_path must be a .yaml file, not {path.name!r}", param="config_path")
            config = RunConfig.from_yaml(path, overrides=body.overrides)
        run_id = start(config, settings, run_id=body.run_id)
    except ConfigError as exc:
        raise APIError(400, str(exc), param="config") from None
    except FileExistsError as exc:
        raise APIError(409, str(exc), param="run_id") from None
    return {"id": run_id, "status": "queued", "run_name": f"{config.provider}/{run_id}"}


@router.get("/runs")
def list_runs(settings: Settings = Depends(get_app_settings)) -> dict[str, Any]:
    from secops_ai.training.jobs import list_runs as runs

    return {"data": runs(settings)}


@router.get("/runs/{run_id}")
def get_run(run_id: str, settings: Settings = Depends(get_app_settings)) -> dict[str, Any]:
    from secops_ai.training.jobs import JobNotFound, run_status

    try:
        return run_status(run_id, settings)
    except JobNotFound as exc:
        raise APIError(404, str(exc), param="run_id") from None
