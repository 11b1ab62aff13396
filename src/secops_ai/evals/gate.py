"""Gate configs (versioned YAML in configs/gates/) and the verdict: thresholds plus no regression vs production.

A gate passes when

- every thresholded metric of every suite meets its threshold (a metric with a chance level on the lower
  bound of its 95 % interval, and its floor must clear chance by ``CHANCE_MARGIN``);
- no thresholded metric *regresses* against production: worse by more than ``max_regression`` on the same
  items *and* significantly so in the paired exact test (:mod:`secops_ai.evals.stats`);
- every metric listed in ``improve_over_base`` is a significant paired improvement over the base model;
- no training dataset in the workspace touches the gate's items (the contamination check, always run).

The verdict names each failing suite, metric and by how much, so `models promote` can say why it refuses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from secops_ai.evals.result import CHANCE, CHANCE_MARGIN, HIGHER_IS_BETTER, SuiteResult
from secops_ai.evals.stats import ALPHA, PairedTest
from secops_ai.evals.suites import SUITES, SuiteConfig

DEFAULT_GATE = "default"


class GateConfigError(ValueError):
    """A gate config file is invalid; the message names the file and the field."""


class GateConfig(BaseModel):
    """A versioned gate: which suites run, on how many fixed items, and what they must reach."""

    model_config = {"extra": "forbid"}

    name: str
    version: int = Field(ge=1)
    description: str = ""
    seed: int = Field(default=1234, description="Fixes every sample and the generation seed.")
    batch_size: int = Field(default=8, ge=1, description="Conversations sent to the model at once.")
    max_regression: float = Field(default=0.05, ge=0, description="Default per-suite regression allowance.")
    improve_over_base: dict[str, list[str]] = Field(
        default_factory=dict, description="suite -> metrics that must improve significantly over the base model.")
    suites: dict[str, SuiteConfig]

    @model_validator(mode="after")
    def _check_suites(self) -> GateConfig:
        for name, cfg in self.suites.items():
            if name not in SUITES:
                raise ValueError(f"suites.{name}: unknown suite (known: {', '.join(SUITES)})")
            for metric, limit in cfg.thresholds.items():
                if metric not in SUITES[name].metrics:
                    raise ValueError(f"suites.{name}.thresholds.{metric}: unknown metric "
                                     f"(this suite reports {', '.join(SUITES[name].metrics)})")
                chance = CHANCE.get(metric)
                if chance is not None and limit < chance + CHANCE_MARGIN:
                    raise ValueError(f"suites.{name}.thresholds.{metric}: {limit} is not above chance ({chance}) "
                                     f"by at least {CHANCE_MARGIN}; a floor at chance passes a model that guesses")
        for name, metrics in self.improve_over_base.items():
            if name not in self.suites:
                raise ValueError(f"improve_over_base.{name}: not a suite of this gate")
            for metric in metrics:
                if metric not in SUITES[name].metrics:
                    raise ValueError(f"improve_over_base.{name}: unknown metric {metric!r}")
        if not self.suites:
            raise ValueError("suites: at least one suite is needed")
        return self

    def regression_limit(self, suite: str) -> float:
        own = self.suites[suite].max_regression
        return self.max_regression if own is None else own

    def fingerprint(self) -> str:
        """Hash of everything that changes the measurements (not the thresholds): samples, seeds, lengths, and
        each suite's ``items_version`` (bumped when a suite builds different items from the same config)."""
        measured = {"seed": self.seed, "suites": {k: {"samples": v.samples, "max_new_tokens": v.max_new_tokens,
                                                      "options": v.options} for k, v in sorted(self.suites.items())}}
        versions = {k: v for k in sorted(self.suites) if (v := getattr(SUITES[k], "items_version", 1)) > 1}
        if versions:  # absent for version 1, so results measured before versions existed stay valid
            measured["items_versions"] = versions
        return hashlib.sha256(json.dumps(measured, sort_keys=True).encode()).hexdigest()[:16]


def gates_dir() -> Path:
    """``configs/gates`` of the checkout (the versioned gate configs)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "configs" / "gates"
        if candidate.is_dir():
            return candidate
    return Path("configs/gates")


def load_gate(spec: str | Path | None = None) -> tuple[GateConfig, Path]:
    """A gate config by path, or by name under configs/gates/ (default: ``default``)."""
    path = Path(spec) if spec is not None else gates_dir() / f"{DEFAULT_GATE}.yaml"
    if not path.suffix and not path.exists():
        path = gates_dir() / f"{spec}.yaml"
    if not path.is_file():
        raise GateConfigError(f"{path}: no such gate config (configs/gates/ holds: "
                              f"{', '.join(p.stem for p in sorted(gates_dir().glob('*.yaml'))) or 'none'})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise GateConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise GateConfigError(f"{path}: expected a mapping at the top level")
    try:
        return GateConfig.model_validate(raw), path.resolve()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise GateConfigError(f"{path}: {field}: {msg}" if field else f"{path}: {msg}") from exc


class GateFailure(BaseModel):
    suite: str
    metric: str
    kind: Literal["threshold", "regression", "improvement", "contamination"]
    value: float
    limit: float
    reference: float | None = None  # production's value, for regressions
    by: float

    bound: float | None = None  # the interval bound that was checked, for metrics with a chance level
    p_value: float | None = None  # paired test, for regressions and required improvements
    detail: str = ""

    def describe(self) -> str:
        if self.kind == "contamination":
            return f"contamination: {self.detail}"
        hib = HIGHER_IS_BETTER[self.metric]
        if self.kind == "threshold":
            rel = "<" if hib else ">"
            word = "short" if hib else "over"
            checked = "" if self.bound is None else f" (95% {'lower' if hib else 'upper'} bound {self.bound:.3f})"
            return (f"{self.suite}.{self.metric} = {self.value:.3f}{checked} {rel} {'min' if hib else 'max'} "
                    f"{self.limit:.3f} ({word} by {self.by:.3f})")
        if self.kind == "improvement":
            if self.reference is None:
                return f"{self.suite}.{self.metric} = {self.value:.3f}: no improvement over base shown ({self.detail})"
            return (f"{self.suite}.{self.metric} = {self.value:.3f} is not a significant improvement over base "
                    f"{self.reference:.3f} (paired p={self.p_value:.3g}, needs < {self.limit})")
        return (f"{self.suite}.{self.metric} = {self.value:.3f} regressed vs production {self.reference:.3f} "
                f"(worse by {self.by:.3f} on the same items, paired p={self.p_value:.3g}; allowed {self.limit:.3f})")


class GateVerdict(BaseModel):
    passed: bool
    gate: str
    gate_version: int
    fingerprint: str
    compared_to: str | None = None
    failures: list[GateFailure] = Field(default_factory=list)
    suites_passed: dict[str, bool] = Field(default_factory=dict)

    @property
    def message(self) -> str:
        head = f"gate {self.gate} v{self.gate_version}"
        if self.passed:
            vs = f" (no regression vs {self.compared_to})" if self.compared_to else ""
            return f"{head} passed: all {len(self.suites_passed)} suites met their thresholds{vs}"
        return f"{head} failed: " + "; ".join(f.describe() for f in self.failures)

    def summary(self) -> dict[str, Any]:
        """What the registry stores with the verdict (``message`` is what `models promote` shows)."""
        return {"message": self.message, "gate": self.gate, "gate_version": self.gate_version,
                "fingerprint": self.fingerprint, "compared_to": self.compared_to,
                "failed_suites": sorted({f.suite for f in self.failures}),
                "failures": [f.model_dump() for f in self.failures]}


def decide(config: GateConfig, candidate: dict[str, SuiteResult],
           production: list[PairedTest] | None = None, production_name: str | None = None, *,
           base: list[PairedTest] | None = None, contamination: list[str] | None = None) -> GateVerdict:
    """Apply ``config`` to the candidate's results: thresholds, paired tests against production and base.

    ``production`` / ``base`` are the candidate's paired tests against those models (same items);
    ``contamination`` the findings of the contamination check (each one fails the gate).
    """
    failures: list[GateFailure] = []
    for suite in config.suites:
        result = candidate[suite]
        for check in result.checks:
            if not check.passed and check.threshold is not None:
                failures.append(GateFailure(suite=suite, metric=check.metric, kind="threshold", value=check.value,
                                            limit=check.threshold, by=round(check.margin, 6), bound=check.bound))
        limit = config.regression_limit(suite)
        gated = {c.metric for c in result.checks}
        for test in production or []:
            if test.suite != suite or test.metric not in gated:
                continue
            worse = -test.delta if test.higher_is_better else test.delta
            if worse > limit + 1e-9 and test.p_regressed < ALPHA:
                failures.append(GateFailure(suite=suite, metric=test.metric, kind="regression",
                                            value=test.candidate, limit=limit, reference=test.reference,
                                            by=round(worse, 6), p_value=test.p_regressed))
    tests = {(t.suite, t.metric): t for t in base or []}
    for suite, metrics in config.improve_over_base.items():
        for metric in metrics:
            test = tests.get((suite, metric))
            if test is None or test.verdict != "improved":
                value = candidate[suite].metrics[metric]
                failures.append(GateFailure(
                    suite=suite, metric=metric, kind="improvement", value=value, limit=ALPHA,
                    reference=test.reference if test else None, by=0.0,
                    p_value=test.p_improved if test else 1.0,
                    detail="" if test else "base not measured on the same items"))
    for finding in contamination or []:
        failures.append(GateFailure(suite="*", metric="contamination", kind="contamination", value=1.0, limit=0.0,
                                    by=1.0, detail=finding))
    failed = {f.suite for f in failures}
    compared = production_name if production is not None else None
    return GateVerdict(passed=not failures, gate=config.name, gate_version=config.version,
                       fingerprint=config.fingerprint(), compared_to=compared, failures=failures,
                       suites_passed={s: s not in failed and "*" not in failed for s in config.suites})
