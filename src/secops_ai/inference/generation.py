"""Batch generation for callers holding a bare model: a thin client of the batching engine.

There is one decode path (``inference/engine.py``); this only tokenizes already-templated prompts and
submits them, so text generated here is what ``/v1`` would return for the same model and prompt.
"""

from __future__ import annotations

from typing import Any

from secops_ai.inference.backend import LocalBackend
from secops_ai.inference.types import GenerationParams


def generate_batch(model: Any, tokenizer: Any, prompts: list[str], params: GenerationParams) -> list[str]:
    """Generate one continuation per prompt (already templated) on an engine around ``model``."""
    if not prompts:
        return []
    backend = LocalBackend(model, tokenizer)
    try:
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        return [r.text for r in backend.engine_client.generate(ids, params)]
    finally:
        backend.close()
