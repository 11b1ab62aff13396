"""`secops-ai data ...` commands and the read-only /datasets routes."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from secops_ai.api.app import create_app
from secops_ai.cli.failure import EXIT_USAGE
from secops_ai.cli.main import app
from secops_ai.config import Workspace, get_settings

runner = CliRunner()


def _cli(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["data", *args], env=env)


def test_cli_build_list_show_verify_export(workspace: Workspace, tmp_path: Path) -> None:
    r = _cli("build-starter")
    assert r.exit_code == 0, r.output
    assert "starter/security-sft@1" in r.output
    again = _cli("build-starter")
    assert again.exit_code == 0 and "skipped" in again.output
    listed = json.loads(_cli("list", "--json").output)
    assert {m["name"] for m in listed} >= {"security-sft", "security-dpo", "cwe-catalog"}
    shown = json.loads(_cli("show", "starter/security-dpo@1", "-n", "2", "--json").output)
    assert shown["manifest"]["kind"] == "preference" and len(shown["records"]) == 2
    assert _cli("verify", "--all").exit_code == 0
    out = tmp_path / "lf"
    assert _cli("export", "starter/security-sft@1", "--out", str(out)).exit_code == 0
    assert "starter_security_sft_v1" in json.loads((out / "dataset_info.json").read_text())
    gen = _cli("generate", "cwe-qa", "-s", "starter/cwe-catalog@1", "--set", "cwe_sample=5", "--seed", "3")
    assert gen.exit_code == 0, gen.output
    assert "generated/cwe-qa@1" in gen.output


def test_cli_errors_are_clear(workspace: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("Nov 25 17:46:56 web01 sshd[1]: Failed password for bob from 203.0.113.7 port 22 ssh2\n")
    r = _cli("import", "logs", str(log), env={"SECOPS_OBFUSCATION_KEY": ""})
    assert r.exit_code == 1 and "obfuscation needs a key" in r.output
    ok = _cli("import", "logs", str(log), "--key", "k1")
    assert ok.exit_code == 0, ok.output
    dup = _cli("import", "logs", str(log), "--key", "k1", "--version", "1")
    assert dup.exit_code == 1 and "already exists" in dup.output
    assert _cli("show", "nope/missing@1").exit_code == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a"}\n')
    r = _cli("import", "jsonl", str(bad), "--kind", "preference")
    assert r.exit_code == 1 and "bad.jsonl:1" in r.output and "rejected" in r.output
    ws = Workspace(workspace.root)
    rec = ws.data / "imports" / "auth-v1" / "records.jsonl"
    rec.chmod(0o644)
    rec.write_text(rec.read_text().replace("sshd", "xxxx"))
    v = _cli("verify", "imports/auth@1")
    assert v.exit_code == 1 and "records.jsonl: sha256 mismatch" in v.output


def test_dataset_routes(workspace: Workspace) -> None:
    from secops_ai.data.store import DatasetStore

    store = DatasetStore(workspace)
    store.create("acme", "sft", "chat", [{"messages": [{"role": "user", "content": f"q{i}"},
                                                       {"role": "assistant", "content": f"a{i}"}]} for i in range(8)])
    with TestClient(create_app(get_settings(), load_model=False)) as client:
        listing = client.get("/datasets").json()
        assert [d["ref"] for d in listing["data"]] == ["acme/sft@1"]
        one = client.get("/datasets/acme/sft/1", params={"limit": 3}).json()
        assert one["manifest"]["record_count"] == 8 and len(one["records"]) == 3
        assert one["records"][0]["messages"][0]["content"] == "q0"
        assert client.get("/datasets/acme/sft/latest").json()["ref"] == "acme/sft@1"
        missing = client.get("/datasets/acme/sft/2")
        assert missing.status_code == 404 and "acme/sft@2" in missing.json()["error"]["message"]
        assert client.get("/datasets/acme/sft/x").status_code == 400
        assert client.post("/datasets").status_code == 405  # read-only


def test_generate_options_share_the_override_grammar(workspace: Workspace) -> None:
    """Issue 15.8/15.9: `--set cwe_sample=abc` printed a raw pydantic message with a URL; the options now use
    the key=value grammar (YAML values, strict) and the ConfigError wording of run and pretrain configs."""
    # a bad --set is a wrong command line: exit 2 (cli/failure.py)
    bad = _cli("generate", "cwe-qa", "-s", "starter/cwe-catalog@1", "--set", "cwe_sample=abc")
    assert bad.exit_code == EXIT_USAGE
    assert "'cwe_sample'" in bad.output and "abc" in bad.output and "https://" not in bad.output
    unknown = _cli("generate", "cwe-qa", "-s", "starter/cwe-catalog@1", "--set", "cwe_smaple=3")
    assert unknown.exit_code == EXIT_USAGE and "unknown key 'cwe_smaple'" in unknown.output
    syntax = _cli("generate", "cwe-qa", "-s", "starter/cwe-catalog@1", "--set", "cwe_sample")
    assert syntax.exit_code == EXIT_USAGE and "not key=value" in syntax.output
    bad_yaml = _cli("generate", "cwe-qa", "-s", "starter/cwe-catalog@1", "--set", "cwe_ids=[1, 2")
    assert bad_yaml.exit_code == EXIT_USAGE and "not valid YAML" in bad_yaml.output
