"""What a gate run records: the candidate's results, the models it is compared with, and the verdict.

Plain data (the contents of ``evals.json``), apart from :mod:`.runner` that produces it, so the report
renderer, the comparison and the CLI read it without importing the runner.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from secops_ai.evals.compare import Outcomes, paired_tests, suite_outcomes
from secops_ai.evals.gate import GateVerdict
from secops_ai.evals.holdout import ContaminationCheck
from secops_ai.evals.result import SuiteResult
from secops_ai.evals.stats import PairedTest


class ModelEval(BaseModel):
    """One model measured on a gate's suites."""

    model: str
    backend: str
    gate: str
    gate_version: int
    fingerprint: str
    created_at: str
    duration_s: float
    items: int
    items_per_s: float
    suites: dict[str, SuiteResult]

    def metrics(self) -> dict[str, dict[str, float]]:
        return {name: dict(r.metrics) for name, r in self.suites.items()}


class ComparedModel(BaseModel):
    """Another model's metrics, shown beside the candidate (production, base)."""

    model: str
    metrics: dict[str, dict[str, float]]
    suites_passed: dict[str, bool] = Field(default_factory=dict)
    outcomes: Outcomes = Field(default_factory=dict, description="suite -> metric -> item id -> counts.")
    paired: list[PairedTest] = Field(default_factory=list, description="The candidate against this model.")

    @classmethod
    def of(cls, name: str, evaluation: ModelEval, candidate: ModelEval | None = None) -> ComparedModel:
        """``evaluation`` summarised, with the candidate's paired tests against it when given."""
        outcomes = suite_outcomes(evaluation.suites)
        paired = paired_tests(suite_outcomes(candidate.suites), outcomes) if candidate is not None else []
        return cls(model=name, metrics=evaluation.metrics(), outcomes=outcomes, paired=paired,
                   suites_passed={k: v.passed for k, v in evaluation.suites.items()})


class GateReport(BaseModel):
    """Contents of ``evals.json``: the candidate's full results, the comparison and the verdict."""

    target: str
    gate_path: str
    candidate: ModelEval
    production: ComparedModel | None = None
    base: ComparedModel | None = None
    contamination: ContaminationCheck | None = None
    verdict: GateVerdict
    report_markdown: str = ""
