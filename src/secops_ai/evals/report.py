"""The Markdown report: one table, candidate vs production vs base, for every gated metric."""

from __future__ import annotations

from typing import TYPE_CHECKING

from secops_ai.evals.result import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from secops_ai.evals.runner import GateReport


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_report(report: GateReport) -> str:
    cand, prod, base, verdict = report.candidate, report.production, report.base, report.verdict
    status = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"### Evaluation of `{report.target}`: {status}",
        "",
        f"Gate `{verdict.gate}` v{verdict.gate_version} (`{report.gate_path}`), seed fixed, greedy decoding; "
        f"{cand.items} items in {cand.duration_s:.1f} s ({cand.items_per_s:.2f} items/s) on `{cand.backend}`.",
        "",
        f"| suite | metric | threshold | candidate `{report.target}` | production "
        f"{'`' + prod.model + '`' if prod else '(none)'} | base {'`' + base.model + '`' if base else '(not run)'} |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    failed = {(f.suite, f.metric) for f in verdict.failures}
    for suite, result in cand.suites.items():
        limits = {c.metric: c.threshold for c in result.checks}
        for metric, value in result.metrics.items():
            arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
            if metric in limits:
                limit = f"{'≥' if HIGHER_IS_BETTER[metric] else '≤'} {limits[metric]:.3f}"
                mark = " ❌" if (suite, metric) in failed else " ✅"
            else:
                limit, mark = "", ""
            p = prod.metrics.get(suite, {}).get(metric) if prod else None
            b = base.metrics.get(suite, {}).get(metric) if base else None
            lines.append(f"| {suite} (n={result.n}) | {metric} {arrow} | {limit} | {_fmt(value)}{mark} | "
                         f"{_fmt(p)} | {_fmt(b)} |")
    if verdict.failures:
        lines += ["", "Failures:", *[f"- {f.describe()}" for f in verdict.failures]]
    notes = [f"- {s}: {n}" for s, r in cand.suites.items() for n in r.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
