"""Batched generation with transformers: the one place that calls ``model.generate``."""

from __future__ import annotations

from typing import Any

import torch

from secops_ai.inference.backend import GenerationParams


def generate_batch(model: Any, tokenizer: Any, prompts: list[str], params: GenerationParams) -> list[str]:
    """Generate one continuation per prompt (already templated), left-padded into one batch."""
    if not prompts:
        return []
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "pad_token_id": tokenizer.pad_token_id}
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if params.stop:
        kwargs.update(stop_strings=params.stop, tokenizer=tokenizer)
    if params.seed is not None:
        torch.manual_seed(params.seed)
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs)
    new_tokens = out[:, enc["input_ids"].shape[1]:]
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [truncate_at_stop(t, params.stop) for t in texts]


def truncate_at_stop(text: str, stop: list[str]) -> str:
    """Cut ``text`` at the first stop string (OpenAI semantics: the stop string is not returned)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if s and i != -1:
            cut = min(cut, i)
    return text[:cut]
