"""Conversations rendered into prompt text the way the model was trained to read them."""

from __future__ import annotations

from typing import Any

from secops_ai.inference.types import Message


def apply_chat_template(tokenizer: Any, messages: list[Message]) -> str:
    """Render a conversation with the model's own chat template, ending with the assistant's turn.

    A conversation without a system message gets ``SECOPS_SYSTEM_PROMPT`` (default: the one the training data
    uses), so the server, evals and agents all prompt the model the way it was trained.
    """
    from secops_ai.config import get_settings

    system = get_settings().system_prompt
    if system and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Models without a template (e.g. a pretrained nanoGPT export): plain "role: content" lines.
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])
