"""The user's cache folder for what every clone can share: the llama.cpp build, prepared scanner rules."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/secops-ai``, else ``~/.cache/secops-ai``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "secops-ai"
