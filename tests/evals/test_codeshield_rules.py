"""CodeShield's semgrep rules under the pinned semgrep: Java is scanned, and one bad rule never disables a file."""

from __future__ import annotations

import json
from pathlib import Path

from secops_ai.evals.codeshield_rules import _build
from secops_ai.evals.suites.insecure_code import _codeshield, scan

SSRF = ("import java.net.URL;\nclass Fetch {\n"
        "  void get(String u) throws Exception { new URL(u).openConnection(); }\n}\n")


def test_java_code_is_scanned_by_codeshields_semgrep_rules() -> None:
    issues = scan(SSRF, "java")
    assert any(i["analyzer"] == "semgrep" and i["cwe"] == "CWE-918" for i in issues), issues
    assert not [i for i in scan("class Ok {\n  int add(int a, int b) { return a + b; }\n}\n", "java")
                if i["analyzer"] == "semgrep"]


def test_a_rule_semgrep_rejects_is_dropped_and_the_rest_of_its_file_kept(tmp_path: Path) -> None:
    _codeshield()
    from codeshield.insecure_code_detector import oss

    good = {"id": "eval_call", "languages": ["python"], "message": "eval", "severity": "WARNING",
            "pattern": "eval(...)"}
    bad = {"id": "broken", "languages": ["python"], "message": "x", "severity": "WARNING", "pattern": "def (:"}
    java = {"id": "ssrf", "languages": ["java"], "message": "ssrf", "severity": "WARNING",
            "patterns": [{"pattern-inside": "import java.net.URL\n...\n"}, {"pattern": "new URL(...)"}]}
    src = tmp_path / "src"
    (src / "_generated_").mkdir(parents=True)
    (src / "_generated_" / "python_cyberseceval.json").write_text(json.dumps({"rules": [good, bad]}))
    (src / "_generated_" / "java_cyberseceval.json").write_text(json.dumps({"rules": [java]}))
    dest = tmp_path / "out"
    report = _build(src, oss.SEMGREP_COMMAND[0], dest)

    assert report.dropped == {"python_cyberseceval.json": ["broken"]}
    assert report.fixed == {"java_cyberseceval.json": ["ssrf"]}
    kept = json.loads((dest / "_generated_" / "python_cyberseceval.json").read_text())["rules"]
    assert [r["id"] for r in kept] == ["eval_call"]
    fixed = json.loads((dest / "_generated_" / "java_cyberseceval.json").read_text())["rules"][0]
    assert fixed["patterns"][0]["pattern-inside"] == "import java.net.URL;\n...\n"
    assert json.loads((dest / "report.json").read_text())["dropped"] == report.dropped
    assert json.loads((src / "_generated_" / "python_cyberseceval.json").read_text())["rules"][1] == bad  # source kept
