"""The shape every suite shares: build a fixed list of items, then score the model's replies.

Like lm-eval-harness's tasks, a suite does not call the model itself: :mod:`secops_ai.evals.runner`
collects every suite's items, generates the replies in batches (greedy, fixed seed) with one progress
bar, and hands them back to :meth:`Suite.score`. That keeps suites pure functions of (items, replies),
which is what makes two runs of the gate give the same verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, Field

from secops_ai.evals.result import ItemRecord
from secops_ai.inference.types import ChatBackend, Message

T = TypeVar("T")


class SuiteConfig(BaseModel):
    """One suite's section of a gate config (configs/gates/*.yaml)."""

    model_config = {"extra": "forbid"}

    samples: int = Field(default=20, ge=1, description="Items drawn (fixed, seeded) from the suite's pool.")
    max_new_tokens: int = Field(default=128, ge=1, description="Reply length budget per item.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Metric -> floor/ceiling.")
    max_regression: float | None = Field(
        default=None, ge=0, description="Largest allowed worsening vs production per thresholded metric."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Suite-specific knobs (see docs/evals.md).")


@dataclass
class EvalItem:
    """One prompt to send and what the suite needs to judge the reply."""

    id: str
    messages: list[Message]
    expected: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class ScoreContext:
    """Extras a suite may use while scoring (e.g. a judge model for prompt injection)."""

    judge: ChatBackend | None = None
    seed: int = 0


class Suite(Protocol):
    name: str
    description: str
    metrics: tuple[str, ...]

    def build(self, cfg: SuiteConfig, seed: int) -> list[EvalItem]: ...

    def score(self, items: list[EvalItem], replies: list[str], cfg: SuiteConfig,
              ctx: ScoreContext) -> tuple[dict[str, float], list[ItemRecord], list[str]]: ...


def fixed_sample(pool: list[T], k: int, seed: int, key: Any) -> list[T]:
    """``k`` items of ``pool`` chosen by a seeded hash of each item's key: same seed, same items, same order.

    Hash ranking (rather than ``random.sample``) keeps the choice stable across Python versions and
    leaves earlier picks in place when the pool grows.
    """
    def rank(item: T) -> str:
        return hashlib.sha256(f"{seed}:{key(item)}".encode()).hexdigest()

    return sorted(pool, key=rank)[: min(k, len(pool))]


def load_bundled(name: str) -> list[dict[str, Any]]:
    """A JSON list shipped in ``secops_ai/evals/data/``."""
    return json.loads(resources.files("secops_ai.evals").joinpath("data", name).read_text(encoding="utf-8"))


def user(prompt: str, system: str | None = None) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*msgs, {"role": "user", "content": prompt}]
