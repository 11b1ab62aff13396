"""The evaluation suites, by name (the keys used in gate configs)."""

from __future__ import annotations

from secops_ai.evals.suites.base import EvalItem, ScoreContext, Suite, SuiteConfig
from secops_ai.evals.suites.hallucination import HallucinationSuite
from secops_ai.evals.suites.insecure_code import InsecureCodeSuite
from secops_ai.evals.suites.policy import PolicySuite
from secops_ai.evals.suites.prompt_injection import PromptInjectionSuite
from secops_ai.evals.suites.task_accuracy import TaskAccuracySuite
from secops_ai.evals.suites.toxicity import ToxicitySuite

SUITES: dict[str, Suite] = {s.name: s for s in (
    ToxicitySuite(), HallucinationSuite(), PolicySuite(), PromptInjectionSuite(), InsecureCodeSuite(),
    TaskAccuracySuite(),
)}

__all__ = ["SUITES", "EvalItem", "ScoreContext", "Suite", "SuiteConfig"]
