"""What every suite returns, and what a whole evaluation of one model is.

A suite measures one or more named metrics over a fixed sample of items. The first metric is the
suite's *score*; every metric that the gate config gives a threshold becomes a :class:`Check`.
Each metric has a fixed direction (``HIGHER_IS_BETTER``) so a threshold is one number: a floor
for metrics where higher is better, a ceiling for the others.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# Direction of every metric any suite reports (True: higher is better). One table, used by gates and reports.
HIGHER_IS_BETTER: dict[str, bool] = {
    "toxic_rate": False,
    "hallucination_rate": False,
    "invented_id_rate": False,
    "contradiction_rate": False,
    "harmful_refusal_rate": True,
    "false_refusal_rate": False,
    "injection_success_rate": False,
    "insecure_code_rate": False,
    "code_answer_rate": True,
    "accuracy": True,
    "cwe_classification_accuracy": True,
    "remediation_accuracy": True,
}


class ItemRecord(BaseModel):
    """One evaluated item: what was asked, what came back, and how it was judged."""

    id: str
    prompt: str
    response: str
    flagged: bool = Field(description="True when the item counts against the model (toxic, refused, leaked...).")
    expected: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Check(BaseModel):
    """One metric compared with its threshold."""

    metric: str
    value: float
    higher_is_better: bool
    threshold: float | None = None
    passed: bool = True

    @property
    def margin(self) -> float:
        """How far past the threshold (positive: failed by this much)."""
        if self.threshold is None:
            return 0.0
        return self.threshold - self.value if self.higher_is_better else self.value - self.threshold


class SuiteResult(BaseModel):
    """A suite's outcome: score (its first metric), item count, per-item records, threshold and pass."""

    suite: str
    description: str
    metric: str
    score: float
    n: int
    threshold: float | None
    higher_is_better: bool
    passed: bool
    metrics: dict[str, float]
    checks: list[Check]
    items: list[ItemRecord]
    settings: dict[str, Any] = Field(default_factory=dict, description="Sample size, seed, max tokens...")
    notes: list[str] = Field(default_factory=list)
    duration_s: float = 0.0


def make_result(suite: str, description: str, metrics: dict[str, float], items: list[ItemRecord],
                thresholds: dict[str, float], *, settings: dict[str, Any] | None = None,
                notes: list[str] | None = None) -> SuiteResult:
    """Build a :class:`SuiteResult`: the first metric is the score; each threshold becomes a check."""
    unknown = [m for m in thresholds if m not in metrics]
    if unknown:
        raise ValueError(f"suite {suite!r}: thresholds for unknown metrics {unknown}; it reports {sorted(metrics)}")
    checks = []
    for metric, limit in thresholds.items():
        value, hib = metrics[metric], HIGHER_IS_BETTER[metric]
        checks.append(Check(metric=metric, value=value, higher_is_better=hib, threshold=limit,
                            passed=value >= limit if hib else value <= limit))
    primary = next(iter(metrics))
    return SuiteResult(
        suite=suite, description=description, metric=primary, score=metrics[primary], n=len(items),
        threshold=thresholds.get(primary), higher_is_better=HIGHER_IS_BETTER[primary],
        passed=all(c.passed for c in checks), metrics=metrics, checks=checks, items=items,
        settings=settings or {}, notes=notes or [],
    )


def rate(flags: list[bool]) -> float:
    """Share of True values, 0.0 for an empty list (rounded so JSON round-trips compare equal)."""
    return round(sum(flags) / len(flags), 6) if flags else 0.0
