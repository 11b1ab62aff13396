"""Two models on the same gate items: paired tests per metric, and the items where they differ.

Suites are pure functions of fixed items, so two evaluations under one gate fingerprint score the same
item ids; each :class:`~secops_ai.evals.result.ItemRecord` carries its per-metric outcomes. Pairing them
item by item is what lets a 60-item metric show a 10-point change (see :mod:`secops_ai.evals.stats`).
"""

from __future__ import annotations

from pydantic import BaseModel

from secops_ai.evals.result import HIGHER_IS_BETTER, SuiteResult, outcomes_by_metric
from secops_ai.evals.stats import PairedTest, paired_test

# suite -> metric -> item id -> counts
Outcomes = dict[str, dict[str, dict[str, bool]]]


def suite_outcomes(suites: dict[str, SuiteResult]) -> Outcomes:
    return {name: outcomes_by_metric(r.items) for name, r in suites.items()}


def paired_tests(candidate: Outcomes, reference: Outcomes) -> list[PairedTest]:
    """One exact paired test per metric both sides measured on shared items (suite and metric order kept)."""
    out = []
    for suite, metrics in candidate.items():
        for metric, flags in metrics.items():
            ref = reference.get(suite, {}).get(metric)
            if ref is None:
                continue
            test = paired_test(suite, metric, flags, ref, HIGHER_IS_BETTER[metric])
            if test is not None:
                out.append(test)
    return out


class ItemDiff(BaseModel):
    """One item whose outcome on one metric differs between two models."""

    suite: str
    item: str
    metric: str
    a: bool
    b: bool
    better: str  # "a" or "b": which model this change favours
    prompt: str
    reply_a: str
    reply_b: str


def item_diffs(a: dict[str, SuiteResult], b: dict[str, SuiteResult], *, suite: str | None = None) -> list[ItemDiff]:
    """Every (item, metric) where two models' suite results ``a`` and ``b`` differ, suite by suite, in item order."""
    out = []
    for name, ra in a.items():
        rb = b.get(name)
        if rb is None or (suite and name != suite):
            continue
        by_id = {r.id: r for r in rb.items}
        for rec in ra.items:
            other = by_id.get(rec.id)
            if other is None:
                continue
            for metric, flag in rec.outcomes.items():
                if metric in other.outcomes and other.outcomes[metric] != flag:
                    good_a = flag if HIGHER_IS_BETTER[metric] else not flag
                    out.append(ItemDiff(suite=name, item=rec.id, metric=metric, a=flag, b=other.outcomes[metric],
                                        better="a" if good_a else "b", prompt=rec.prompt, reply_a=rec.response,
                                        reply_b=other.response))
    return out
