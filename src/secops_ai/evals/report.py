"""The Markdown report: each metric with items, interval, chance level, and paired tests vs production and base."""

from __future__ import annotations

from typing import TYPE_CHECKING

from secops_ai.evals.result import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from secops_ai.evals.gate_report import ComparedModel, GateReport
    from secops_ai.evals.stats import PairedTest


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _paired(other: ComparedModel | None, suite: str, metric: str) -> str:
    if other is None:
        return "(not run)"
    value = other.metrics.get(suite, {}).get(metric)
    test: PairedTest | None = next((t for t in other.paired if t.suite == suite and t.metric == metric), None)
    if test is None:
        return _fmt(value)
    mark = {"improved": " ▲", "regressed": " ▼"}.get(test.verdict, "")
    sign = "+" if test.delta >= 0 else ""
    return f"{_fmt(value)} ({sign}{test.delta:.3f}{mark}, p={min(test.p_improved, test.p_regressed):.2g})"


def render_report(report: GateReport) -> str:
    cand, prod, base, verdict = report.candidate, report.production, report.base, report.verdict
    status = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"### Evaluation of `{report.target}`: {status}",
        "",
        f"Gate `{verdict.gate}` v{verdict.gate_version} (`{report.gate_path}`), seed fixed, greedy decoding; "
        f"{cand.items} items in {cand.duration_s:.1f} s ({cand.items_per_s:.2f} items/s) on `{cand.backend}`. "
        "Each metric: value [95 % Wilson interval] over n items; production and base columns: their value "
        "(candidate minus theirs on the same items, ▲/▼ when the exact paired test says p < 0.05).",
        "",
        f"| suite | metric | n | chance | threshold | candidate `{report.target}` | production "
        f"{'`' + prod.model + '`' if prod else '(none)'} | base {'`' + base.model + '`' if base else '(not run)'} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    failed = {(f.suite, f.metric) for f in verdict.failures}
    for suite, result in cand.suites.items():
        limits = {c.metric: c for c in result.checks}
        for metric, value in result.metrics.items():
            arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
            st = result.stats.get(metric)
            if metric in limits:
                check = limits[metric]
                on = "" if check.bound is None else " (bound)"
                limit = f"{'≥' if HIGHER_IS_BETTER[metric] else '≤'} {check.threshold:.3f}{on}"
                mark = " ❌" if (suite, metric) in failed else " ✅"
            else:
                limit, mark = "", ""
            interval = f" [{st.ci_low:.2f}, {st.ci_high:.2f}]" if st and st.n else ""
            n = str(st.n) if st else str(result.n)
            chance = _fmt(st.chance) if st and st.chance is not None else "—"
            own_base = base is not None and base.model == report.target
            lines.append(f"| {suite} | {metric} {arrow} | {n} | {chance} | {limit} | {_fmt(value)}{interval}{mark} | "
                         f"{_paired(prod, suite, metric) if prod else 'n/a'} | "
                         f"{_fmt(value) if own_base else _paired(base, suite, metric)} |")
    if verdict.failures:
        lines += ["", "Failures:", *[f"- {f.describe()}" for f in verdict.failures]]
    if report.contamination is not None:
        lines += ["", f"Contamination: {report.contamination.summary()}."]
    notes = [f"- {s}: {n}" for s, r in cand.suites.items() for n in r.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
