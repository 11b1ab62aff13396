"""Crash-safe writes: build in a temporary sibling, then rename into place.

A reader sees either the whole file/folder or nothing, never a half-written one (DESIGN.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: Path, *, exist_ok: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``final``; on success rename it to ``final``.

    On any exception the temporary folder is removed and ``final`` is untouched. Raises
    ``FileExistsError`` when ``final`` exists (and ``exist_ok`` is false), before any work is done.
    With ``exist_ok`` a ``final`` that another process completed meanwhile wins and ours is dropped
    (used for idempotent caches such as the converted base model).
    """
    if final.exists() and not exist_ok:
        raise FileExistsError(f"{final} already exists; nothing is overwritten (write a new version instead)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            if not exist_ok:
                raise FileExistsError(f"{final} appeared while it was being written; nothing was overwritten")
            shutil.rmtree(tmp, ignore_errors=True)
            return
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def make_read_only(root: Path) -> None:
    """Remove write bits from every file and folder under ``root`` (immutable datasets and runs)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
        p = Path(dirpath)
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
