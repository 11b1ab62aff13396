"""Where the bundled third-party data lives (CyberSecEval subsets, tinyshakespeare).

The files ship inside the package (``secops_ai/shared_data/``, with CyberSecEval's MIT licence), so a fresh
clone or an installed wheel needs nothing beside it. ``SECOPS_SHARED_DATA`` overrides the folder (same
layout), e.g. to evaluate on a newer CyberSecEval release.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


class SharedDataNotFound(FileNotFoundError):
    """The data folder (or a file inside it) is missing."""


def bundled_data_dir() -> Path:
    """``secops_ai/shared_data`` inside the installed package."""
    return Path(str(resources.files("secops_ai").joinpath("shared_data")))


def shared_data_dir() -> Path:
    """``$SECOPS_SHARED_DATA`` if set, else the data bundled with the package."""
    override = os.environ.get("SECOPS_SHARED_DATA", "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise SharedDataNotFound(f"SECOPS_SHARED_DATA={override}: no such folder")
        return path.resolve()
    path = bundled_data_dir()
    if not path.is_dir():
        raise SharedDataNotFound(f"{path}: the bundled data folder is missing from this installation; "
                                 "reinstall secops-ai or set SECOPS_SHARED_DATA to a folder holding cyberseceval/")
    return path


def shared_file(relative: str) -> Path:
    """A file under the data folder, with a clear error naming it when absent."""
    path = shared_data_dir() / relative
    if not path.is_file():
        hint = ("SECOPS_SHARED_DATA points at a folder without it" if os.environ.get("SECOPS_SHARED_DATA", "").strip()
                else "the installation is incomplete")
        raise SharedDataNotFound(f"{path} not found (needed by the evaluation suites; {hint})")
    return path
