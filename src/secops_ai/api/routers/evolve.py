"""Routes for the evolve loop: start (or resume) a run in the background, list runs, show one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi import Path as Path_
from pydantic import BaseModel, Field

from secops_ai.api.deps import SettingsDep
from secops_ai.api.errors import APIError
from secops_ai.api.openapi_doc import errors
from secops_ai.config import Settings

router = APIRouter(prefix="/evolve", tags=["evolve"])

_NAME = r"^[a-z0-9][a-z0-9._-]{0,40}$"


class StartEvolve(BaseModel):
    """Either an inline ``config`` (EvolveConfig keys) or the ``name`` of a config in configs/evolve/."""

    config: dict[str, Any] | None = None
    name: str | None = Field(default=None, pattern=_NAME,
                             description="configs/evolve/<name>.yaml of the server's project or $SECOPS_HOME.")
    iterations: int | None = Field(default=None, ge=1, le=20)


def _named_config(name: str, settings: Settings):
    from pathlib import Path

    from secops_ai.alignment.config import EvolveConfig

    for root in (settings.workspace.root / "configs" / "evolve", Path.cwd() / "configs" / "evolve"):
        path = root / f"{name}.yaml"  # the name pattern keeps it a plain file name inside the root
        if path.is_file() and not path.is_symlink():
            return EvolveConfig.from_yaml(path)
    raise APIError(404, f"no evolve config named {name!r} in configs/evolve/", param="name",
                   code="evolve_config_not_found")


@router.post("/runs", status_code=202, responses=errors(404, 409))
def start_run(body: StartEvolve, settings: SettingsDep) -> dict[str, Any]:
    from secops_ai.alignment.config import EvolveConfig, EvolveConfigError
    from secops_ai.alignment.pipeline import EvolveError, start_background

    if (body.config is None) == (body.name is None):
        raise APIError(400, "give exactly one of 'config' (an object) or 'name' (a config in configs/evolve/)",
                       param="config")
    try:
        config = (EvolveConfig.from_dict(body.config, source="config") if body.config is not None
                  else _named_config(str(body.name), settings))
    except EvolveConfigError as exc:
        raise APIError(400, str(exc), param="config", code="invalid_config") from None
    if config.judge.api_key_env:
        raise APIError(400, "judge.api_key_env names a server environment variable: only the operator may set it "
                            "(use a config in configs/evolve/)", param="config.judge.api_key_env")
    try:
        run_id = start_background(config, settings, iterations=body.iterations)
    except EvolveError as exc:
        raise APIError(409, str(exc), code="evolve_run_running") from None
    return {"run_id": run_id, "status": "queued", "url": f"/evolve/runs/{run_id}"}


@router.get("/runs")
def list_runs(settings: SettingsDep) -> dict[str, Any]:
    from secops_ai.alignment.report import list_runs as runs
    from secops_ai.alignment.report import summary

    states = runs(settings)
    return {"object": "list", "data": [{"run_id": s["run_id"], "status": s.get("status"),
                                        "iterations": summary(s)} for s in states]}


@router.get("/runs/{run_id}")
def get_run(settings: SettingsDep,
            run_id: str = Path_(..., pattern=r"^[a-z0-9][a-z0-9._-]{0,80}$")) -> dict[str, Any]:
    from secops_ai.alignment.report import RunNotFound, is_running, run_markdown
    from secops_ai.alignment.report import get_run as load

    try:
        state = load(settings, run_id)
    except RunNotFound as exc:
        raise APIError(404, str(exc), param="run_id", code="evolve_run_not_found") from None
    return {**state, "running": is_running(settings, run_id), "report_markdown": run_markdown(state)}
