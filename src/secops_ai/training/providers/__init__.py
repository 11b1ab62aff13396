"""Other training engines, looked up by name.

``builtin`` (TRL + peft) is :mod:`secops_ai.training.runner` itself; ``unsloth`` plugs its model loader
into that same runner (:mod:`.unsloth`); an engine that runs the whole job itself (LLaMA-Factory) is an
entry of :data:`EXTERNAL_RUNNERS`. Providers import :mod:`secops_ai.training.runs`, never the runner.
"""

from __future__ import annotations

from collections.abc import Callable

from secops_ai.training.config import RunConfig
from secops_ai.training.providers import llamafactory
from secops_ai.training.runs import RunResult

# provider name -> run(config, settings, *, run_id, progress) for engines that train outside this process
ExternalRunner = Callable[..., RunResult]
EXTERNAL_RUNNERS: dict[str, ExternalRunner] = {"llamafactory": llamafactory.run}


def external_runner(config: RunConfig) -> ExternalRunner | None:
    """The engine that runs ``config`` by itself, or ``None`` when the builtin runner trains it."""
    return EXTERNAL_RUNNERS.get(config.provider)

