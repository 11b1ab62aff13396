"""Normalised findings and the parsers that produce them (SARIF 2.1.0 from any scanner, bandit JSON).

Everything in a report is data: a message or snippet that says "ignore previous instructions" is stored as
a string and shown to the model inside an :func:`~secops_ai.agents.tools.base.untrusted` frame.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult, untrusted
from secops_ai.data.importers.findings import iter_bandit_json, iter_sarif
from secops_ai.data.schemas import FindingRecord
from secops_ai.data.store import RecordValidationError

Severity = Literal["critical", "high", "medium", "low", "info"]
ReportFormat = Literal["auto", "sarif", "bandit-json"]
SEVERITY_ORDER: dict[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


class ReportError(ValueError):
    """A report that cannot be parsed; the message names the file and the offending field."""


class Finding(BaseModel):
    """One scanner result, independent of the scanner that produced it."""

    tool: str
    rule_id: str
    cwe: str | None = Field(default=None, description="'CWE-78' style, when the scanner says.")
    severity: Severity = "medium"
    file: str = Field(description="Path relative to the scanned folder, '/' separated.")
    line: int | None = None
    message: str
    snippet: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity that survives line shifts from a patch: same tool, rule and file."""
        return (self.tool, self.rule_id, self.file)

    def one_line(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        cwe = f" {self.cwe}" if self.cwe else ""
        return f"[{self.severity}] {self.tool}/{self.rule_id}{cwe} {where}: {self.message}"


def _norm_path(uri: str | None) -> str:
    if not uri:
        return "?"
    path = uri.removeprefix("file://")
    for prefix in ("/workspace/", "./"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path.replace("\\", "/")


def finding_from_record(rec: FindingRecord) -> Finding:
    """The datasets package's normalised record, reduced to what the agent reasons about."""
    tool = rec.tool.lower().removesuffix(" oss")
    return Finding(
        tool=tool,
        rule_id=rec.rule_id,
        cwe=f"CWE-{rec.cwe[0]}" if rec.cwe else None,
        severity=rec.severity,
        file=_norm_path(rec.file),
        line=rec.start_line,
        message=rec.message,
        snippet=rec.snippet,
    )


def sniff_format(path: Path) -> Literal["sarif", "bandit-json"]:
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if b'"runs"' in head or (b'"$schema"' in head and b"sarif" in head.lower()):
        return "sarif"
    if b'"results"' in head or b'"generated_at"' in head:
        return "bandit-json"
    raise ReportError(f"{path.name}: unknown report format (expected SARIF 'runs' or bandit JSON 'results')")


def parse_report_file(path: Path, fmt: ReportFormat = "auto") -> list[Finding]:
    """Findings from a SARIF 2.1.0 file (semgrep, flawfinder, bandit -f sarif, CodeQL, ...) or bandit JSON.

    Parsing is the datasets package's streaming importers (:mod:`secops_ai.data.importers.findings`), so a
    report the agent reads and a report imported as a dataset normalise identically.
    """
    path = Path(path)
    kind = sniff_format(path) if fmt == "auto" else fmt
    reader = iter_sarif if kind == "sarif" else iter_bandit_json
    try:
        return [finding_from_record(rec) for rec in reader(path)]
    except RecordValidationError as exc:
        raise ReportError(str(exc)) from None
    except ValueError as exc:  # a record the schema rejects (e.g. an unknown severity)
        raise ReportError(f"{path.name}: {exc}") from None


def parse_report(text: str | bytes, fmt: ReportFormat = "auto", source: str = "report") -> list[Finding]:
    """Findings from a report held in memory (a scanner's stdout)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    with tempfile.TemporaryDirectory(prefix="secops-report-") as tmp:
        path = Path(tmp) / (Path(source).name or "report")
        path.write_bytes(data)
        return parse_report_file(path, fmt)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by file and line: a stable order for prompts and diffs."""
    return sorted(findings, key=lambda f: (-SEVERITY_ORDER[f.severity], f.file, f.line or 0, f.rule_id))


def diff_findings(before: list[Finding], after: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(disappeared, introduced), matching by (tool, rule, file) as a multiset so line shifts don't count."""
    return _unmatched(before, after), _unmatched(after, before)


def _unmatched(items: list[Finding], others: list[Finding]) -> list[Finding]:
    """The findings of ``items`` left over once each is paired with an equal-keyed one of ``others``."""
    left = Counter(f.key for f in others)
    out = []
    for f in items:
        if left[f.key] > 0:
            left[f.key] -= 1
        else:
            out.append(f)
    return out


def render_findings(findings: list[Finding], limit: int = 40) -> str:
    lines = [f.one_line() for f in sort_findings(findings)[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    return "\n".join(lines) if lines else "no findings"


def resolve_inside(root: Path, rel: str, what: str = "path") -> Path:
    """``root / rel`` if it stays inside ``root``; a clear error otherwise (no ``..`` escapes, no symlinks out)."""
    candidate = (root / rel).resolve()
    root = root.resolve()
    if candidate != root and root not in candidate.parents:
        raise ValueError(f"{what} {rel!r} is outside the working copy")
    return candidate


class ParseReportArgs(ToolArgs):
    path: str = Field(min_length=1, description="Report file, relative to the working copy (SARIF or bandit JSON).")
    format: ReportFormat = Field(default="auto", description="'auto' detects SARIF vs bandit JSON.")


class ParseReport(Tool):
    name = "parse_report"
    description = "Parse a scanner report file (SARIF or bandit JSON) in the workspace into normalised findings."
    input_model = ParseReportArgs
    risk = "low"

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        assert isinstance(args, ParseReportArgs)
        try:
            path = resolve_inside(ctx.workspace, args.path, "report")
        except ValueError as exc:
            return ToolResult.failure(str(exc))
        if not path.is_file():
            return ToolResult.failure(f"report {args.path!r} not found in the working copy")
        try:
            findings = parse_report_file(path, args.format)
        except ReportError as exc:
            return ToolResult.failure(str(exc))
        findings = sort_findings(findings)
        return ToolResult.success(
            f"{len(findings)} findings in {args.path}:\n" + untrusted("findings", render_findings(findings)),
            {"findings": [f.model_dump() for f in findings], "count": len(findings)},
        )
