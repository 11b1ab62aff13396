"""Which model an agent run may name and where its backend comes from.

An unknown name fails before the run starts, never falls back silently.

Serving keeps its documented fallback (a bad ``SECOPS_ADAPTER`` serves the base model with a warning), but a
person who asks for ``--model builtin/nope`` wants that model: :func:`check_model` says it does not exist and
lists the ones that do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secops_ai.config import Settings

SCRIPTED = "scripted"


class UnknownModelError(LookupError):
    """The run names a model that is neither the base model nor an adapter in the workspace."""


def check_model(settings: Settings, name: str | None) -> None:
    """Raise :class:`UnknownModelError` unless ``name`` is usable for an agent run.

    Accepted: ``None`` (the configured default), ``scripted``, ``production`` (the registry resolves it),
    ``base`` or the base model's name, and ``<provider>/<run-id>`` with a peft adapter under ``models/``.
    With a remote engine (``SECOPS_LLM_BASE_URL``) the remote server decides.
    """
    if name is None or name in ("", SCRIPTED, "production", "base") or settings.llm_base_url:
        return
    base = settings.base_model
    if name in (base, Path(base).name, Path(base).stem):
        return
    models = settings.workspace.models
    parts = name.split("/")
    if len(parts) == 2 and all(p and p not in (".", "..") for p in parts) \
            and (models / name / "adapter_config.json").is_file():
        return
    from secops_ai.inference.loader import discover_adapters

    known = [a.name for a in discover_adapters(settings.workspace)]
    hint = f"available: base, {', '.join(known)}" if known else "no adapters are trained yet; use the base model"
    raise UnknownModelError(f"model {name!r} not found (no adapter at {models / name}); {hint}")


def backend_factory(settings: Settings, service: Any | None = None) -> Callable[[str | None], Any]:
    """How agent runs of a server get their model: the server's own engine when it serves one locally.

    ``service`` is the server's :class:`~secops_ai.inference.service.ModelService` (``None`` outside a server).
    While it is still loading, a run waits for it rather than load a second copy beside it (two concurrent
    ``from_pretrained`` calls in one process also break transformers' meta-device initialisation). Without a
    local served model (remote engine, or a server started without one) each model name is loaded once and kept.
    """
    cache: dict[str | None, Any] = {}
    lock = threading.Lock()

    def factory(model: str | None) -> Any:
        if service is not None and not service.remote_url:
            if service.loading:
                service.wait_loaded()
            if getattr(service, "model", None) is not None:
                return service.backend(model)  # one decode path, one copy of the weights
        with lock:
            if model not in cache:
                from secops_ai.inference.backend import backend_from_settings

                cache[model] = backend_from_settings(settings, model)
            return cache[model]

    return factory
