"""Scanner findings: SARIF 2.1 (semgrep, bandit[sarif], flawfinder, CodeQL, ...) and bandit's JSON report.

SARIF files are streamed with ``ijson``, one result at a time, so a 100k-finding report imports in flat
memory. A run's ``tool.driver`` (its rules) may come before or after its ``results`` (semgrep writes results
first), so the importer makes two streaming passes: rules first, then results.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from secops_ai.data.obfuscation import Pseudonymizer
from secops_ai.data.schemas import FindingRecord
from secops_ai.data.store import RecordValidationError

_CWE = re.compile(r"CWE[-_ /]*0*(\d+)", re.I)
_LEVELS = {"error", "warning", "note", "none"}
_LEVEL_SEVERITY = {"error": "high", "warning": "medium", "note": "low", "none": "info"}
_TOOL_SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MEDIUM": "medium", "LOW": "low", "INFO": "info",
                  "ERROR": "high", "WARNING": "medium", "UNDEFINED": "info"}


def _cwes_from(*values: Any) -> list[int]:
    """CWE ids out of tags like ``external/cwe/cwe-502``, ``CWE-95: ...``, ``{"id": 502}`` or relationships."""
    found: set[int] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, str):
            found.update(int(m) for m in _CWE.findall(value))
        elif isinstance(value, dict):
            if "id" in value and isinstance(value["id"], int | str) and str(value["id"]).isdigit():
                found.add(int(value["id"]))
            else:
                found.update(_cwes_from(*value.values()))
        elif isinstance(value, list | tuple):
            found.update(_cwes_from(*value))
    return sorted(found)


def _severity_from_score(score: Any) -> str | None:
    try:
        s = float(score)
    except (TypeError, ValueError):
        return None
    return "critical" if s >= 9 else "high" if s >= 7 else "medium" if s >= 4 else "low" if s > 0 else "info"


def _text(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return obj.get("text") or obj.get("markdown")
    return obj if isinstance(obj, str) else None


def fingerprint(tool: str, rule_id: str, file: str | None, line: int | None, message: str) -> str:
    """A stable id for a finding (scanners' own fingerprints are absent or, for semgrep, 'requires login')."""
    raw = "\x1f".join([tool, rule_id, file or "", str(line or ""), message])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:20]


# fields whose values come from a closed set (or are numbers): nothing in them can identify anyone
_CLOSED_FIELDS = frozenset({"level", "severity", "confidence", "cwe", "start_line", "end_line", "fingerprint"})


def _finalise(rec: dict[str, Any], pseudo: Pseudonymizer | None) -> FindingRecord:
    """Pseudonymise EVERY free-text field (message, snippet, file, rule ids and names, help, urls, tool) with
    the record's own text as context, then fingerprint what is stored, so no original leaks even as a hash."""
    if pseudo is not None:
        context = "\n".join(v for v in rec.values() if isinstance(v, str))
        rec = {k: (v if k in _CLOSED_FIELDS or v is None else pseudo.scrub(v, context=context))
               for k, v in rec.items()}
    rec["fingerprint"] = fingerprint(rec["tool"], rec["rule_id"], rec.get("file"), rec.get("start_line"),
                                     rec["message"])
    return FindingRecord.model_validate(rec)


def normalise_rule_id(tool: str, rule_id: str) -> str:
    """A rule's own id, without what the scan's machine added to it.

    Semgrep prefixes the id of a rule loaded from a local file with that file's folder, dotted and relative
    to where it ran (``tmp.x.proj.src.rules.python-eval-use``), which puts a checkout path into datasets
    and training text. Its own id is the last dotted part (``python-eval-use``); registry rules keep their
    full id in ``help_uri``. Other tools' ids are kept as they are.
    """
    rule_id = rule_id.strip()
    if tool.lower().startswith("semgrep") and "." in rule_id:
        return rule_id.rsplit(".", 1)[1] or rule_id
    return rule_id


def _sarif_drivers(path: Path) -> list[dict[str, Any]]:
    """Pass 1: each run's ``tool.driver`` (name, version, rules), streaming past the results."""
    drivers: list[Any] = []
    with path.open("rb") as fh:
        for tool in ijson.items(fh, "runs.item.tool", use_float=True):
            drivers.append(tool.get("driver") if isinstance(tool, dict) and isinstance(tool.get("driver"), dict)
                           else {})
    return drivers


def iter_sarif(path: Path | str, *, pseudonymizer: Pseudonymizer | None = None) -> Iterator[FindingRecord]:
    """Stream normalised findings out of a SARIF 2.1 file."""
    path = Path(path)
    try:
        drivers = _sarif_drivers(path)
    except ijson.JSONError as exc:
        raise RecordValidationError(str(path), 0, "runs.tool", f"not valid SARIF JSON: {exc}") from None
    if not drivers:
        raise RecordValidationError(str(path), 0, "runs[0].tool.driver.name",
                                    "no run names its tool: SARIF 2.1 requires runs[].tool.driver.name "
                                    "(is this a SARIF file?)")
    for i, drv in enumerate(drivers):
        if not isinstance(drv, dict) or not isinstance(drv.get("name"), str) or not drv["name"].strip():
            raise RecordValidationError(str(path), 0, f"runs[{i}].tool.driver.name",
                                        "missing: SARIF 2.1 requires the tool that produced the results")
    rule_maps = []
    for drv in drivers:
        rules = drv.get("rules") or []
        rule_maps.append(({r.get("id"): r for r in rules if isinstance(r, dict)}, rules))

    if len(drivers) == 1:  # the common case: let ijson's C backend build each result object
        yield from _single_run(path, drivers[0], *rule_maps[0], pseudonymizer)
        return
    run_index = -1
    index_in_run = 0
    with path.open("rb") as fh:
        events = ijson.parse(fh, use_float=True)
        builder: ijson.ObjectBuilder | None = None
        try:
            for prefix, event, value in events:
                if prefix == "runs.item" and event == "start_map":
                    run_index += 1
                    index_in_run = 0
                    if run_index >= len(drivers):  # fewer tools than runs: this one has none
                        raise RecordValidationError(str(path), 0, f"runs[{run_index}].tool.driver.name",
                                                    "missing: SARIF 2.1 requires the tool that produced the results")
                elif prefix == "runs.item.results.item" and event == "start_map" and builder is None:
                    builder = ijson.ObjectBuilder()
                if builder is not None:
                    builder.event(event, value)
                    if prefix == "runs.item.results.item" and event == "end_map":
                        index_in_run += 1
                        result = builder.value
                        builder = None
                        drv = drivers[run_index] if 0 <= run_index < len(drivers) else {}
                        by_id, rules = rule_maps[run_index] if 0 <= run_index < len(rule_maps) else ({}, [])
                        rec = _sarif_result(result, drv, by_id, rules, path, index_in_run)
                        yield _finalise(rec, pseudonymizer)
        except ijson.JSONError as exc:
            raise RecordValidationError(str(path), 0, f"runs[{run_index}].results[{index_in_run}]",
                                        f"SARIF JSON is malformed: {exc}") from None
        if run_index < 0:
            raise RecordValidationError(str(path), 0, "runs", "no SARIF runs found (is this a SARIF 2.1 file?)")


def _single_run(path: Path, drv: dict[str, Any], by_id: dict[str, Any], rules: list[Any],
                pseudonymizer: Pseudonymizer | None) -> Iterator[FindingRecord]:
    n = 0
    with path.open("rb") as fh:
        try:
            for n, result in enumerate(ijson.items(fh, "runs.item.results.item", use_float=True), start=1):
                rec = _sarif_result(result, drv, by_id, rules, path, n)
                yield _finalise(rec, pseudonymizer)
        except ijson.JSONError as exc:
            raise RecordValidationError(str(path), 0, f"runs[0].results[{n}]",
                                        f"SARIF JSON is malformed: {exc}") from None


_RULE_CWES: dict[int, tuple[dict[str, Any], list[int]]] = {}


def _rule_cwes(rule: dict[str, Any]) -> list[int]:
    """CWE ids a rule declares (tags, properties, CWE taxonomy relationships), computed once per rule object."""
    hit = _RULE_CWES.get(id(rule))
    if hit is not None and hit[0] is rule:
        return hit[1]
    rprops = rule.get("properties") or {}
    cwes = _cwes_from(rprops.get("tags"), rprops.get("cwe"),
                      [r.get("target", {}).get("id") for r in rule.get("relationships") or []
                       if (r.get("target", {}).get("toolComponent") or {}).get("name", "").upper() == "CWE"])
    if len(_RULE_CWES) > 10_000:
        _RULE_CWES.clear()
    _RULE_CWES[id(rule)] = (rule, cwes)
    return cwes


def _sarif_result(result: Any, drv: dict[str, Any], by_id: dict[str, Any], rules: list[Any],
                  path: Path, n: int) -> dict[str, Any]:
    try:
        return _sarif_result_fields(result, drv, by_id, rules, path, n)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:  # a hostile or broken report's odd shapes
        if isinstance(exc, RecordValidationError):
            raise
        raise RecordValidationError(str(path), 0, f"results[{n - 1}]",
                                    f"not a SARIF result object ({type(exc).__name__})") from None


def _sarif_result_fields(result: dict[str, Any], drv: dict[str, Any], by_id: dict[str, Any], rules: list[Any],
                         path: Path, n: int) -> dict[str, Any]:
    rule_id = result.get("ruleId") or (result.get("rule") or {}).get("id")
    rule: dict[str, Any] = {}
    idx = result.get("ruleIndex", (result.get("rule") or {}).get("index"))
    if isinstance(idx, int) and 0 <= idx < len(rules):
        rule = rules[idx]
    elif rule_id in by_id:
        rule = by_id[rule_id]
    rule_id = rule_id or rule.get("id")
    if not rule_id:
        raise RecordValidationError(str(path), 0, f"results[{n - 1}].ruleId", "result has no ruleId")
    message = _text(result.get("message")) or _text(rule.get("shortDescription")) or rule_id
    props = result.get("properties") or {}
    rprops = rule.get("properties") or {}
    level = result.get("level") or (rule.get("defaultConfiguration") or {}).get("level") or "warning"
    level = level if level in _LEVELS else "warning"
    severity = (
        _severity_from_score(rprops.get("security-severity"))
        or _TOOL_SEVERITY.get(str(props.get("issue_severity", "")).upper())
        or _LEVEL_SEVERITY[level]
    )
    confidence = str(props.get("issue_confidence") or "").lower() or None
    if confidence not in ("high", "medium", "low"):
        confidence = {"very-high": "high", "high": "high", "medium": "medium", "low": "low"}.get(
            str(rprops.get("precision", "")).lower())
    file = line = end_line = snippet = None
    locs = result.get("locations") or []
    if locs:
        phys = (locs[0] or {}).get("physicalLocation") or {}
        file = (phys.get("artifactLocation") or {}).get("uri")
        region = phys.get("region") or {}
        line = region.get("startLine")
        end_line = region.get("endLine") or line
        snippet = _text(region.get("snippet"))
        snippet = snippet.rstrip("\n") if snippet else None
    rule_cwes = _rule_cwes(rule)
    extra = (props.get("cwe"), props.get("tags"), result.get("taxa"))
    cwe = sorted(set(rule_cwes) | set(_cwes_from(props.get("cwe"), props.get("tags"),
                                                 [t.get("id") for t in result.get("taxa") or []
                                                  if isinstance(t, dict)]))) if any(extra) else rule_cwes
    tool = str(drv["name"])  # checked present by iter_sarif
    rule_id = normalise_rule_id(tool, str(rule_id))
    rule_name = rule.get("name")
    if isinstance(rule_name, str):
        rule_name = normalise_rule_id(tool, rule_name)
    message = message.replace(f"Semgrep Finding: {rule.get('id')}", f"Semgrep Finding: {rule_id}")
    return {
        "tool": tool, "tool_version": drv.get("version") or drv.get("semanticVersion"), "rule_id": rule_id,
        "rule_name": rule_name, "message": message.strip(), "level": level, "severity": severity,
        "confidence": confidence, "cwe": cwe, "file": file, "start_line": line, "end_line": end_line,
        "snippet": snippet, "help": _text(rule.get("help")) or _text(rule.get("fullDescription")),
        "help_uri": rule.get("helpUri"), "fingerprint": "",
    }


def iter_bandit_json(path: Path | str, *, pseudonymizer: Pseudonymizer | None = None) -> Iterator[FindingRecord]:
    """Stream findings out of ``bandit -f json`` output."""
    path = Path(path)
    version = None
    with path.open("rb") as fh:
        try:
            for n, item in enumerate(ijson.items(fh, "results.item", use_float=True), start=1):
                if not isinstance(item, dict) or "test_id" not in item:
                    raise RecordValidationError(str(path), 0, f"results[{n - 1}].test_id",
                                                "missing; is this bandit JSON output?")
                more = item.get("more_info") or ""
                m = re.search(r"/en/([\d.]+)/", more)
                version = version or (m.group(1) if m else None)
                file = item.get("filename")
                file = file[2:] if isinstance(file, str) and file.startswith("./") else file
                line = item.get("line_number")
                lines = item.get("line_range") or [line]
                message = (item.get("issue_text") or item["test_id"]).strip()
                snippet = _bandit_snippet(item.get("code"), line)
                rec = {
                    "tool": "Bandit", "tool_version": version, "rule_id": item["test_id"],
                    "rule_name": item.get("test_name"), "message": message,
                    "level": {"HIGH": "error", "MEDIUM": "warning"}.get(item.get("issue_severity", ""), "note"),
                    "severity": _TOOL_SEVERITY.get(str(item.get("issue_severity", "")).upper(), "medium"),
                    "confidence": (item.get("issue_confidence") or "").lower() or None,
                    "cwe": _cwes_from(item.get("issue_cwe")), "file": file, "start_line": line,
                    "end_line": max(lines) if lines and lines[0] is not None else line, "snippet": snippet,
                    "help": None, "help_uri": more or None, "fingerprint": "",
                }
                yield _finalise(rec, pseudonymizer)
        except ijson.JSONError as exc:
            raise RecordValidationError(str(path), 0, "results", f"bandit JSON is malformed: {exc}") from None


def _bandit_snippet(code: str | None, line: int | None) -> str | None:
    """Bandit prefixes each code line with its number; keep the flagged line(s) without the numbers."""
    if not code:
        return None
    picked = []
    for raw in code.splitlines():
        m = re.match(r"^(\d+)\s?(.*)$", raw)
        if m and (line is None or int(m.group(1)) == line):
            picked.append(m.group(2))
    return "\n".join(picked) or None


_SEMGREP_SEVERITY = {"ERROR": ("error", "high"), "WARNING": ("warning", "medium"), "INFO": ("note", "low"),
                     "CRITICAL": ("error", "critical"), "HIGH": ("error", "high"), "MEDIUM": ("warning", "medium"),
                     "LOW": ("note", "low")}


def iter_semgrep_json(path: Path | str, *, pseudonymizer: Pseudonymizer | None = None) -> Iterator[FindingRecord]:
    """Stream findings out of ``semgrep --json`` output (rule ids normalised like SARIF's)."""
    path = Path(path)
    with path.open("rb") as fh:
        n = 0
        try:
            for n, item in enumerate(ijson.items(fh, "results.item", use_float=True), start=1):
                if not isinstance(item, dict) or not isinstance(item.get("check_id"), str):
                    raise RecordValidationError(str(path), 0, f"results[{n - 1}].check_id",
                                                "missing; is this `semgrep --json` output?")
                extra = item.get("extra") if isinstance(item.get("extra"), dict) else {}
                meta = extra.get("metadata") if isinstance(extra.get("metadata"), dict) else {}
                start = item.get("start") if isinstance(item.get("start"), dict) else {}
                end = item.get("end") if isinstance(item.get("end"), dict) else {}
                level, severity = _SEMGREP_SEVERITY.get(str(extra.get("severity", "")).upper(), ("warning", "medium"))
                rule_id = normalise_rule_id("Semgrep", item["check_id"])
                lines = extra.get("lines")
                rec = {
                    "tool": "Semgrep", "tool_version": None, "rule_id": rule_id, "rule_name": rule_id,
                    "message": str(extra.get("message") or rule_id).strip(), "level": level, "severity": severity,
                    "confidence": {"high": "high", "medium": "medium", "low": "low"}.get(
                        str(meta.get("confidence", "")).lower()),
                    "cwe": _cwes_from(meta.get("cwe")), "file": item.get("path"),
                    "start_line": start.get("line"), "end_line": end.get("line") or start.get("line"),
                    "snippet": lines.rstrip("\n") if isinstance(lines, str) and lines != "requires login" else None,
                    "help": None, "help_uri": meta.get("source") if isinstance(meta.get("source"), str) else None,
                    "fingerprint": "",
                }
                yield _finalise(rec, pseudonymizer)
        except ijson.JSONError as exc:
            raise RecordValidationError(str(path), 0, f"results[{n}]", f"semgrep JSON is malformed: {exc}") from None
