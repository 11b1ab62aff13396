"""Request bodies of the OpenAI-compatible routes; defined once in :mod:`secops_ai.inference.protocol`."""

from __future__ import annotations

from secops_ai.inference.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    ContentPart,
    EmbeddingRequest,
    StreamOptions,
)

__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "ContentPart", "EmbeddingRequest",
           "StreamOptions"]
