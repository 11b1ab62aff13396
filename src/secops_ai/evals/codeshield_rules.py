"""CodeShield's semgrep rules, made loadable by the pinned semgrep.

CodeShield hands semgrep one generated rule file per language (``rules/semgrep/_generated_/<lang>_<usecase>.json``).
semgrep rejects a *whole* file when one of its rules does not parse, and then reports nothing for that language:
with semgrep 1.185 the Java files fail on ``import java.net.URL`` (the Java parser wants the ``;``), so Java code
got CodeShield's regex rules only.

:func:`prepared_rules_dir` builds, once per CodeShield rule set and semgrep binary, a copy of the rule tree in
which (1) Java ``import`` patterns carry their ``;`` and (2) any rule semgrep still rejects is dropped, file by
file, so one bad rule never disables the rest. The copy lives in ``~/.cache/secops-ai/codeshield-rules-<key>/``
(written to a temporary folder, then renamed), with ``report.json`` naming what was fixed and dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

from secops_ai.config.cache import cache_root

# `import java.net.URL\n...` -> `import java.net.URL;\n...` (only inside pattern strings of Java rule files)
_JAVA_IMPORT = re.compile(r"^(\s*import\s+(?:static\s+)?[\w.]+(?:\.\*)?)\s*$", re.MULTILINE)


class RulesReport(BaseModel):
    """What :func:`prepared_rules_dir` changed in CodeShield's generated rule files."""

    semgrep: str
    fixed: dict[str, list[str]] = Field(default_factory=dict, description="file -> rule ids given a Java `;`")
    dropped: dict[str, list[str]] = Field(default_factory=dict, description="file -> rule ids semgrep rejects")


def _fix_java(rule: dict) -> bool:
    """Add the `;` to Java import patterns, in place; True when something changed."""
    changed = False

    def walk(node: object) -> object:
        nonlocal changed
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and "import" in node:
            new = _JAVA_IMPORT.sub(r"\1;", node)
            changed |= new != node
            return new
        return node

    for key in list(rule):
        if key.startswith("pattern"):
            rule[key] = walk(rule[key])
    return changed


def _rejected(semgrep: str, rule_file: Path, empty: Path) -> set[str]:
    """Ids of the rules in ``rule_file`` that semgrep cannot parse (it is run on an empty folder)."""
    proc = subprocess.run([semgrep, "--experimental", "--metrics", "off", "--quiet", "--json", "--config",
                           str(rule_file), str(empty)], capture_output=True, text=True, timeout=120, check=False)
    try:
        errors = json.loads(proc.stdout or "{}").get("errors", [])
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"semgrep gave no JSON for {rule_file.name}: {proc.stderr[-300:]}") from exc
    return {str(e["rule_id"]) for e in errors if "parse" in str(e.get("type", "")).lower() and e.get("rule_id")}


def _build(source: Path, semgrep: str, dest: Path) -> RulesReport:
    report = RulesReport(semgrep=semgrep)
    with tempfile.TemporaryDirectory(prefix="tmp-rules-", dir=dest.parent) as tmp:
        work = Path(tmp) / "semgrep"
        shutil.copytree(source, work, symlinks=False)
        empty = Path(tmp) / "empty"
        empty.mkdir()
        for path in sorted((work / "_generated_").glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            rules = doc.get("rules", [])
            if path.name.startswith("java_"):
                fixed = [r["id"] for r in rules if _fix_java(r)]
                if fixed:
                    report.fixed[path.name] = fixed
            path.write_text(json.dumps(doc), encoding="utf-8")
            bad = _rejected(semgrep, path, empty)
            if bad:
                doc["rules"] = [r for r in rules if r.get("id") not in bad]
                path.write_text(json.dumps(doc), encoding="utf-8")
                report.dropped[path.name] = sorted(bad)
        (work / "report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        try:
            os.replace(work, dest)  # atomic: a concurrent builder's finished copy wins, ours is discarded
        except OSError:
            if not (dest / "report.json").is_file():
                raise
    return report


@lru_cache(maxsize=1)
def prepared_rules_dir() -> Path | None:
    """The folder to use as CodeShield's ``SEMGREP_RULE_REPO_PATH``; ``None`` when semgrep-core is missing."""
    from codeshield.insecure_code_detector import oss

    semgrep = oss.SEMGREP_COMMAND[0]
    source = Path(oss.RULES_ROOT) / "semgrep"
    if not Path(semgrep).exists() or not (source / "_generated_").is_dir():
        return None
    digest = hashlib.sha256(str(os.path.realpath(semgrep)).encode())
    digest.update(str(Path(os.path.realpath(semgrep)).stat().st_size).encode())
    for path in sorted((source / "_generated_").glob("*.json")):
        digest.update(path.name.encode() + path.read_bytes())
    name = f"codeshield-rules-{digest.hexdigest()[:16]}"
    for root in (cache_root(), Path(tempfile.gettempdir()) / f"secops-ai-{os.getuid()}"):
        dest = root / name
        if root.is_symlink() or (root.exists() and root.stat().st_uid != os.getuid()):
            continue  # another user's folder (a shared /tmp): never read rules from it
        if (dest / "report.json").is_file():
            return dest
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _build(source, semgrep, dest)
            return dest
        except PermissionError:  # a read-only home: build it under the temporary folder instead
            continue
    return None

