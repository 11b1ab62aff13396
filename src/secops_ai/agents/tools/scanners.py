"""Run a static-analysis scanner over the working copy, inside the sandbox, and normalise its findings.

Scanners run sandboxed because they parse untrusted code (and semgrep/bandit plugins are code too):
no network, the working copy mounted at ``/workspace``, and per-scanner limits. semgrep uses only the
rules shipped in ``tools/rules/`` (never the registry) with version checks and metrics off.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from secops_ai.agents.sandbox import SANDBOX_ROOT, Sandbox, SandboxLimits, SandboxResult
from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult, untrusted
from secops_ai.agents.tools.reports import (
    Finding,
    ReportError,
    parse_report,
    render_findings,
    resolve_inside,
    sort_findings,
)

ScannerName = Literal["bandit", "semgrep", "flawfinder"]
SCANNERS: tuple[ScannerName, ...] = ("bandit", "semgrep", "flawfinder")
RULES_DIR = Path(__file__).resolve().parent / "rules"
_REPORT_CAP = 16 << 20  # reports are parsed, not shown; keep them whole up to 16 MiB


class ScanError(RuntimeError):
    """The scanner did not produce a usable report (crashed, timed out, missing)."""


@dataclass
class ScanOutcome:
    scanner: ScannerName
    findings: list[Finding]
    result: SandboxResult


_INSTALL = {
    "bandit": "pip install 'bandit[sarif]' in the project's venv",
    "semgrep": "semgrep lives in its own venv, symlinked as .venv/bin/semgrep: run `make setup`",
    "flawfinder": "apt-get install -y flawfinder",
}


def _bin(name: str) -> str:
    """The scanner executable: the project's venv first (bandit, semgrep), then the system (flawfinder)."""
    venv = Path(sys.prefix) / "bin" / name
    if venv.exists():
        return str(venv.resolve() if name == "semgrep" else venv)
    found = shutil.which(name)
    if found is None:
        raise ScanError(f"{name} is not installed: {_INSTALL.get(name, 'install it')}")
    return found


def scanner_command(scanner: ScannerName, target: str) -> tuple[list[str], SandboxLimits, list[Path]]:
    """(argv, limits, extra read-only paths) for one scanner over ``target`` (relative to /workspace)."""
    base = {"output_cap": _REPORT_CAP, "output_kill_bytes": 4 * _REPORT_CAP, "wall_timeout": 300.0, "cpu_seconds": 300}
    if scanner == "bandit":
        return [_bin("bandit"), "-r", target, "-f", "json", "-q"], SandboxLimits(**base), []
    if scanner == "semgrep":
        argv = [_bin("semgrep"), "scan", "--config", str(RULES_DIR), "--sarif", "--disable-version-check",
                "--metrics=off", "--quiet", "--no-git-ignore", "--jobs", "1", target]
        # semgrep-core (OCaml) reserves a large address space up front; 2 GiB is not enough to start.
        return argv, SandboxLimits(**base, memory_bytes=6 << 30), [RULES_DIR]
    if scanner == "flawfinder":
        return [_bin("flawfinder"), "--sarif", target], SandboxLimits(**base), []
    raise ValueError(f"unknown scanner {scanner!r}; choose one of {', '.join(SCANNERS)}")


def scan(sandbox: Sandbox, root: Path, scanner: ScannerName, target: str = ".") -> ScanOutcome:
    """Run ``scanner`` on ``root/target`` in ``sandbox`` (``root`` mounted writable at /workspace)."""
    # "./" keeps a target named like an option ("-o/workspace/x") from being read as one
    argv, limits, ro = scanner_command(scanner, target if target == "." else "./" + target.lstrip("/"))
    result = sandbox.run(argv, root=root, limits=limits, ro_paths=ro)
    ok_codes = {0, 1}  # bandit and semgrep exit 1 when they found something
    if result.timed_out or result.killed:
        raise ScanError(f"{scanner} was stopped: {result.kill_reason}")
    if result.exit_code not in ok_codes or not result.stdout.strip():
        # Say why: stderr, else the end of stdout (semgrep --quiet reports errors in its SARIF), else the exit code.
        detail = result.stderr.strip()[-1500:] or result.stdout.strip()[-1500:] or "no output on stdout or stderr"
        raise ScanError(f"{scanner} failed (exit {result.exit_code}): {detail}")
    try:
        findings = parse_report(result.stdout, "bandit-json" if scanner == "bandit" else "sarif", f"{scanner}.json")
    except ReportError as exc:
        raise ScanError(f"{scanner} wrote an unreadable report: {exc}") from None
    for f in findings:
        f.tool = scanner
        f.file = f.file.removeprefix(SANDBOX_ROOT + "/")
        if scanner == "semgrep":  # semgrep prefixes rule ids with the config folder's path
            f.rule_id = f.rule_id.rsplit(".", 1)[-1]
    return ScanOutcome(scanner, sort_findings(findings), result)


class RunScannerArgs(ToolArgs):
    scanner: ScannerName = Field(description="bandit (Python), semgrep (local rules: Python, C) or flawfinder (C/C++).")
    path: str = Field(default=".", description="File or folder to scan, relative to the workspace root.")


class RunScanner(Tool):
    name = "run_scanner"
    description = (
        "Run a static-analysis scanner (bandit, semgrep with local rules, or flawfinder) over the workspace "
        "and return normalised findings (tool, rule_id, cwe, severity, file, line, message)."
    )
    input_model = RunScannerArgs
    risk = "low"

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        assert isinstance(args, RunScannerArgs)
        try:
            target = resolve_inside(ctx.workspace, args.path)
        except ValueError as exc:
            return ToolResult.failure(str(exc))
        if not target.exists():
            return ToolResult.failure(f"path {args.path!r} does not exist in the working copy; scan '.' (the whole "
                                      "working copy) or a file a previous scan listed")
        try:
            outcome = scan(ctx.sandbox, ctx.workspace, args.scanner, args.path)
        except ScanError as exc:
            return ToolResult.failure(str(exc))
        findings = outcome.findings
        return ToolResult.success(
            f"{args.scanner} found {len(findings)} finding(s) in {args.path}:\n"
            + untrusted(f"{args.scanner} findings", render_findings(findings)),
            {
                "scanner": args.scanner,
                "path": args.path,
                "count": len(findings),
                "findings": [f.model_dump() for f in findings],
            },
        )
