"""Recognise what a source file is before importing it, so a wrong format fails clearly instead of
importing nothing (``data import bandit-json <a SARIF file>`` used to succeed with 0 records).

Detection reads at most the first 256 KiB: the keys that tell SARIF, bandit's and semgrep's JSON reports
apart all sit near the top of the document (SARIF's ``version``/``$schema``/``runs``, bandit's
``generated_at``/``metrics``, semgrep's ``paths``/``version`` come before or right after ``results``).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

_PEEK = 256 * 1024

# top-level keys that mark each JSON report (a file may show only some of them in its first bytes)
_SARIF = re.compile(r'"(?:\$schema"\s*:\s*"[^"]*sarif|runs"\s*:\s*\[)', re.I)
_BANDIT = re.compile(r'"(?:generated_at|metrics)"\s*:|"test_id"\s*:|"issue_severity"\s*:')
_SEMGREP = re.compile(r'"check_id"\s*:|"paths"\s*:\s*\{\s*"(?:scanned|_comment)"')
_LOG_LINE = re.compile(r"^(?:[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}\s|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}|"
                       r"\S+\s+\S+\s+\S+\s+\[[^\]]+\]\s+\")")


def _head(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            data = fh.read(_PEEK)
    else:
        with path.open("rb") as fh:
            data = fh.read(_PEEK)
    return data.decode("utf-8", errors="replace")


def detect_format(path: Path | str) -> str | None:
    """``sarif``, ``bandit-json``, ``semgrep-json``, ``jsonl``, ``logs``, or ``None`` when unrecognised."""
    head = _head(Path(path)).lstrip("\ufeff \t\r\n")
    if not head:
        return None
    if head.startswith("{"):
        first = head.split("\n", 1)[0]
        if _SARIF.search(head):
            return "sarif"
        if _SEMGREP.search(head):
            return "semgrep-json"
        if _BANDIT.search(head):
            return "bandit-json"
        try:  # one JSON object on the first line and more lines after it: JSON Lines records
            json.loads(first)
        except ValueError:
            return None
        return "jsonl"
    lines = [line for line in head.splitlines()[:50] if line.strip()]
    if lines and sum(bool(_LOG_LINE.match(line)) for line in lines) >= max(1, len(lines) // 2):
        return "logs"
    return None
