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

from secops_ai.agents.sandbox import Sandbox, SandboxLimits
from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult, cap_text
from secops_ai.agents.tools.reports import SEVERITY_ORDER, Finding, diff_findings, render_findings
from secops_ai.agents.tools.scanners import ScanError, ScannerName, scan

_HEADER = re.compile(r"^(---|\+\+\+) (\S+)")


class PatchError(ValueError):
    """A diff that is malformed or touches paths outside the working copy."""


def diff_paths(diff: str) -> tuple[list[str], int]:
    """(files the diff touches, strip level for ``patch -p``); rejects absolute and ``..`` paths."""
    if "\n@@ " not in "\n" + diff:
        raise PatchError("not a unified diff: no '@@ -a,b +c,d @@' hunk header")
    names: list[str] = []
    for n, line in enumerate(diff.splitlines(), 1):
        m = _HEADER.match(line)
        if not m:
            continue
        name = m.group(2)
        if name == "/dev/null":
            continue
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts:
            raise PatchError(f"diff line {n}: path {name!r} must be relative to the workspace, without '..'")
        names.append(name)
    if not names:
        raise PatchError("not a unified diff: no '--- a/file' / '+++ b/file' headers")
    strip = 1 if all(PurePosixPath(n).parts[0] in ("a", "b") and len(PurePosixPath(n).parts) > 1 for n in names) else 0
    files = sorted({str(PurePosixPath(*PurePosixPath(n).parts[strip:])) for n in names})
    return files, strip


def tree_diff(original: Path, copy: Path, *, max_file_bytes: int = 1 << 20) -> str:
    """Unified diff (``a/`` = original, ``b/`` = copy) of every text file that differs; skips ``.git``."""
    def files(root: Path) -> set[str]:
        out = set()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for name in filenames:
                out.add(os.path.relpath(os.path.join(dirpath, name), root))
        return out

    def read(path: Path) -> list[str] | None:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > max_file_bytes:
            return None if path.exists() else []
        data = path.read_bytes()
        if b"\0" in data:
            return None
        return data.decode("utf-8", "replace").splitlines(keepends=True)

    chunks = []
    for rel in sorted(files(original) | files(copy)):
        a, b = read(original / rel), read(copy / rel)
        if a is None or b is None or a == b:
            continue
        old, new = (f"a/{rel}" if a else "/dev/null"), (f"b/{rel}" if b else "/dev/null")
        chunks.extend(difflib.unified_diff(a, b, old, new))
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in chunks)


def apply_diff(sandbox: Sandbox, root: Path, diff: str, strip: int) -> tuple[bool, str]:
    """Apply ``diff`` to ``root`` with GNU patch inside the sandbox; (applied cleanly, patch's output)."""
    argv = ["patch", f"-p{strip}", "--batch", "--forward", "--no-backup-if-mismatch", "--reject-file=-", "-i", "-"]
    text = diff if diff.endswith("\n") else diff + "\n"
    result = sandbox.run(argv, root=root, stdin=text.encode("utf-8"),
                         limits=SandboxLimits(wall_timeout=60, cpu_seconds=30, output_cap=16 << 10))
    return result.ok, (result.stdout + result.stderr).strip()


def replace_tree(dest: Path, src: Path) -> None:
    """Make ``dest``'s contents equal ``src``'s (``dest`` keeps its inode, so a sandbox bound to it still works)."""
    for entry in list(dest.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in src.iterdir():
        target = dest / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target, follow_symlinks=False)


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
        try:
            before = scan(ctx.sandbox, ctx.workspace, args.scanner, args.path).findings
        except ScanError as exc:
            return ToolResult.failure(f"could not scan before patching: {exc}")

        scratch = Path(tempfile.mkdtemp(prefix="secops-patch-"))
        try:
            candidate = scratch / "candidate"
            shutil.copytree(ctx.workspace, candidate, symlinks=True)
            ctx.sandbox.adopt(candidate)
            applied, log = apply_diff(ctx.sandbox, candidate, args.diff, strip)
            if not applied:
                return ToolResult.failure(
                    "the diff does not apply to the working copy", f"patch said:\n{cap_text(log, 3000)[0]}",
                    {"applied": False, "files": files},
                )
            try:
                after = scan(ctx.sandbox, candidate, args.scanner, args.path).findings
            except ScanError as exc:
                return ToolResult.failure(f"patched copy could not be scanned: {exc}", data={"applied": True})
            disappeared, introduced = diff_findings(before, after)
            verified = is_verified(disappeared, introduced)
            kept = args.keep == "always" or (args.keep == "if_verified" and verified)
            if kept:
                replace_tree(ctx.workspace, candidate)
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
