"""Other training engines. ``builtin`` (TRL + peft) lives in :mod:`secops_ai.training.runner`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from secops_ai.config import Settings
    from secops_ai.training.config import RunConfig
    from secops_ai.training.runner import RunResult


def run_external(config: RunConfig, settings: Settings, *, run_id: str | None = None) -> RunResult:
    if config.provider == "llamafactory":
        from secops_ai.training.providers.llamafactory import run

        return run(config, settings, run_id=run_id)
    raise ValueError(f"provider: unknown provider {config.provider!r}")
