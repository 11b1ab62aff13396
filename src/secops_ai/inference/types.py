"""Plain types every model caller shares: a chat message, sampling settings and the backend protocol.

They live apart from the backends and the engine so that any module (the engine, the server, evals,
agents, an alternative engine) can import them without pulling in, or circling back to, an implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Message = dict[str, str]


@dataclass
class GenerationParams:
    """Sampling settings shared by the server, evals and agents."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


class ChatBackend(Protocol):
    """What evals and agents need from a model."""

    name: str

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        """One assistant reply for each conversation, in order."""
        ...
