"""``GET /models/{provider}/{run_id}/evals``: a model's stored gate results (evals.json)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from secops_ai.api.deps import SettingsDep
from secops_ai.api.errors import APIError
from secops_ai.api.openapi_doc import errors

router = APIRouter()


@router.get("/models/{provider}/{run_id}/evals", tags=["evals"], responses=errors(404, 409))
def get_evals(provider: str, run_id: str, settings: SettingsDep,
              items: bool = Query(True, description="Include per-item records.")) -> dict[str, Any]:
    """The last gate run of ``<provider>/<run_id>`` (``base/<name>`` for the base model): verdict, per-suite
    scores with thresholds, production and base comparison, and (unless ``items=false``) every item."""
    from secops_ai.evals.runner import load_results

    try:
        report = load_results(settings, provider, run_id)
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        raise APIError(409, f"the stored evals.json of {provider}/{run_id} is unreadable ({type(exc).__name__}); "
                            f"re-run `secops-ai eval gate {provider}/{run_id}`", param="run_id",
                       code="evals_unreadable") from None
    if report is None:
        raise APIError(404, f"no evaluation results for model {provider}/{run_id}; run "
                            f"`secops-ai eval run {provider}/{run_id}`", param="run_id", code="evals_not_found")
    body = report.model_dump(mode="json")
    body["passed"] = report.verdict.passed
    body["message"] = report.verdict.message
    if not items:
        for suite in body["candidate"]["suites"].values():
            suite.pop("items", None)
    return body
