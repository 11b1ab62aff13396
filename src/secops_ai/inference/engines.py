"""Which engine decodes: ``SECOPS_ENGINE=auto|transformers|llamacpp``, decided once per loaded model.

``auto`` picks llama.cpp on a CPU when ``llama-server`` is built (``make setup``) and the transformers engine
on CUDA. Whatever is picked, the server's ``/v1`` routes, evals and agents all submit to the engine built
here (one decode path); every fallback to transformers is logged with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secops_ai.config import Settings
from secops_ai.inference.engine import BatchEngine

log = logging.getLogger(__name__)


def choose_engine(settings: Settings, device: str) -> tuple[str, str]:
    """``(engine, why)``: ``engine`` is ``transformers`` or ``llamacpp``."""
    from secops_ai.inference.llamacpp_build import server_binary

    want = settings.engine
    if want == "transformers":
        return "transformers", "SECOPS_ENGINE=transformers"
    if want == "auto" and device != "cpu":
        return "transformers", f"SECOPS_ENGINE=auto on {device}"
    if server_binary() is None:
        return "transformers", ("llama-server is not built (run `make setup`, or set SECOPS_LLAMACPP_SERVER); "
                                f"SECOPS_ENGINE={want} falls back to the transformers engine")
    return "llamacpp", f"SECOPS_ENGINE={want} on {device}"


def engine_tag(settings: Settings | None = None) -> str:
    """What local decoding runs on, for cache keys: ``""`` (transformers) or ``"-llamacpp-<quant>"``."""
    from secops_ai.config import get_settings
    from secops_ai.inference.loader import pick_device

    settings = settings or get_settings()
    kind, _ = choose_engine(settings, pick_device(settings.device))
    return f"-llamacpp-{settings.gguf_quant}" if kind == "llamacpp" else ""


def build_engine(model: Any, tokenizer: Any, *, settings: Settings, device: str, base_dir: Path | None,
                 adapters: dict[str, Path] | None = None, max_batch_size: int = 8, max_queue: int = 64,
                 on_queue_depth: Callable[[int], None] | None = None,
                 on_step: Callable[[int], None] | None = None) -> Any:
    """A started engine for ``model`` (a transformers model, peft adapters attached under ``adapters``' keys).

    With llama.cpp the transformers engine is built too, as the fallback for what llama.cpp cannot do.
    """
    fallback = BatchEngine(model, tokenizer, max_batch_size=max_batch_size, max_queue=max_queue,
                           on_queue_depth=on_queue_depth, on_step=on_step)
    kind, why = choose_engine(settings, device) if base_dir is not None else ("transformers", "no base folder")
    engine: Any = fallback
    if kind == "llamacpp":
        engine = _llamacpp(fallback, settings, base_dir, adapters or {}, on_queue_depth) or fallback
    if engine is fallback:
        (log.warning if settings.engine == "llamacpp" or "falls back" in why else log.info)(
            "engine: transformers (%s)", why)
        fallback.start()
        return fallback
    from secops_ai.inference.llamacpp_engine import LlamaServerError

    try:
        engine.start()
    except LlamaServerError as exc:
        log.warning("engine: llama.cpp did not start (%s); using the transformers engine", exc)
        engine.stop()
        fallback = BatchEngine(model, tokenizer, max_batch_size=max_batch_size, max_queue=max_queue,
                               on_queue_depth=on_queue_depth, on_step=on_step)
        fallback.start()
        return fallback
    log.info("engine: llama.cpp (%s, %s, %d LoRA adapters; %s)", engine.server.model.name, settings.gguf_quant,
             len(engine.lora_ids), why)
    return engine


def _llamacpp(fallback: BatchEngine, settings: Settings, base_dir: Path, adapters: dict[str, Path],
              on_queue_depth: Callable[[int], None] | None) -> Any:
    from secops_ai.inference.gguf import GGUFError, adapter_gguf, base_gguf
    from secops_ai.inference.llamacpp_build import server_binary
    from secops_ai.inference.llamacpp_engine import LlamaCppEngine, LlamaServer

    try:
        model_file = base_gguf(base_dir, settings.gguf_quant)
    except GGUFError as exc:
        log.warning("engine: no GGUF for %s (%s); using the transformers engine", base_dir.name, exc)
        return None
    loras: dict[str, Path] = {}
    for key, path in adapters.items():
        try:
            loras[key] = adapter_gguf(path, base_dir)
        except GGUFError as exc:  # that adapter's rows then run on transformers (logged by the engine)
            log.warning("adapter %s has no GGUF LoRA (%s)", path, exc)
    binary = server_binary()
    assert binary is not None
    ctx = min(fallback.max_positions, settings.max_prompt_tokens + settings.max_new_tokens)
    server = LlamaServer(binary, model_file, threads=settings.llamacpp_threads, parallel=fallback.max_batch_size,
                         ctx_per_slot=ctx)
    return LlamaCppEngine(fallback, server, loras, on_queue_depth=on_queue_depth,
                          stream_interval=settings.stream_interval_ms / 1000)
