"""Chat backends: one interface over a local transformers(+peft) model and a remote OpenAI-compatible server.

Evals and agents call :class:`ChatBackend` and never care where the model runs. The local backend
submits to the same continuous-batching engine as the server (one decode path), so suites run batched
and greedy decoding (``temperature == 0``) gives the text a user of ``/v1`` would get.
"""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path
from typing import Any

from secops_ai.config import Settings
from secops_ai.inference.types import ChatBackend, GenerationParams, Message

log = logging.getLogger(__name__)


class LocalBackend:
    """A loaded transformers model (optionally with a peft adapter), decoded by the same continuous-batching
    engine as the server's ``/v1`` routes: evals and local agents get exactly what users are served.

    The engine thread starts on first use and stops when this backend is garbage-collected or
    :meth:`close` is called.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "local", batch_size: int = 8,
                 reproducible: bool = False) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.reproducible = reproducible  # see EngineBackend: evals want replies that never depend on batching
        self._engine_client: Any = None
        self._lock = threading.Lock()
        # Set by load(): where the weights came from, so the engine choice (SECOPS_ENGINE) can serve the
        # same files with llama.cpp. A bare in-memory model (training) always decodes with transformers.
        self.base_dir: Path | None = None
        self.adapter_dir: Path | None = None
        self.device = "cpu"

    @classmethod
    def load(cls, base_dir: Path, adapter_dir: Path | None = None, *, device: str = "cpu",
             name: str | None = None, reproducible: bool = False) -> LocalBackend:
        from secops_ai.inference.loader import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(base_dir, device=device)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
        backend = cls(model, tokenizer, name=name or (adapter_dir.name if adapter_dir else base_dir.name),
                      reproducible=reproducible)
        backend.base_dir, backend.adapter_dir, backend.device = base_dir, adapter_dir, device
        return backend

    @property
    def engine_client(self) -> Any:
        """The :class:`~secops_ai.inference.engine.EngineBackend` this backend submits to."""
        with self._lock:
            if self._engine_client is None:
                from secops_ai.config import get_settings
                from secops_ai.inference.engine import EngineBackend
                from secops_ai.inference.engines import build_engine

                # A peft model decodes with its active adapter; the engine's None means "adapters off".
                key = getattr(self.model, "active_adapter", None) if hasattr(self.model, "peft_config") else None
                engine = build_engine(self.model, self.tokenizer, settings=get_settings(), device=self.device,
                                      base_dir=self.base_dir,
                                      adapters={key: self.adapter_dir} if key and self.adapter_dir else None,
                                      max_batch_size=self.batch_size, max_queue=max(64, self.batch_size))
                weakref.finalize(self, engine.stop)
                self._engine_client = EngineBackend(engine, adapter=key, name=self.name,
                                                    reproducible=self.reproducible)
            return self._engine_client

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        return self.engine_client.chat(conversations, params)

    def close(self) -> None:
        if self._engine_client is not None:
            self._engine_client.engine.stop()


class RemoteBackend:
    """Any OpenAI-compatible server (this one, vLLM, Ollama, llama.cpp's server).

    ``base_url`` may end in ``/v1`` or not (one join for both, as the proxy uses). A list of conversations
    is sent as concurrent requests (at most ``concurrency`` at once, ``SECOPS_LLM_CONCURRENCY``) so a remote
    engine batches them.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 300.0,
                 concurrency: int = 8) -> None:
        import httpx

        from secops_ai.inference.remote import v1_url

        self.name = model
        self.model = model
        self.concurrency = max(1, concurrency)
        self.chat_url = v1_url(base_url, "/chat/completions")
        self._client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=self.concurrency),
                                    headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def post_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self._client.post(self.chat_url, json=body)
        resp.raise_for_status()
        return resp.json()

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        params = params or GenerationParams()

        def one(conv: list[Message]) -> str:
            body: dict[str, Any] = {"model": self.model, "messages": conv, "max_tokens": params.max_tokens,
                                    "temperature": params.temperature, "top_p": params.top_p}
            if params.seed is not None:
                body["seed"] = params.seed
            if params.stop:
                body["stop"] = params.stop
            return self.post_chat(body)["choices"][0]["message"]["content"] or ""

        if len(conversations) <= 1:
            return [one(c) for c in conversations]
        with ThreadPoolExecutor(min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(one, conversations))


def backend_from_settings(settings: Settings, model: str | None = None, *,
                          production: str | None = None) -> ChatBackend:
    """The backend the server would use for ``model`` (``None``: the configured default).

    ``production`` is the registry's production run (``<provider>/<run-id>``), used when the spec is
    ``production``; inference does not read the registry itself.
    """
    from secops_ai.inference.loader import pick_device, resolve_adapter, resolve_base_model

    if settings.llm_base_url:
        return RemoteBackend(settings.llm_base_url, model or settings.adapter or settings.base_model,
                             api_key=settings.llm_api_key, concurrency=settings.llm_concurrency)
    base_dir = resolve_base_model(settings)
    spec = model if model is not None else settings.adapter
    adapter = resolve_adapter(settings.workspace, spec, base_dir, production=production)
    return LocalBackend.load(base_dir, adapter.path if adapter else None, device=pick_device(settings.device),
                             name=adapter.name if adapter else base_dir.name)
