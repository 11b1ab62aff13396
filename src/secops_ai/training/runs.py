"""What every training provider shares about a run: its id, its work folder, its result and its errors.

Kept apart from :mod:`.runner` (the builtin engine) so that providers (:mod:`.providers`) and background
jobs use them without importing the runner that dispatches to them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops_ai.config import Settings
from secops_ai.training.config import RunConfig


class TrainingError(RuntimeError):
    """A run cannot start or cannot finish; the message says why and what to do."""


@dataclass
class RunResult:
    """What a finished run produced."""

    run_name: str           # "<provider>/<run-id>", the name the registry and SECOPS_ADAPTER use
    run_id: str
    provider: str
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"


def work_root(settings: Settings) -> Path:
    return settings.workspace.storage / "training"


def new_run_id(config: RunConfig) -> str:
    return f"{config.default_run_prefix()}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def library_versions() -> dict[str, str]:
    import accelerate
    import peft
    import torch
    import transformers
    import trl

    from secops_ai import __version__

    mods = {"torch": torch, "transformers": transformers, "peft": peft, "trl": trl, "accelerate": accelerate}
    return {**{name: str(mod.__version__) for name, mod in mods.items()}, "secops_ai": str(__version__)}


def resolve_model_path(config: RunConfig, settings: Settings) -> Path:
    """The base model as a local folder: a path, or a name under models/base/ (bundled one converted once)."""
    from secops_ai.inference.loader import resolve_base_model

    return resolve_base_model(settings.model_copy(update={"base_model": config.model_name_or_path}))
