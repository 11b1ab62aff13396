"""Propose a patch: apply a unified diff to a sandbox copy and verify it by re-running the scanner.

The user's original folder is never written. The diff is applied (with GNU ``patch``, inside the sandbox)
to a fresh copy of the working copy; the scanner runs before and after; the result lists the findings that
disappeared and any that appeared. A verified patch (something fixed, nothing as severe added) becomes the new state of
the working copy so later steps build on it; the cumulative diff against the original is returned for review.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

from secops_ai.agents.safe_paths import (
    QuotaExceeded,
    UnsafePath,
    copy_tree,
    links,
    read_inside,
    rel_parts,
    symlink_on_path,
    walk,
)
from secops_ai.agents.sandbox import Sandbox, SandboxLimits
from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult, cap_text
from secops_ai.agents.tools.reports import SEVERITY_ORDER, Finding, diff_findings, render_findings
from secops_ai.agents.tools.scanners import ScanError, ScannerName, scan

_HEADER = re.compile(r"^(---|\+\+\+) (.+)$")
_GIT_PATHS = re.compile(r"^(rename from|rename to|copy from|copy to|Index:) (.+)$")
_GIT_MODE = re.compile(r"^(new file mode|deleted file mode|new mode|old mode|index \S+) (\d{6})\s*$")
_LINK_MODE = "120000"
LINK_REFUSAL = "patches may not create, change, replace or go through symlinks"


class PatchError(ValueError):
    """A diff that is malformed or touches paths outside the working copy."""


def _header_name(raw: str) -> str:
    """A ``---``/``+++`` file name without its tab-separated timestamp (and git's C-style quotes)."""
    name = raw.split("\t", 1)[0].rstrip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape", "replace")
    return name


def _check_name(name: str, n: int) -> None:
    try:
        rel_parts(name)
    except UnsafePath:
        raise PatchError(f"diff line {n}: path {name!r} must be relative to the workspace, without '..'") from None


def diff_paths(diff: str) -> tuple[list[str], int]:
    """(files the diff touches, strip level for ``patch -p``); rejects absolute and ``..`` paths and symlinks."""
    if "\n@@ " not in "\n" + diff:
        raise PatchError("not a unified diff: no '@@ -a,b +c,d @@' hunk header")
    names: list[str] = []
    for n, line in enumerate(diff.splitlines(), 1):
        mode = _GIT_MODE.match(line)
        if mode and mode.group(2) == _LINK_MODE:
            raise PatchError(f"diff line {n}: a symlink (mode {_LINK_MODE}); {LINK_REFUSAL}")
        other = _GIT_PATHS.match(line)
        if other:
            _check_name(_header_name(other.group(2)), n)
            continue
        m = _HEADER.match(line)
        if not m:
            continue
        name = _header_name(m.group(2))
        if name == "/dev/null":
            continue
        _check_name(name, n)
        names.append(name)
    if not names:
        raise PatchError("not a unified diff: no '--- a/file' / '+++ b/file' headers")
    strip = 1 if all(PurePosixPath(n).parts[0] in ("a", "b") and len(PurePosixPath(n).parts) > 1 for n in names) else 0
    files = sorted({str(PurePosixPath(*PurePosixPath(n).parts[strip:])) for n in names})
    return files, strip


def links_on_paths(root: Path, files: list[str]) -> list[str]:
    """Messages for each touched path that is, or goes through, a symlink in ``root``."""
    out = []
    for rel in files:
        link = symlink_on_path(root, rel)
        if link is not None:
            what = "is a symlink" if link == rel else f"goes through {link!r}, which is a symlink or not a folder"
            out.append(f"{rel!r} {what}")
    return out


def tree_diff(original: Path, copy: Path, *, max_file_bytes: int = 1 << 20) -> str:
    """Unified diff (``a/`` = original, ``b/`` = copy) of every text file that differs; skips ``.git``.

    Both trees are walked and read without following links (:mod:`secops_ai.agents.safe_paths`): a path is
    read on a side only when it is a regular file reached through real folders of that side, so a copy holding
    ``d/shadow`` where the original has ``d -> /etc`` never reads the host's file. Links, special, binary and
    large files that differ are listed in ``#`` lines before the diff (which ``patch`` and ``git apply`` skip).
    """
    a_tree, b_tree = walk(original), walk(copy)
    notes: list[str] = []
    chunks: list[str] = []
    for rel in sorted(a_tree.keys() | b_tree.keys()):
        kinds = (a_tree.get(rel), b_tree.get(rel))
        if "link" in kinds or "special" in kinds:
            if kinds == ("link", "link") and os.readlink(original / rel) == os.readlink(copy / rel):
                continue
            notes.append(f"# not diffed: {rel} ({' -> '.join(k or 'absent' for k in kinds)}; links are not followed)")
            continue
        a, b = _lines(original, rel, kinds[0], max_file_bytes), _lines(copy, rel, kinds[1], max_file_bytes)
        if a is None or b is None:
            if a != b:
                notes.append(f"# not diffed: {rel} (binary or larger than {max_file_bytes} bytes)")
            continue
        if a == b:
            continue
        old, new = (f"a/{rel}" if a else "/dev/null"), (f"b/{rel}" if b else "/dev/null")
        chunks.extend(difflib.unified_diff(a, b, old, new))
    body = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in chunks)
    return "".join(f"{note}\n" for note in notes) + body


def _lines(root: Path, rel: str, kind: str | None, max_bytes: int) -> list[str] | None:
    """A file's lines ([] when absent), or ``None`` when it cannot be shown (binary, large, unreadable)."""
    if kind is None:
        return []
    got = read_inside(root, rel, max_bytes=max_bytes)
    if got.kind == "missing":
        return []
    if got.data is None or b"\0" in got.data:
        return None
    return got.data.decode("utf-8", "replace").splitlines(keepends=True)


def apply_diff(sandbox: Sandbox, root: Path, diff: str, strip: int) -> tuple[bool, str]:
    """Apply ``diff`` to ``root`` with GNU patch inside the sandbox; (applied cleanly, patch's output)."""
    argv = ["patch", f"-p{strip}", "--batch", "--forward", "--no-backup-if-mismatch", "--reject-file=-", "-i", "-"]
    text = diff if diff.endswith("\n") else diff + "\n"
    result = sandbox.run(argv, root=root, stdin=text.encode("utf-8"),
                         limits=SandboxLimits(wall_timeout=60, cpu_seconds=30, output_cap=16 << 10))
    return result.ok, (result.stdout + result.stderr).strip()


def replace_tree(dest: Path, src: Path, *, max_bytes: int | None = None) -> None:
    """Make ``dest``'s contents equal ``src``'s (``dest`` keeps its inode, so a sandbox bound to it still works).

    Links are copied as links and never followed; special files are dropped.
    """
    # Copy first (beside dest, on its filesystem): a copy that fails, e.g. over quota, leaves dest as it was.
    staging = Path(tempfile.mkdtemp(prefix=".secops-staging-", dir=dest.parent)) / "tree"
    try:
        copy_tree(src, staging, max_bytes=max_bytes)
        for entry in list(os.scandir(dest)):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        for entry in list(os.scandir(staging)):
            os.rename(entry.path, dest / entry.name)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)


class ProposePatchArgs(ToolArgs):
    diff: str = Field(min_length=10, max_length=200_000, description="Unified diff: --- a/f, +++ b/f, @@ hunks.")
    scanner: ScannerName = Field(default="bandit", description="Scanner that verifies the fix.")
    path: str = Field(default=".", description="What the scanner scans, relative to the workspace.")
    keep: Literal["if_verified", "always", "never"] = Field(
        default="if_verified", description="When the patched copy becomes the new working copy."
    )


class ProposePatch(Tool):
    name = "propose_patch"
    description = (
        "Apply a unified diff to a sandbox copy of the workspace (never the original) and verify it by "
        "re-running a scanner; reports which findings disappeared and which appeared."
    )
    input_model = ProposePatchArgs
    risk = "medium"

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        assert isinstance(args, ProposePatchArgs)
        try:
            files, strip = diff_paths(args.diff)
        except PatchError as exc:
            return ToolResult.failure(str(exc))
        through = links_on_paths(ctx.workspace, files)
        if through:
            return ToolResult.failure(f"refused: {'; '.join(through)}; {LINK_REFUSAL}",
                                      data={"applied": False, "files": files})
        quota = getattr(ctx.sandbox, "disk_quota", None)
        try:
            before = scan(ctx.sandbox, ctx.workspace, args.scanner, args.path).findings
        except ScanError as exc:
            return ToolResult.failure(f"could not scan before patching: {exc}")

        scratch = Path(tempfile.mkdtemp(prefix="secops-patch-"))
        try:
            candidate = scratch / "candidate"
            try:
                copy_tree(ctx.workspace, candidate, max_bytes=quota)
            except QuotaExceeded as exc:
                return ToolResult.failure(f"the working copy is over the run's disk quota ({exc})")
            links_before = links(candidate)
            ctx.sandbox.adopt(candidate)
            applied, log = apply_diff(ctx.sandbox, candidate, args.diff, strip)
            if not applied:
                return ToolResult.failure(
                    "the diff does not apply to the working copy", f"patch said:\n{cap_text(log, 3000)[0]}",
                    {"applied": False, "files": files},
                )
            changed = sorted(set(links(candidate).items()) ^ set(links_before.items()))
            if changed:  # defence in depth: patch itself made or swapped a link the header checks did not see
                names = ", ".join(sorted({rel for rel, _ in changed}))
                return ToolResult.failure(f"refused: the patch changed the symlink(s) {names}; {LINK_REFUSAL}",
                                          data={"applied": False, "files": files})
            try:
                after = scan(ctx.sandbox, candidate, args.scanner, args.path).findings
            except ScanError as exc:
                return ToolResult.failure(f"patched copy could not be scanned: {exc}", data={"applied": True})
            disappeared, introduced = diff_findings(before, after)
            verified = is_verified(disappeared, introduced)
            kept = args.keep == "always" or (args.keep == "if_verified" and verified)
            if kept:
                replace_tree(ctx.workspace, candidate, max_bytes=quota)
                ctx.sandbox.adopt(ctx.workspace)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

        cumulative = tree_diff(ctx.original, ctx.workspace)
        data = {
            "applied": True,
            "verified": verified,
            "kept": kept,
            "files": files,
            "scanner": args.scanner,
            "before": len(before),
            "after": len(after),
            "disappeared": [f.model_dump() for f in disappeared],
            "introduced": [f.model_dump() for f in introduced],
            "patch": cumulative,
        }
        status = "verified" if verified else "NOT verified"
        return ToolResult.success(
            f"patch applied to a sandbox copy ({', '.join(files)}); {status} by {args.scanner}: "
            f"{len(before)} -> {len(after)} findings; "
            f"{'kept as the working copy' if kept else 'working copy left unchanged'}.\n"
            f"Fixed ({len(disappeared)}):\n{_render(disappeared)}\n"
            f"Introduced ({len(introduced)}):\n{_render(introduced)}",
            data,
        )


def is_verified(disappeared: list[Finding], introduced: list[Finding]) -> bool:
    """Something was fixed and nothing as severe as the worst fixed finding appeared.

    Replacing ``shell=True`` with an argument list removes bandit's high B602 but adds its low B603
    ("check for untrusted input"): that is a fix, and B603 is still reported under ``introduced``.
    """
    if not disappeared:
        return False
    worst_fixed = max(SEVERITY_ORDER[f.severity] for f in disappeared)
    return all(SEVERITY_ORDER[f.severity] < worst_fixed for f in introduced)


def _render(findings: list[Finding]) -> str:
    return render_findings(findings, limit=20) if findings else "none"
