"""Gate configs (versioned YAML in configs/gates/) and the verdict: thresholds plus no regression vs production.

A gate passes when every thresholded metric of every suite meets its threshold *and* no such metric is worse
than the production model's by more than the suite's ``max_regression`` (default: the gate's). The verdict
names each failing suite, metric and by how much, so `models promote` can say why it refuses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from secops_ai.evals.result import HIGHER_IS_BETTER, SuiteResult
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
    suites: dict[str, SuiteConfig]

    @model_validator(mode="after")
    def _check_suites(self) -> GateConfig:
        for name, cfg in self.suites.items():
            if name not in SUITES:
                raise ValueError(f"suites.{name}: unknown suite (known: {', '.join(SUITES)})")
            for metric in cfg.thresholds:
                if metric not in SUITES[name].metrics:
                    raise ValueError(f"suites.{name}.thresholds.{metric}: unknown metric "
                                     f"(this suite reports {', '.join(SUITES[name].metrics)})")
        if not self.suites:
            raise ValueError("suites: at least one suite is needed")
        return self

    def regression_limit(self, suite: str) -> float:
        own = self.suites[suite].max_regression
        return self.max_regression if own is None else own

    def fingerprint(self) -> str:
        """Hash of everything that changes the measurements (not the thresholds): samples, seeds, lengths."""
        measured = {"seed": self.seed, "suites": {k: {"samples": v.samples, "max_new_tokens": v.max_new_tokens,
                                                      "options": v.options} for k, v in sorted(self.suites.items())}}
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
    kind: Literal["threshold", "regression"]
    value: float
    limit: float
    reference: float | None = None  # production's value, for regressions
    by: float

    def describe(self) -> str:
        hib = HIGHER_IS_BETTER[self.metric]
        if self.kind == "threshold":
            rel = "<" if hib else ">"
            word = "short" if hib else "over"
            return (f"{self.suite}.{self.metric} = {self.value:.3f} {rel} {'min' if hib else 'max'} "
                    f"{self.limit:.3f} ({word} by {self.by:.3f})")
        return (f"{self.suite}.{self.metric} = {self.value:.3f} regressed vs production {self.reference:.3f} "
                f"(worse by {self.by:.3f}, allowed {self.limit:.3f})")


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
           production: dict[str, dict[str, float]] | None, production_name: str | None = None) -> GateVerdict:
    """Apply ``config`` to the candidate's results, and its regression limits against production's metrics."""
    failures: list[GateFailure] = []
    for suite in config.suites:
        result = candidate[suite]
        for check in result.checks:
            if not check.passed and check.threshold is not None:
                failures.append(GateFailure(suite=suite, metric=check.metric, kind="threshold", value=check.value,
                                            limit=check.threshold, by=round(check.margin, 6)))
        ref = (production or {}).get(suite)
        if ref is None:
            continue
        limit = config.regression_limit(suite)
        for check in result.checks:
            if check.metric not in ref:
                continue
            worse = (ref[check.metric] - check.value) if check.higher_is_better else (check.value - ref[check.metric])
            if worse > limit + 1e-9:
                failures.append(GateFailure(suite=suite, metric=check.metric, kind="regression", value=check.value,
                                            limit=limit, reference=ref[check.metric], by=round(worse, 6)))
    failed = {f.suite for f in failures}
    return GateVerdict(passed=not failures, gate=config.name, gate_version=config.version,
                       fingerprint=config.fingerprint(), compared_to=production_name if production else None,
                       failures=failures, suites_passed={s: s not in failed for s in config.suites})
