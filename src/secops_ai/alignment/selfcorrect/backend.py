"""Self-correction as a :class:`~secops_ai.inference.backend.ChatBackend`: what the gate and agents wrap."""

from __future__ import annotations

from secops_ai.alignment.selfcorrect.corrector import backend_generate, check_mode, correct_batch
from secops_ai.alignment.selfcorrect.trace import MODES, Correction
from secops_ai.inference.types import ChatBackend, GenerationParams, Message

SUFFIXES = tuple(m for m in MODES if m != "off")


def split_model_suffix(model: str | None) -> tuple[str | None, str | None]:
    """``"production+verified"`` -> ``("production", "verified")``; no known suffix -> ``(model, None)``."""
    if model:
        base, sep, suffix = model.rpartition("+")
        if sep and suffix in SUFFIXES:
            return base, suffix
    return model, None


class SelfCorrectingBackend:
    """Replies of ``inner`` passed through :func:`correct_batch` (``last`` holds the latest corrections)."""

    def __init__(self, inner: ChatBackend, mode: str, *, scan_code: bool = True) -> None:
        self.inner = inner
        self.mode = check_mode(mode)
        self.scan_code = scan_code
        self.name = f"{getattr(inner, 'name', 'model')}+{mode}" if mode != "off" else getattr(inner, "name", "model")
        self.last: list[Correction] = []

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        self.last = correct_batch(conversations, backend_generate(self.inner, params), self.mode,
                                  scan_code=self.scan_code)
        return [c.final for c in self.last]

    def __getattr__(self, name: str):  # model, tokenizer, ... of the wrapped backend
        return getattr(self.inner, name)
