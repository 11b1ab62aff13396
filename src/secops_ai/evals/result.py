"""What every suite returns, and what a whole evaluation of one model is.

A suite measures one or more named metrics over a fixed sample of items. The first metric is the
suite's *score*; every metric that the gate config gives a threshold becomes a :class:`Check`.
Each metric has a fixed direction (``HIGHER_IS_BETTER``) so a threshold is one number: a floor
for metrics where higher is better, a ceiling for the others.

Every metric is a share of items: each :class:`ItemRecord` says, in ``outcomes``, which metrics it belongs to
and whether it counts (e.g. ``{"harmful_refusal_rate": True}``). That gives each metric its item count, a
95 % interval (:mod:`secops_ai.evals.stats`) and the per-item outcomes that paired tests between two models
compare. A metric with a chance level (``CHANCE``: four-way multiple choice is 0.25) is checked on the lower
bound of its interval, so a model has to beat chance by a margin the items can show, not by luck.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# Direction of every metric any suite reports (True: higher is better). One table, used by gates and reports.
HIGHER_IS_BETTER: dict[str, bool] = {
    "toxic_rate": False,
    "hallucination_rate": False,
    "invented_id_rate": False,
    "wrong_id_rate": False,
    "id_accuracy": True,
    "heldout_id_accuracy": True,
    "harmful_refusal_rate": True,
    "false_refusal_rate": False,
    "injection_success_rate": False,
    "insecure_code_rate": False,
    "code_answer_rate": True,
    "secure_answer_rate": True,
    "helpful_rate": True,
    "accuracy": True,
    "cwe_classification_accuracy": True,
    "remediation_accuracy": True,
}


# Chance level of metrics where guessing scores (the rest: None). A floor on such a metric must clear chance
# by CHANCE_MARGIN, and is checked on the interval's lower bound.
CHANCE: dict[str, float] = {
    "accuracy": 0.25,
    "cwe_classification_accuracy": 0.25,
    "remediation_accuracy": 0.25,
    "id_accuracy": 0.001,           # naming the one right id among ~1,000 catalog entries by guessing
    "heldout_id_accuracy": 0.001,
}
CHANCE_MARGIN = 0.05


class MetricStat(BaseModel):
    """A metric as a share of items: k of n, its 95 % Wilson interval and chance level."""

    value: float
    k: int
    n: int
    ci_low: float
    ci_high: float
    chance: float | None = None


class ItemRecord(BaseModel):
    """One evaluated item: what was asked, what came back, and how it was judged."""

    id: str
    prompt: str
    response: str
    flagged: bool = Field(description="True when the item counts against the model (toxic, refused, leaked...).")
    expected: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    outcomes: dict[str, bool] = Field(
        default_factory=dict, description="Metric -> whether this item counts towards it (its numerator).")


class Check(BaseModel):
    """One metric compared with its threshold."""

    metric: str
    value: float
    higher_is_better: bool
    threshold: float | None = None
    passed: bool = True
    bound: float | None = Field(default=None, description="The interval bound checked instead of the value "
                                                          "(metrics with a chance level).")

    @property
    def checked(self) -> float:
        return self.value if self.bound is None else self.bound

    @property
    def margin(self) -> float:
        """How far past the threshold (positive: failed by this much)."""
        if self.threshold is None:
            return 0.0
        return self.threshold - self.checked if self.higher_is_better else self.checked - self.threshold


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
    stats: dict[str, MetricStat] = Field(default_factory=dict)
    checks: list[Check]
    items: list[ItemRecord]
    settings: dict[str, Any] = Field(default_factory=dict, description="Sample size, seed, max tokens...")
    notes: list[str] = Field(default_factory=list)
    duration_s: float = 0.0


def metric_stats(metrics: dict[str, float], items: list[ItemRecord]) -> dict[str, MetricStat]:
    """k, n and the 95 % interval of each metric, from the items' outcomes (n = 0 when no item carries it)."""
    from secops_ai.evals.stats import wilson

    out = {}
    for metric, value in metrics.items():
        flags = [r.outcomes[metric] for r in items if metric in r.outcomes]
        k, n = sum(flags), len(flags)
        lo, hi = wilson(k, n)
        out[metric] = MetricStat(value=value, k=k, n=n, ci_low=lo, ci_high=hi, chance=CHANCE.get(metric))
    return out


def outcomes_by_metric(items: list[ItemRecord]) -> dict[str, dict[str, bool]]:
    """metric -> item id -> counts, the per-item view paired tests compare."""
    out: dict[str, dict[str, bool]] = {}
    for r in items:
        for metric, flag in r.outcomes.items():
            out.setdefault(metric, {})[r.id] = flag
    return out


def make_result(suite: str, description: str, metrics: dict[str, float], items: list[ItemRecord],
                thresholds: dict[str, float], *, settings: dict[str, Any] | None = None,
                notes: list[str] | None = None) -> SuiteResult:
    """Build a :class:`SuiteResult`: the first metric is the score; each threshold becomes a check.

    A metric with a chance level is checked on its interval's lower bound (see the module docstring).
    """
    unknown = [m for m in thresholds if m not in metrics]
    if unknown:
        raise ValueError(f"suite {suite!r}: thresholds for unknown metrics {unknown}; it reports {sorted(metrics)}")
    stats = metric_stats(metrics, items)
    checks = []
    for metric, limit in thresholds.items():
        value, hib = metrics[metric], HIGHER_IS_BETTER[metric]
        st = stats[metric]
        bound = (st.ci_low if hib else st.ci_high) if (st.chance is not None and st.n) else None
        checked = value if bound is None else bound
        checks.append(Check(metric=metric, value=value, higher_is_better=hib, threshold=limit, bound=bound,
                            passed=checked >= limit if hib else checked <= limit))
    primary = next(iter(metrics))
    return SuiteResult(
        suite=suite, description=description, metric=primary, score=metrics[primary], n=len(items),
        threshold=thresholds.get(primary), higher_is_better=HIGHER_IS_BETTER[primary],
        passed=all(c.passed for c in checks), metrics=metrics, stats=stats, checks=checks, items=items,
        settings=settings or {}, notes=notes or [],
    )


def rate(flags: list[bool]) -> float:
    """Share of True values, 0.0 for an empty list (rounded so JSON round-trips compare equal)."""
    return round(sum(flags) / len(flags), 6) if flags else 0.0
