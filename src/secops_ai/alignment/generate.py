"""Generation for evolve: the serving engine (``BatchEngine`` behind ``ModelService``), made reproducible.

The engine admits waiting requests between decode steps, so which requests share a batch normally depends
on timing, and a row's logits depend (in the last bits) on its neighbours. Evolve needs the same samples on
every run (same config + seeds + model => byte-identical preference data on CPU), so:

* transformers engine: a chunk of requests is queued while the model lock is held; the engine sees the whole
  chunk at once and its schedule (which rows share each forward pass) is a pure function of the chunk;
* llama.cpp engine: llama-server schedules rows as they arrive over HTTP, so rows go one at a time, each
  decoded from a clean state (``GenRequest.reproducible``); the N samples of one prompt share its prompt pass.

Every sampled request carries its own seed, so its tokens do not depend on its neighbours' draws either.
"""

from __future__ import annotations

import gc
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops_ai.inference.types import GenerationParams

Message = dict[str, str]


@dataclass
class Request:
    """One generation: a conversation, optionally an assistant opening the model must continue from."""

    messages: list[Message]
    params: GenerationParams
    prefix: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class EngineGenerator:
    """The local model (base + the adapter under improvement) served by one ``BatchEngine``."""

    def __init__(self, settings: Any, adapter: str | None, *, chunk: int = 16) -> None:
        from secops_ai.inference.service import ModelService

        self.service = ModelService(settings.model_copy(update={"adapter": None}))
        self.service.load_sync()
        if self.service.load_error:
            raise RuntimeError(f"the model failed to load: {self.service.load_error}")
        self.adapter = self.service.resolve(adapter) if adapter else None
        self.key = self.service.engine_key(self.adapter)
        self.tokenizer = self.service.tokenizer
        assert self.service.engine is not None
        self.chunk = max(1, min(chunk, self.service.engine.max_queue))
        self.name = self.service.public_id(self.adapter)
        self.too_long = 0
        self._last_prompt: list[int] | None = None
        self.progress: Callable[[str], None] | None = None

    def generate(self, requests: list[Request]) -> list[str]:
        self._last_prompt = None  # a prompt cache is reused only within one call: resume-safe
        out: list[str] = []
        step = max(self.chunk, len(requests) // 4)  # progress about every quarter
        for start in range(0, len(requests), self.chunk):
            out.extend(self._chunk(requests[start:start + self.chunk]))
            if self.progress and len(requests) > self.chunk and (len(out) % step < self.chunk
                                                                  or len(out) == len(requests)):
                self.progress(f"  {len(out)}/{len(requests)} generations")
        return out

    def _chunk(self, requests: list[Request]) -> list[str]:
        from secops_ai.inference.engine import GenRequest, submit_reproducibly

        engine = self.service.engine
        assert engine is not None
        done = [threading.Event() for _ in requests]
        texts: list[list[str]] = [[] for _ in requests]
        errors: list[str] = []

        def emitter(i: int):
            def emit(kind: str, payload: Any) -> None:
                if kind == "delta":
                    texts[i].append(payload)
                else:
                    if kind == "error":
                        errors.append(str(payload))
                    done[i].set()
            return emit

        from secops_ai.inference.service import PromptTooLongError

        reqs: list[tuple[int, GenRequest]] = []
        for i, r in enumerate(requests):
            try:
                ids = self.service.encode_chat(r.messages)
            except PromptTooLongError:
                self.too_long += 1  # answered with "" (an unreadable judgment), counted in the stage's stats
                done[i].set()
                continue
            if r.prefix:
                ids = ids + self.tokenizer(r.prefix, add_special_tokens=False)["input_ids"]
            reqs.append((i, GenRequest(ids, r.params, emitter(i), adapter=self.key, reproducible=True,
                                       reuse_prompt=ids == self._last_prompt)))
            self._last_prompt = ids
        submit_reproducibly(engine, [(req, done[i]) for i, req in reqs])
        for event in done:  # rows too long to submit were set done above
            event.wait()
        if errors:
            raise RuntimeError(f"generation failed: {errors[0]}")
        return [r.prefix + "".join(t) for r, t in zip(requests, texts, strict=True)]

    def close(self) -> None:
        if self.service.engine:
            self.service.engine.stop()
        self.service.model = self.service.engine = None
        gc.collect()


class RemoteGenerator:
    """Any OpenAI-compatible endpoint (``judge.base_url``): a bigger judge on vLLM, for example."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None) -> None:
        from secops_ai.inference.backend import RemoteBackend

        self.backend = RemoteBackend(base_url, model, api_key=api_key)
        self.name = f"{model}@{base_url}"

    def generate(self, requests: list[Request]) -> list[str]:
        out = []
        for r in requests:
            conv = r.messages + ([{"role": "assistant", "content": r.prefix}] if r.prefix else [])
            out.append(r.prefix + self.backend.chat([conv], r.params)[0])
        return out

    def close(self) -> None:
        pass


def weights_digest(path: Path | None) -> str | None:
    """sha256 of an adapter's weights (the manifest pins exactly which model generated the data)."""
    if path is None:
        return None
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        f = Path(path) / name
        if f.is_file():
            return hashlib.sha256(f.read_bytes()).hexdigest()
    return None


def seed_for(*parts: object) -> int:
    """A stable 31-bit seed from any parts (config seed, iteration, prompt id, sample index)."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF
