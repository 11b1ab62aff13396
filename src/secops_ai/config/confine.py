"""Keep file access inside a root: resolve symlinks first, then check the real path is under the real root.

Listing and serving code (datasets, models, training runs) calls these before reading anything a request or
a folder listing names, so a link planted under ``SECOPS_HOME`` never makes the server read outside it.
"""

from __future__ import annotations

from pathlib import Path


def is_inside(path: Path | str, root: Path | str) -> bool:
    """True when ``path``, with every symlink resolved, exists and lies under ``root`` (also resolved)."""
    try:
        real = Path(path).resolve(strict=True)
        base = Path(root).resolve(strict=False)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return False
    return real == base or real.is_relative_to(base)


def resolve_inside(path: Path | str, roots: list[Path] | tuple[Path, ...]) -> Path | None:
    """The resolved ``path`` if it exists under one of ``roots``. A relative path is tried under each root
    and under the root's parent (so ``configs/x.yaml`` names ``<project>/configs/x.yaml``), and must still
    land inside that root once links are resolved."""
    p = Path(path)
    for root in roots:
        for base in (Path(root), Path(root).parent):
            candidate = p if p.is_absolute() else base / p
            if is_inside(candidate, root):
                return candidate.resolve()
    return None
