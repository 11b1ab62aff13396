"""Where the read-only shared evaluation data lives.

The CyberSecEval files sit in ``../shared/data`` beside the checkout (see ``/work/shared/data/README.md``).
``SECOPS_SHARED_DATA`` overrides the search, e.g. for an installed package or CI.
"""

from __future__ import annotations

import os
from pathlib import Path


class SharedDataNotFound(FileNotFoundError):
    """The shared data folder (or a file inside it) is missing."""


def shared_data_dir() -> Path:
    """``$SECOPS_SHARED_DATA`` if set, else the first ``shared/data`` found walking up from this file."""
    override = os.environ.get("SECOPS_SHARED_DATA", "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise SharedDataNotFound(f"SECOPS_SHARED_DATA={override}: no such folder")
        return path.resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate.resolve()
    raise SharedDataNotFound(
        f"no shared/data folder found above {here}; set SECOPS_SHARED_DATA to the folder holding cyberseceval/"
    )


def shared_file(relative: str) -> Path:
    """A file under the shared data folder, with a clear error naming it when absent."""
    path = shared_data_dir() / relative
    if not path.is_file():
        raise SharedDataNotFound(f"{path} not found (needed by the evaluation suites; set SECOPS_SHARED_DATA)")
    return path
