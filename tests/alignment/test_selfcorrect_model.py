"""Verified mode on the real bundled SmolLM2-135M: held-out id questions come back right and cited (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.alignment.selfcorrect import SelfCorrectingBackend
from secops_ai.alignment.selfcorrect.catalog import lookup, states_title
from secops_ai.evals.holdout import held_out_cwes
from secops_ai.evals.suites.base import EvalItem, ScoreContext, SuiteConfig, fixed_sample, user
from secops_ai.evals.suites.hallucination import HallucinationSuite
from secops_ai.inference.backend import LocalBackend
from secops_ai.inference.types import GenerationParams

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(bundled_base_dir: Path) -> LocalBackend:
    return LocalBackend.load(bundled_base_dir, name="smollm2")


def test_verified_answers_held_out_id_questions_with_citations(model: LocalBackend) -> None:
    params = GenerationParams(max_tokens=48, temperature=0.0, seed=0)
    verified = SelfCorrectingBackend(model, "verified", scan_code=False)

    # CWE id -> name, for ids outside every training set
    picked = fixed_sample(held_out_cwes(), 4, 7, lambda c: c.id)
    replies = verified.chat([user(f"What is CWE-{c.id}? Answer with its name.") for c in picked], params)
    for c, reply in zip(picked, replies, strict=True):
        entry = lookup("cwe", f"CWE-{c.id}")
        assert entry is not None and states_title(reply, entry) and f"[CWE-{c.id}]" in reply, reply

    # the gate's own held-out hallucination items (name -> id, and invented ids), scored by the gate's suite
    suite, cfg = HallucinationSuite(), SuiteConfig(samples=4, options={"fake_share": 0.25})
    items: list[EvalItem] = suite.build(cfg, seed=1234)
    replies = verified.chat([it.messages for it in items], params)
    metrics, records, _ = suite.score(items, replies, cfg, ScoreContext(seed=1234))
    assert metrics["hallucination_rate"] == 0.0, [(r.prompt, r.response) for r in records if r.flagged]
    assert all(c.model_calls <= 2 for c in verified.last)  # draft + at most one regeneration
