"""Importers on REAL scanner output: each test writes a vulnerable sample and runs the scanner on it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from secops_ai.data.importers import import_dataset
from secops_ai.data.importers.catalogs import attack_patterns_path, cwe_catalog_path
from secops_ai.data.obfuscation import Pseudonymizer
from secops_ai.data.store import DatasetStore, RecordValidationError

from .conftest import REPO

VULN_PY = '''\
import hashlib
import pickle
import subprocess

DB_PASSWORD = "hunter2"


def run(cmd):
    return subprocess.call(cmd, shell=True)


def load(blob):
    return pickle.loads(blob)


def digest(data):
    return hashlib.md5(data).hexdigest()


def find(conn, name):
    return conn.execute("SELECT * FROM users WHERE name = '%s'" % name)


def calc(expr):
    return eval(expr)
'''

VULN_C = '''\
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  char buf[16];
  strcpy(buf, argv[1]);
  printf(argv[1]);
  return 0;
}
'''

SEMGREP_RULES = '''\
rules:
  - id: python-eval-use
    languages: [python]
    severity: ERROR
    message: Use of eval() on untrusted input allows code injection
    pattern: eval(...)
    metadata:
      cwe: ["CWE-95: Improper Neutralization of Directives in Dynamically Evaluated Code ('Eval Injection')"]
  - id: python-shell-true
    languages: [python]
    severity: WARNING
    message: subprocess call with shell=True enables OS command injection
    pattern: subprocess.call(..., shell=True, ...)
    metadata:
      cwe: ["CWE-78: Improper Neutralization of Special Elements used in an OS Command ('OS Command Injection')"]
'''


def _bin(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is required for this test (see docs/datasets.md: apt-get install -y flawfinder; "
                    "semgrep lives in .venv-semgrep)")
    return found


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scan_py(tmp_path: Path) -> Path:
    (tmp_path / "vuln.py").write_text(VULN_PY)
    return tmp_path


def test_bandit_sarif_import(store: DatasetStore, tmp_path: Path) -> None:
    src = _scan_py(tmp_path)
    out = tmp_path / "bandit.sarif"
    proc = subprocess.run([_bin("bandit"), "-q", "-f", "sarif", "-o", str(out), "vuln.py"], cwd=src, check=False)
    assert proc.returncode == 1 and out.is_file()  # bandit exits 1 when it finds issues
    raw = out.read_bytes()
    m = import_dataset(store, "sarif", out, provider="scans", name="bandit")
    assert out.read_bytes() == raw  # the raw input is never modified
    assert m.kind.value == "finding" and m.sources[0].sha256 == _sha(out)
    recs = {r["rule_id"]: r for r in store.get(m.ref).iter_records()}
    assert {"B602", "B301", "B324", "B608", "B307", "B105"} <= set(recs)
    assert recs["B602"]["cwe"] == [78] and recs["B602"]["severity"] == "high"
    assert recs["B608"]["cwe"] == [89] and recs["B608"]["file"] == "vuln.py" and recs["B608"]["start_line"] == 21
    assert recs["B324"]["snippet"].strip() == "return hashlib.md5(data).hexdigest()"
    assert recs["B602"]["tool"] == "Bandit" and recs["B602"]["tool_version"]


def test_bandit_json_import_matches_sarif(store: DatasetStore, tmp_path: Path) -> None:
    src = _scan_py(tmp_path)
    out = tmp_path / "bandit.json"
    subprocess.run([_bin("bandit"), "-q", "-f", "json", "-o", str(out), "vuln.py"], cwd=src, check=False)
    m = import_dataset(store, "bandit-json", out, provider="scans")
    recs = list(store.get(m.ref).iter_records())
    assert m.ref == "scans/bandit@1" and len(recs) == len(json.loads(out.read_text())["results"])
    b602 = next(r for r in recs if r["rule_id"] == "B602")
    assert (b602["cwe"], b602["severity"], b602["file"], b602["start_line"]) == ([78], "high", "vuln.py", 9)
    assert b602["snippet"] == "    return subprocess.call(cmd, shell=True)"


def test_semgrep_sarif_import_with_local_rules(store: DatasetStore, tmp_path: Path) -> None:
    src = _scan_py(tmp_path)
    (tmp_path / "rules.yaml").write_text(SEMGREP_RULES)
    out = tmp_path / "semgrep.sarif"
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "semgrep") if (REPO / ".venv/bin/semgrep").exists()
                           else _bin("semgrep"), "--config", "rules.yaml", "--sarif", "--disable-version-check",
                           "--metrics=off", "-q", "-o", str(out), "vuln.py"], cwd=src, capture_output=True,
                          text=True, check=False)
    assert out.is_file(), proc.stderr[-2000:]
    m = import_dataset(store, "sarif", out, provider="scans", name="semgrep")
    recs = {r["rule_id"]: r for r in store.get(m.ref).iter_records()}
    assert set(recs) == {"python-eval-use", "python-shell-true"}  # semgrep writes results before its rules
    assert recs["python-eval-use"]["cwe"] == [95] and recs["python-eval-use"]["severity"] == "high"
    assert recs["python-shell-true"]["cwe"] == [78] and recs["python-shell-true"]["start_line"] == 9
    assert recs["python-shell-true"]["tool"].startswith("Semgrep")


def test_flawfinder_sarif_import(store: DatasetStore, tmp_path: Path) -> None:
    (tmp_path / "vuln.c").write_text(VULN_C)
    proc = subprocess.run([_bin("flawfinder"), "--sarif", "vuln.c"], cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    out = tmp_path / "flawfinder.sarif"
    out.write_text(proc.stdout)
    m = import_dataset(store, "sarif", out, provider="scans")
    recs = list(store.get(m.ref).iter_records())
    by_line = {r["start_line"]: r for r in recs}
    assert 120 in by_line[5]["cwe"]  # strcpy: buffer copy without checking size
    assert by_line[6]["cwe"] == [134]  # printf(argv[1]): format string
    assert all(r["tool"] == "Flawfinder" for r in recs)


def test_findings_can_be_pseudonymised(store: DatasetStore, tmp_path: Path) -> None:
    src = _scan_py(tmp_path)
    out = tmp_path / "bandit.sarif"
    subprocess.run([_bin("bandit"), "-q", "-f", "sarif", "-o", str(out), "vuln.py"], cwd=src, check=False)
    pseudo = Pseudonymizer("finding-key")
    m = import_dataset(store, "sarif", out, provider="scans", pseudonymizer=pseudo)
    text = store.get(m.ref).records_path.read_text()
    assert "hunter2" not in text and "finding-key" not in store.get(m.ref).path.joinpath("manifest.json").read_text()
    assert m.generator.config["key_id"] == pseudo.key_id


def test_malformed_sarif_names_the_file(store: DatasetStore, tmp_path: Path) -> None:
    bad = tmp_path / "broken.sarif"
    bad.write_text('{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": ')
    with pytest.raises(RecordValidationError, match=r"broken\.sarif"):
        import_dataset(store, "sarif", bad)
    assert store.list() == []


AUTH_AND_WEB_LOG = """\
Nov 25 17:46:56 bastion01 sshd[1234]: Failed password for invalid user oracle from 203.0.113.7 port 52211 ssh2
Nov 25 17:47:03 bastion01 sshd[1240]: Accepted publickey for alice from 198.51.100.9 port 50122 ssh2
Nov 25 17:48:10 bastion01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id
192.0.2.44 - erin [25/Nov/2026:17:50:01 +0000] "GET /admin?token=abc123def HTTP/1.1" 403 153 "-" "curl/8.5.0"
192.0.2.45 - - [25/Nov/2026:17:50:02 +0000] "POST /login HTTP/1.1" 200 512

this line matches no known format but is kept
"""


def test_logs_import_parses_and_pseudonymises(store: DatasetStore, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(AUTH_AND_WEB_LOG)
    raw = log.read_bytes()
    pseudo = Pseudonymizer("log-key")
    m = import_dataset(store, "logs", log, provider="logs", pseudonymizer=pseudo)
    assert log.read_bytes() == raw and m.sources[0].sha256 == _sha(log)
    recs = list(store.get(m.ref).iter_records())
    assert [r["format"] for r in recs] == ["syslog", "syslog", "syslog", "combined", "common", "raw"]
    failed, accepted, sudo, web = recs[0], recs[1], recs[2], recs[3]
    assert failed["fields"] == {"event": "failed_password", "user": pseudo.value("user", "oracle"),
                                "src_ip": pseudo.value("ipv4", "203.0.113.7"), "src_port": 52211}
    assert failed["host"] == pseudo.value("host", "bastion01") and failed["program"] == "sshd"
    assert accepted["fields"]["event"] == "accepted_login"
    assert accepted["fields"]["user"] == sudo["fields"]["user"] == pseudo.value("user", "alice")
    assert web["fields"]["status"] == 403 and web["fields"]["method"] == "GET"
    assert web["fields"]["remote_addr"] == pseudo.value("ipv4", "192.0.2.44")
    stored = store.get(m.ref).records_path.read_text() + store.get(m.ref).path.joinpath("manifest.json").read_text()
    for ident in ("bastion01", "oracle", "203.0.113.7", "alice", "198.51.100.9", "192.0.2.44", "erin", "abc123def",
                  "log-key"):
        assert ident not in stored, ident


def test_catalog_imports_pin_their_sources(store: DatasetStore) -> None:
    cwe = import_dataset(store, "cwe", provider="kb")
    attack = import_dataset(store, "attack", provider="kb")
    assert cwe.sources[0].sha256 == _sha(cwe_catalog_path()) and cwe.record_count > 1300
    assert attack.sources[0].sha256 == _sha(attack_patterns_path()) and attack.record_count > 600
    assert "CWE Terms of Use" in cwe.license and "ATT&CK" in attack.license
    c89 = next(r for r in store.get("kb/cwe-catalog@1").iter_records() if r["id"] == 89)
    assert "SQL" in c89["name"] and 66 in c89["capec"] and c89["mitigations"]


def test_jsonl_import_errors_point_into_the_source(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "mine.jsonl"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    src.write_text(json.dumps(good) + "\n\n" + json.dumps({"messages": [{"role": "user"}]}) + "\n")
    with pytest.raises(RecordValidationError) as exc:
        import_dataset(store, "jsonl", src, kind="chat")
    assert (exc.value.file, exc.value.line, exc.value.field) == (str(src), 3, "messages.0.content")
    src.write_text(json.dumps(good) + "\n")
    m = import_dataset(store, "jsonl", src, kind="chat")
    assert m.ref == "imports/mine@1" and m.record_count == 1


def test_multi_run_sarif_keeps_each_runs_rules(store: DatasetStore, tmp_path: Path) -> None:
    """Two real reports merged into one SARIF file with two runs (as CI aggregators do)."""
    src = _scan_py(tmp_path)
    (tmp_path / "vuln.c").write_text(VULN_C)
    subprocess.run([_bin("bandit"), "-q", "-f", "sarif", "-o", "b.sarif", "vuln.py"], cwd=src, check=False)
    ff = subprocess.run([_bin("flawfinder"), "--sarif", "vuln.c"], cwd=tmp_path, capture_output=True, text=True,
                        check=True).stdout
    bandit_doc, ff_doc = json.loads((tmp_path / "b.sarif").read_text()), json.loads(ff)
    merged = tmp_path / "merged.sarif"
    merged.write_text(json.dumps({"version": "2.1.0", "runs": ff_doc["runs"] + bandit_doc["runs"]}))
    m = import_dataset(store, "sarif", merged, provider="scans")
    recs = list(store.get(m.ref).iter_records())
    tools = {r["tool"] for r in recs}
    assert tools == {"Bandit", "Flawfinder"}
    assert len(recs) == len(bandit_doc["runs"][0]["results"]) + len(ff_doc["runs"][0]["results"])
    assert next(r for r in recs if r["rule_id"] == "B602")["cwe"] == [78]  # rule looked up in its own run
    assert all(r["cwe"] for r in recs if r["tool"] == "Flawfinder")


def test_gzipped_logs_import(store: DatasetStore, tmp_path: Path) -> None:
    import gzip

    log = tmp_path / "auth.log.1.gz"
    with gzip.open(log, "wt") as fh:
        fh.write(AUTH_AND_WEB_LOG)
    m = import_dataset(store, "logs", log, pseudonymizer=Pseudonymizer("k"))
    assert m.record_count == 6 and m.ref == "imports/auth@1"


def test_format_is_detected_and_a_mismatch_or_empty_result_fails(store: DatasetStore, tmp_path: Path) -> None:
    """Issue 15.5: `data import bandit-json <a SARIF file>` succeeded with 0 records; a SARIF without a tool was
    accepted as 'unknown'. Each now fails naming the problem, and nothing is written."""
    from secops_ai.data.importers.detect import detect_format
    from secops_ai.data.store import DatasetError

    src = _scan_py(tmp_path)
    sarif, bandit = tmp_path / "scan.sarif", tmp_path / "scan.json"
    subprocess.run([_bin("bandit"), "-q", "-f", "sarif", "-o", str(sarif), "vuln.py"], cwd=src, check=False)
    subprocess.run([_bin("bandit"), "-q", "-f", "json", "-o", str(bandit), "vuln.py"], cwd=src, check=False)
    log = tmp_path / "auth.log"
    log.write_text(AUTH_AND_WEB_LOG)
    assert (detect_format(sarif), detect_format(bandit), detect_format(log)) == ("sarif", "bandit-json", "logs")
    with pytest.raises(DatasetError, match=r"looks like sarif, not bandit-json"):
        import_dataset(store, "bandit-json", sarif)
    with pytest.raises(DatasetError, match=r"looks like bandit-json, not sarif"):
        import_dataset(store, "sarif", bandit)
    with pytest.raises(DatasetError, match=r"looks like sarif, not logs"):
        import_dataset(store, "logs", sarif)
    no_tool = tmp_path / "notool.sarif"
    no_tool.write_text(json.dumps({"version": "2.1.0", "runs": [{"results": [{"ruleId": "x", "message": {
        "text": "m"}}]}]}))
    with pytest.raises(RecordValidationError, match=r"tool\.driver\.name"):
        import_dataset(store, "sarif", no_tool)
    empty = tmp_path / "empty.sarif"
    empty.write_text(json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Bandit"}},
                                                               "results": []}]}))
    with pytest.raises(DatasetError, match=r"no records found as sarif"):
        import_dataset(store, "sarif", empty)
    odd = tmp_path / "odd.sarif"
    odd.write_text(json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "X"}},
                                                             "results": ["not an object"]}]}))
    with pytest.raises(RecordValidationError, match=r"results\[0\]"):
        import_dataset(store, "sarif", odd)
    assert store.list() == [] and not list(store.root.rglob("*.partial"))
    assert import_dataset(store, "sarif", empty, allow_empty=True).record_count == 0
    m = import_dataset(store, "auto", bandit, name="auto-bandit")
    assert m.generator.config["format"] == "bandit-json" and m.record_count == len(json.loads(bandit.read_text())[
        "results"])


def test_semgrep_rule_ids_lose_the_checkout_path(store: DatasetStore, tmp_path: Path) -> None:
    """Issue 15.6: a rule loaded from a local file got the file's folder as a prefix
    (tmp.x.proj.src.rules.python-eval-use), which leaked a checkout path into datasets and training text."""
    proj = tmp_path / "proj"
    (proj / "src" / "rules").mkdir(parents=True)
    (proj / "src" / "rules" / "py.yaml").write_text(SEMGREP_RULES)
    (proj / "vuln.py").write_text(VULN_PY)
    semgrep = str(REPO / ".venv/bin/semgrep") if (REPO / ".venv/bin/semgrep").exists() else _bin("semgrep")
    outs = {}
    for fmt, flag in (("sarif", "--sarif"), ("semgrep-json", "--json")):
        out = tmp_path / f"out.{fmt}"
        proc = subprocess.run([semgrep, "--config", str(proj / "src" / "rules" / "py.yaml"), flag,
                               "--disable-version-check", "--metrics=off", "-q", "-o", str(out), str(proj / "vuln.py")],
                              cwd=tmp_path.parent, capture_output=True, text=True, check=False)
        assert out.is_file(), proc.stderr[-2000:]
        assert "proj.src.rules.python-eval-use" in out.read_text()  # what semgrep itself writes
        outs[fmt] = out
    for fmt, out in outs.items():
        m = import_dataset(store, fmt, out, provider="scans", name=f"sg-{fmt}")
        stored = store.get(m.ref).records_path.read_text()
        recs = {r["rule_id"]: r for r in store.get(m.ref).iter_records()}
        assert set(recs) == {"python-eval-use", "python-shell-true"}, fmt
        assert recs["python-eval-use"]["cwe"] == [95] and recs["python-shell-true"]["start_line"] == 9
        assert "proj.src.rules" not in stored, fmt
