"""Scan an answer's code blocks with bandit (Python) or semgrep's local rules (C/C++) in the agents' sandbox.

Code blocks are model output: they are written to a private temporary folder and parsed by the scanner
inside the bubblewrap sandbox (no network, own uid, limits), never run. A scanner or sandbox failure is
returned as a reason, and the corrector reports the block as unverified.
"""

from __future__ import annotations

import ast
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PY = {"python", "py", "python3", "py3"}
_C = {"c", "h", "cpp", "c++", "cc", "cxx", "hpp"}


@dataclass
class BlockScan:
    """Findings for one code block (``error`` set when it could not be scanned)."""

    scanner: str | None
    findings: list[str] = field(default_factory=list)  # "bandit B602 (CWE-78) line 3: ..." lines
    error: str | None = None


def language(lang: str, code: str) -> str | None:
    """'python', 'c' or None (a language no local scanner covers)."""
    lang = lang.lower()
    if lang in _PY:
        return "python"
    if lang in _C:
        return "c"
    if not lang:
        try:
            ast.parse(code)
            return "python"
        except (SyntaxError, ValueError):
            return None
    return None


def scan_block(lang: str, code: str) -> BlockScan:
    kind = language(lang, code)
    if kind is None:
        return BlockScan(None, error=f"no local scanner for {lang or 'unlabelled'} code")
    scanner = "bandit" if kind == "python" else "semgrep"
    try:
        from secops_ai.agents.sandbox import Sandbox
        from secops_ai.agents.tools.scanners import scan

        with tempfile.TemporaryDirectory(prefix="secops-selfcorrect-") as tmp:
            root = Path(tmp) / "workspace"
            root.mkdir()
            (root / ("snippet.py" if kind == "python" else "snippet.c")).write_text(code, encoding="utf-8")
            with Sandbox() as sandbox:
                sandbox.adopt(root)
                outcome = scan(sandbox, root, scanner)  # type: ignore[arg-type]
    except Exception as exc:  # sandbox missing, scanner crashed or timed out: unverified, with the reason
        log.warning("self-correction: %s could not scan a code block: %s", scanner, exc)
        return BlockScan(scanner, error=f"{scanner} failed: {str(exc)[:300]}")
    lines = []
    for f in outcome.findings:
        if f.severity == "low":  # e.g. "import subprocess": advice, not a flaw in this code
            continue
        cwe = f" ({f.cwe})" if f.cwe else ""
        where = f" line {f.line}" if f.line else ""
        lines.append(f"{scanner} {f.rule_id}{cwe}{where}: {f.message[:200]}")
    return BlockScan(scanner, lines)
