"""Chat backends: one interface over a local transformers(+peft) model and a remote OpenAI-compatible server.

Evals and agents call :class:`ChatBackend` and never care where the model runs. The local backend
generates a whole batch at once (left padding) so suites run batched; greedy decoding when
``temperature == 0`` makes results deterministic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from secops_ai.config import Settings

log = logging.getLogger(__name__)

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


class LocalBackend:
    """A loaded transformers model (optionally with a peft adapter) generating in batches."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "local", batch_size: int = 8) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def load(cls, base_dir: Path, adapter_dir: Path | None = None, *, device: str = "cpu",
             name: str | None = None) -> LocalBackend:
        from secops_ai.inference.loader import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(base_dir, device=device)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
        return cls(model, tokenizer, name=name or (adapter_dir.name if adapter_dir else base_dir.name))

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        from secops_ai.inference.generation import generate_batch

        params = params or GenerationParams()
        prompts = [apply_chat_template(self.tokenizer, conv) for conv in conversations]
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(generate_batch(self.model, self.tokenizer, prompts[start:start + self.batch_size], params))
        return out


class RemoteBackend:
    """Any OpenAI-compatible server (this one, vLLM, Ollama, llama.cpp's server)."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 300.0) -> None:
        import httpx

        self.name = model
        self.model = model
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                    headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        params = params or GenerationParams()
        replies = []
        for conv in conversations:
            body: dict[str, Any] = {"model": self.model, "messages": conv, "max_tokens": params.max_tokens,
                                    "temperature": params.temperature, "top_p": params.top_p}
            if params.seed is not None:
                body["seed"] = params.seed
            if params.stop:
                body["stop"] = params.stop
            resp = self._client.post("/v1/chat/completions", json=body)
            resp.raise_for_status()
            replies.append(resp.json()["choices"][0]["message"]["content"] or "")
        return replies


def apply_chat_template(tokenizer: Any, messages: list[Message]) -> str:
    """Render a conversation with the model's own chat template, ending with the assistant's turn."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Models without a template (e.g. a pretrained nanoGPT export): plain "role: content" lines.
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def backend_from_settings(settings: Settings, model: str | None = None, *,
                          production: str | None = None) -> ChatBackend:
    """The backend the server would use for ``model`` (``None``: the configured default).

    ``production`` is the registry's production run (``<provider>/<run-id>``), used when the spec is
    ``production``; inference does not read the registry itself.
    """
    from secops_ai.inference.loader import pick_device, resolve_adapter, resolve_base_model

    if settings.llm_base_url:
        return RemoteBackend(settings.llm_base_url, model or settings.adapter or settings.base_model,
                             api_key=settings.llm_api_key)
    base_dir = resolve_base_model(settings)
    spec = model if model is not None else settings.adapter
    adapter = resolve_adapter(settings.workspace, spec, base_dir, production=production)
    return LocalBackend.load(base_dir, adapter.path if adapter else None, device=pick_device(settings.device),
                             name=adapter.name if adapter else base_dir.name)
