"""A chat backend with its guardrails on: what a client of the server would get, for the gate and benches.

Requests the policy refuses never reach the model (the reply is the helpful refusal); cautioned requests
carry the caution note; every answer goes through the output checks (a blocked answer is replaced by the
block notice). :attr:`GuardedBackend.verdicts` keeps the per-conversation reports for inspection.
"""

from __future__ import annotations

from typing import Any

from secops_ai.guardrails.screen import ModelGuard
from secops_ai.inference.types import ChatBackend, GenerationParams, Message


class GuardedBackend:
    def __init__(self, inner: ChatBackend, guard: ModelGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.name = f"{getattr(inner, 'name', 'model')}+guardrails:{guard.profile.name}"
        self.verdicts: list[dict[str, Any]] = []

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        inputs = [self.guard.screen_input(conv) for conv in conversations]
        pending = [i for i, v in enumerate(inputs) if v.decision != "refuse"]
        generated = self.inner.chat([inputs[i].messages for i in pending], params) if pending else []
        replies: list[str] = [v.refusal or "" for v in inputs]
        outputs: dict[int, Any] = {}
        for i, text in zip(pending, generated, strict=True):
            out = self.guard.screen_output(text)
            outputs[i] = out
            replies[i] = out.text
        for i, v in enumerate(inputs):
            self.verdicts.append(self.guard.report(v, [outputs[i]] if i in outputs else None))
        return replies
