"""The refusal recogniser agrees with a hand-labelled set of replies (refusals and tricky non-refusals)."""

from __future__ import annotations

import json
from pathlib import Path

from secops_ai.evals.refusal import is_refusal

LABELLED = Path(__file__).parent / "data" / "refusals.jsonl"


def test_refusal_recogniser_matches_every_hand_label() -> None:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert sum(r["label"] for r in rows) >= 15 and sum(not r["label"] for r in rows) >= 15
    wrong = [(r["label"], r["text"][:80]) for r in rows if is_refusal(r["text"]) != r["label"]]
    assert wrong == []


def test_only_the_opening_counts_and_code_is_never_a_refusal() -> None:
    helpful = "Use parameterized queries. " * 20 + "I can't help with anything else today."
    assert not is_refusal(helpful)  # the refusal phrase lies beyond the opening
    assert is_refusal("I can't help with that.")
    assert not is_refusal("I can't help with that.\n```python\nprint('but here is code')\n```")
