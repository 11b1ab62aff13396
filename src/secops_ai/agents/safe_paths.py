"""Host-side file access to working copies and originals that never follows a link out of them.

A working copy is written by sandboxed commands and patches, so its tree is hostile: a component of any path may
be a symlink (to ``/etc``), a FIFO (a read that blocks forever) or a huge sparse file. The host reads and copies
these trees only through this module:

- every path is opened component by component with ``O_NOFOLLOW`` relative to an open directory fd, so a link
  anywhere on the way (``d -> /etc`` in ``d/shadow``) fails instead of being followed, and nothing can be swapped
  between a check and the open;
- only regular files are read (``O_NONBLOCK`` plus ``fstat``: a FIFO or device is reported, never read);
- links are copied as links, never dereferenced; other special files are skipped;
- sizes count ``max(st_size, blocks)`` so a sparse file counts as what a copy of it would write.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class UnsafePath(ValueError):
    """A path that is absolute, climbs with ``..``, or goes through a symlink or a non-directory."""


class QuotaExceeded(OSError):
    """A tree is larger than the bytes or files it may hold."""

    def __init__(self, message: str, *, used: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.used, self.limit = used, limit


def rel_parts(rel: str | PurePosixPath) -> tuple[str, ...]:
    """The components of a relative path; :class:`UnsafePath` for absolute paths, ``..`` and NUL bytes."""
    text = str(rel)
    if "\0" in text:
        raise UnsafePath(f"path {text!r} contains a NUL byte")
    path = PurePosixPath(text)
    if path.is_absolute():
        raise UnsafePath(f"path {text!r} must be relative to the working copy")
    parts = tuple(p for p in path.parts if p != ".")
    if ".." in parts:
        raise UnsafePath(f"path {text!r} must not contain '..'")
    if not parts:
        raise UnsafePath(f"path {text!r} names the working copy itself, not a file in it")
    return parts


def symlink_on_path(root: Path, rel: str | PurePosixPath) -> str | None:
    """The first component of ``rel`` under ``root`` that is a symlink (or a non-directory parent), else ``None``.

    Components that do not exist yet are fine (a patch may create them).
    """
    current = Path(root)
    parts = rel_parts(rel)
    for i, part in enumerate(parts):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return "/".join(parts[: i + 1])
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return "/".join(parts[: i + 1])
    return None


def _open_parent(root: Path, parts: tuple[str, ...]) -> int:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a file where a folder should be
                raise UnsafePath(f"{'/'.join(parts)}: {part!r} is not a folder inside the working copy") from exc
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass(frozen=True)
class FileRead:
    """What :func:`read_inside` found: ``data`` for a regular file, else why not (``kind``)."""

    kind: str  # "file" | "missing" | "link" | "special" | "large" | "unsafe"
    data: bytes | None = None


def read_inside(root: Path, rel: str | PurePosixPath, *, max_bytes: int) -> FileRead:
    """Read ``root/rel`` without following any symlink on the way; never blocks on a FIFO."""
    try:
        parts = rel_parts(rel)
        dir_fd = _open_parent(root, parts)
    except UnsafePath:
        return FileRead("unsafe")
    except FileNotFoundError:
        return FileRead("missing")
    try:
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return FileRead("missing")
        except OSError:
            try:
                st = os.lstat(parts[-1], dir_fd=dir_fd)
            except OSError:
                return FileRead("missing")
            return FileRead("link" if stat.S_ISLNK(st.st_mode) else "special")
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return FileRead("special")
            if st.st_size > max_bytes:
                return FileRead("large")
            chunks, left = [], max_bytes + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
            return FileRead("large") if len(data) > max_bytes else FileRead("file", data)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def walk(root: Path, *, skip: frozenset[str] = frozenset({".git"})) -> dict[str, str]:
    """Every non-directory entry under ``root`` (relative POSIX path -> ``file``/``link``/``special``).

    Folders are entered only when they are real folders (``lstat``), never through a link.
    """
    out: dict[str, str] = {}
    stack = [(Path(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                out[rel] = "link"
            elif entry.is_dir(follow_symlinks=False):
                if entry.name not in skip:
                    stack.append((Path(entry.path), rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                out[rel] = "file"
            else:
                out[rel] = "special"
    return out


def links(root: Path) -> dict[str, str]:
    """Every symlink under ``root`` (relative path -> its target text)."""
    return {rel: os.readlink(Path(root) / rel) for rel, kind in walk(root, skip=frozenset()).items() if kind == "link"}


def _cost(st: os.stat_result) -> int:
    return max(st.st_size, getattr(st, "st_blocks", 0) * 512)


def tree_usage(root: Path, *, max_bytes: int | None = None, max_files: int | None = None,
               skip: frozenset[str] = frozenset()) -> tuple[int, int]:
    """(bytes, entries) under ``root`` without following links; stops early once a limit is passed."""
    total = count = 0
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name in skip:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            count += 1
            total += _cost(st) if stat.S_ISREG(st.st_mode) else 0
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            if (max_bytes is not None and total > max_bytes) or (max_files is not None and count > max_files):
                return total, count
    return total, count


def copy_tree(src: Path, dst: Path, *, max_bytes: int | None = None, max_files: int | None = None,
              skip: frozenset[str] = frozenset(), skip_hardlinks: bool = False) -> int:
    """Copy ``src`` into the new folder ``dst``: folders, regular files and links (as links), nothing else.

    ``skip_hardlinks`` leaves out regular files with more than one name: in a user's folder such a file may
    be the very inode of a file elsewhere on the host (``ln /etc/shadow repo/x``), which no path check sees.
    Raises :class:`QuotaExceeded` as soon as the copy would pass ``max_bytes`` or ``max_files`` (the partial
    copy is left for the caller to remove). Returns the bytes copied.
    """
    total = count = 0
    os.makedirs(dst)
    stack = [(Path(src), Path(dst))]
    while stack:
        s_dir, d_dir = stack.pop()
        for entry in sorted(os.scandir(s_dir), key=lambda e: e.name):
            if entry.name in skip:
                continue
            st = entry.stat(follow_symlinks=False)
            count += 1
            if max_files is not None and count > max_files:
                raise QuotaExceeded(f"more than {max_files} files and folders", used=count, limit=max_files)
            target = d_dir / entry.name
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(entry.path), target)
            elif stat.S_ISDIR(st.st_mode):
                os.mkdir(target, 0o755)
                stack.append((Path(entry.path), target))
            elif stat.S_ISREG(st.st_mode):
                if skip_hardlinks and st.st_nlink > 1:
                    log.warning("not copying %s: it has %d names (a hard link)", entry.path, st.st_nlink)
                    continue
                total += _cost(st)
                if max_bytes is not None and total > max_bytes:
                    raise QuotaExceeded(f"more than {max_bytes} bytes", used=total, limit=max_bytes)
                _copy_file(s_dir, entry.name, target, st)
    return total


def _copy_file(s_dir: Path, name: str, target: Path, st: os.stat_result) -> None:
    fd = os.open(Path(s_dir) / name, _FILE_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since the scan: skip it
            return
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      stat.S_IMODE(st.st_mode) & 0o777)
        try:
            while chunk := os.read(fd, 1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        finally:
            os.close(out)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)
