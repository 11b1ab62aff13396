"""Attack 10.6: a web log's user agent holding an email and an internal host leaked into records.jsonl and
GET /datasets while `data obfuscate` showed the line clean. Every importer, every stored byte is checked."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from secops_ai.api.app import create_app
from secops_ai.cli.main import app
from secops_ai.config import Workspace, get_settings

KEY = "pseudo-test-key"
SECRETS = {
    "ipv4": ["203.0.113.77", "198.51.100.23", "192.0.2.201"],
    "ipv6": ["2001:db8:85a3::8a2e:370:7334"],
    "user": ["mallory", "zed_admin", "qfrank"],
    "email": ["carol.jones@acme-corp.com", "ops-alerts@acme-corp.com"],
    "host": ["db01.corp.acme.internal", "bastion07.acme.io", "vault.acme-corp.com"],
    "token": ["ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z", "AKIAIOSFODNN7EXAMPLE", "S3cretPassw0rd",
              "sk-proj-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2", "tok_77f1c2d9e8a6",
              "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlX2hlcmU"],
}
ALL_SECRETS = [s for group in SECRETS.values() for s in group]

WEB_LOG = (
    '203.0.113.77 - qfrank [25/Nov/2026:17:50:01 +0000] "GET /admin?token=tok_77f1c2d9e8a6 HTTP/1.1" 403 153 '
    '"https://bastion07.acme.io/login" "Mozilla/5.0 (X11; qfrank; contact carol.jones@acme-corp.com; '
    'build db01.corp.acme.internal)"\n'
    '198.51.100.23 - - [25/Nov/2026:17:50:02 +0000] "POST /login HTTP/1.1" 200 512 "-" '
    '"curl/8.5.0 ops-alerts@acme-corp.com Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.'
    'c2lnbmF0dXJlX2hlcmU"\n'
    '192.0.2.201 - zed_admin [25/Nov/2026:17:50:03 +0000] "GET /x HTTP/1.1" 200 5\n'
)
AUTH_LOG = (
    "Nov 25 17:46:56 bastion07.acme.io sshd[1234]: Failed password for invalid user mallory from "
    "2001:db8:85a3::8a2e:370:7334 port 52211 ssh2\n"
    "Nov 25 17:48:10 db01.corp.acme.internal sudo:    zed_admin : TTY=pts/0 ; PWD=/home/zed_admin ; USER=root ; "
    "COMMAND=/usr/bin/curl -H 'Authorization: Bearer sk-proj-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2' https://vault.acme-corp.com\n"
    "2026-11-25T17:49:00Z vault.acme-corp.com app[77]: login user=qfrank password=S3cretPassw0rd "
    "key AKIAIOSFODNN7EXAMPLE via 198.51.100.23\n"
    "free text mentions ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z and carol.jones@acme-corp.com on "
    "db01.corp.acme.internal\n"
)
HOSTILE = ("carol.jones@acme-corp.com on db01.corp.acme.internal via 203.0.113.77 user=zed_admin "
           "password=S3cretPassw0rd ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z")


def _sarif(tool: str) -> dict:
    rule = {"id": "src.home.zed_admin.rules.hardcoded-secret", "name": "hardcoded secret for user qfrank",
            "shortDescription": {"text": "owner ops-alerts@acme-corp.com"},
            "help": {"text": f"see {HOSTILE}"}, "helpUri": "https://vault.acme-corp.com/rules/1",
            "properties": {"tags": ["CWE-798"], "security-severity": "8.1"}}
    result = {"ruleId": rule["id"], "ruleIndex": 0, "level": "error", "message": {"text": HOSTILE},
              "locations": [{"physicalLocation": {
                  "artifactLocation": {"uri": "/home/zed_admin/db01.corp.acme.internal/app.py"},
                  "region": {"startLine": 3, "snippet": {"text": 'PASSWORD = "S3cretPassw0rd"  # account: mallory'}}}}]}
    return {"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "runs": [{"tool": {"driver": {"name": tool, "rules": [rule]}}, "results": [result]}]}


BANDIT = {"errors": [], "generated_at": "2026-11-25T17:00:00Z", "metrics": {},
          "results": [{"test_id": "B105", "test_name": "hardcoded_password_string", "issue_text": HOSTILE,
                       "issue_severity": "LOW", "issue_confidence": "MEDIUM",
                       "issue_cwe": {"id": 259, "link": "https://cwe.mitre.org/data/definitions/259.html"},
                       "filename": "./home/qfrank/app.py", "line_number": 2, "line_range": [2],
                       "code": '2 password = "S3cretPassw0rd"  # carol.jones@acme-corp.com\n',
                       "more_info": "https://bandit.readthedocs.io/en/1.7.9/plugins/b105.html"}]}
SEMGREP = {"version": "1.185.0", "errors": [], "paths": {"scanned": ["/home/mallory/app.py"]},
           "results": [{"check_id": "home.mallory.rules.python-eval-use", "path": "/home/mallory/app.py",
                        "start": {"line": 2}, "end": {"line": 2},
                        "extra": {"message": HOSTILE, "severity": "ERROR", "lines": "eval(x)  # 203.0.113.77",
                                  "metadata": {"cwe": ["CWE-95"], "source": "https://bastion07.acme.io/r"}}}]}
FLAWFINDER_C = ("#include <string.h>\nint main(int argc, char **argv) {\n  char buf[16];\n"
                "  strcpy(buf, argv[1]); /* owner carol.jones@acme-corp.com on db01.corp.acme.internal "
                "token=tok_77f1c2d9e8a6 */\n  return 0;\n}\n")
JSONL = json.dumps({"messages": [{"role": "user", "content": f"who is on {HOSTILE}?"},
                                 {"role": "assistant", "content": "Contact ops-alerts@acme-corp.com from "
                                                                  "192.0.2.201."}]}) + "\n"


def _sources(tmp: Path) -> list[tuple[str, Path, list[str]]]:
    src = tmp / "sources"
    src.mkdir()
    (src / "access.log").write_text(WEB_LOG)
    (src / "auth.log").write_text(AUTH_LOG)
    with gzip.open(src / "both.log.gz", "wt") as fh:
        fh.write(AUTH_LOG + WEB_LOG)
    (src / "semgrep.sarif").write_text(json.dumps(_sarif("Semgrep OSS")))
    (src / "codeql.sarif").write_text(json.dumps(_sarif("CodeQL")))
    (src / "bandit.json").write_text(json.dumps(BANDIT))
    (src / "semgrep.json").write_text(json.dumps(SEMGREP))
    (src / "chat.jsonl").write_text(JSONL)
    out = [("logs", src / "access.log", []), ("logs", src / "auth.log", []), ("auto", src / "both.log.gz", []),
           ("sarif", src / "semgrep.sarif", []), ("auto", src / "codeql.sarif", []),
           ("bandit-json", src / "bandit.json", []), ("auto", src / "semgrep.json", []),
           ("jsonl", src / "chat.jsonl", ["--kind", "chat", "--obfuscate"])]
    flawfinder = shutil.which("flawfinder")
    if flawfinder is None:
        pytest.fail("flawfinder is required (apt-get install -y flawfinder; see the Makefile's system-deps)")
    (src / "vuln.c").write_text(FLAWFINDER_C)
    proc = subprocess.run([flawfinder, "--sarif", "vuln.c"], cwd=src, capture_output=True, text=True, check=True)
    (src / "flawfinder.sarif").write_text(proc.stdout)
    out.append(("sarif", src / "flawfinder.sarif", []))
    return out


def test_no_planted_secret_reaches_any_file_or_route(workspace: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"SECOPS_OBFUSCATION_KEY": KEY}
    imported = []
    for fmt, path, extra in _sources(tmp_path):
        r = runner.invoke(app, ["data", "import", fmt, str(path), "--obfuscate", *extra], env=env)
        assert r.exit_code == 0, (fmt, path.name, r.output)
        imported.append(path.name)

    # every byte of every file under SECOPS_HOME (records, manifests, anything else an import wrote)
    files = [p for p in workspace.root.rglob("*") if p.is_file()]
    assert len([p for p in files if p.name == "records.jsonl"]) == len(imported)
    for p in files:
        content = p.read_bytes().decode("utf-8", errors="replace")
        for secret in [*ALL_SECRETS, KEY]:
            assert secret not in content, f"{secret!r} leaked into {p.relative_to(workspace.root)}"
        assert str(tmp_path) not in content

    # and the API that serves them
    with TestClient(create_app(get_settings(), load_model=False)) as client:
        listing = client.get("/datasets")
        bodies = [listing.text] + [client.get(f"/datasets/{d['provider']}/{d['name']}/{d['version']}",
                                              params={"limit": 100}).text for d in listing.json()["data"]]
    for body in bodies:
        for secret in ALL_SECRETS:
            assert secret not in body, f"{secret!r} served by /datasets"


def test_stored_log_text_is_exactly_the_preview(workspace: Workspace, tmp_path: Path) -> None:
    """The same pseudonymiser as `data obfuscate`: a stored line's text equals the preview's line, and the
    parsed fields use the same pseudonyms (the user agent's user is the remote_user's pseudonym)."""
    from secops_ai.data.obfuscation import Pseudonymizer
    from secops_ai.data.store import DatasetStore

    log = tmp_path / "access.log"
    log.write_text(WEB_LOG + AUTH_LOG)
    runner = CliRunner()
    preview = runner.invoke(app, ["data", "obfuscate", str(log), "--key", KEY])
    assert preview.exit_code == 0, preview.output
    r = runner.invoke(app, ["data", "import", "logs", str(log), "--key", KEY])
    assert r.exit_code == 0, r.output
    records = list(DatasetStore(workspace).get("imports/access@1").iter_records())
    assert [rec["text"] for rec in records] == preview.stdout.splitlines()
    pseudo = Pseudonymizer(KEY)
    web = records[0]["fields"]
    assert web["remote_user"] == pseudo.value("user", "qfrank")
    assert pseudo.value("user", "qfrank") in web["user_agent"]
    assert pseudo.value("email", "carol.jones@acme-corp.com") in web["user_agent"]
    assert pseudo.value("host", "db01.corp.acme.internal") in web["user_agent"]
    assert web["user_agent"].startswith("Mozilla/5.0 (X11; ")  # what is not an identifier stays readable
