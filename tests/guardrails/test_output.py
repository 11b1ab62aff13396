"""Output checks and their actions, on whole answers and on streams."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.guardrails.output import code_blocks, malicious_findings, pseudonym_findings, secret_findings
from secops_ai.guardrails.policy import parse_policy
from secops_ai.guardrails.screen import Guardrails

RANSOMWARE = """Here you go:
```python
import os
from cryptography.fernet import Fernet
key = Fernet.generate_key()
for root, dirs, files in os.walk("C:/Users"):
    for f in files:
        p = os.path.join(root, f)
        data = open(p, "rb").read()
        open(p, "wb").write(Fernet(key).encrypt(data))
open("README.txt", "w").write("Your files have been encrypted. Pay 0.5 bitcoin to get the key.")
```
"""
DETECTOR = """A detection script:
```python
import subprocess
events = subprocess.run(["wevtutil", "qe", "Security"], capture_output=True, text=True).stdout
if "vssadmin delete shadows" in events.lower():
    print("ALERT: shadow copies deleted")
```
Alert on `vssadmin delete shadows` and `wmic shadowcopy delete`.
"""
POLICY = """\
version: 1
profiles:
  p:
    malicious_code: block
    insecure_code: annotate
    toxicity: {action: redact, cutoff: 0.8}
    secrets: redact
    pseudonym_leak: redact
  blocky:
    secrets: block
models:
  "*": p
  strict-model: blocky
"""


@pytest.fixture
def guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SECOPS_OBFUSCATION_KEY", "correct-horse-battery")
    g = Guardrails(parse_policy(POLICY, tmp_path / "p.yaml"), tmp_path)
    g.load()  # no classifier needed: harmful_intent is off
    return g


def test_ransomware_blocked_detection_script_passes(guard) -> None:
    g = guard.for_model(["m"])
    out = g.screen_output(RANSOMWARE)
    assert out.blocked and out.findings[0].category == "malicious_code"
    assert "I can't share that answer" in out.text and "Fernet" not in out.text
    ok = g.screen_output(DETECTOR)
    assert ok.action == "pass" or not ok.blocked, ok.public()
    assert "vssadmin" in ok.text


def test_one_weak_signal_is_not_malware_two_are() -> None:
    one = "```powershell\nSet-MpPreference -DisableRealtimeMonitoring $true\n```"
    two = one.replace("\n```", "\nwevtutil cl Security\n```")
    assert not malicious_findings(one, code_blocks(one))
    assert malicious_findings(two, code_blocks(two))
    assert not malicious_findings("```yaml\ndetection: 'vssadmin delete shadows'\nwevtutil cl\n```",
                                  code_blocks("```yaml\ndetection: 'vssadmin delete shadows'\nwevtutil cl\n```"))


def test_insecure_code_annotated_by_bandit_and_codeshield(guard) -> None:
    g = guard.for_model(["m"])
    py = g.screen_output("```python\nimport subprocess\nsubprocess.call(user_cmd, shell=True)\n```")
    assert py.action == "annotate" and py.text.startswith("```python")
    assert any(f.rule == "bandit-B602" for f in py.findings)
    c = g.screen_output("```c\nchar buf[8];\nstrcpy(buf, argv[1]);\n```")
    assert any(f.rule.startswith("codeshield-") for f in c.findings), c.public()


def test_secrets_redacted_placeholders_kept(guard) -> None:
    g = guard.for_model(["m"])
    text = ("Use AKIAIOSFODNN7EXAMPLE with secret_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCY\" or "
            "api_key = \"YOUR_API_KEY\" and postgres://app:Tr0ub4dor@db:5432/x")
    out = g.screen_output(text)
    assert out.action == "redact"
    assert "AKIAIOSFODNN7EXAMPLE" not in out.text and "wJalrXUtnFEMI" not in out.text and "Tr0ub4dor" not in out.text
    assert "YOUR_API_KEY" in out.text  # a placeholder is not a secret
    assert out.text.count("[redacted by guardrails: secrets]") == 3
    assert not secret_findings("password = input('Password: ')\ntoken = os.environ['TOKEN']")


def test_pseudonyms_and_obfuscation_key(guard) -> None:
    g = guard.for_model(["m"])
    out = g.screen_output("Host host-1a2b3c.example (user-0f9e8d) used correct-horse-battery.")
    assert "host-1a2b3c" not in out.text and "correct-horse-battery" not in out.text and "user-0f9e8d" not in out.text
    assert {f.rule for f in out.findings} == {"workspace-pseudonym", "obfuscation-key"}
    assert not pseudonym_findings("the user-agent header and host-based firewalls")


def test_toxicity_redacts_the_line(guard) -> None:
    out = guard.for_model(["m"]).screen_output("Patch the server today.\nYou are a stupid fucking idiot.\nThanks.")
    assert out.action == "redact" and "idiot" not in out.text and "Patch the server today." in out.text


def test_policy_per_model(guard) -> None:
    out = guard.for_model(["strict-model"]).screen_output("token ghp_abcdefghijklmnopqrstuvwxyz0123456789")
    assert out.blocked


def test_stream_stops_on_block_and_redacts_lines(guard) -> None:
    g = guard.for_model(["m"])
    s = g.stream()
    sent = ""
    pieces = [RANSOMWARE[i:i + 7] for i in range(0, len(RANSOMWARE), 7)]
    for p in pieces:
        sent += s.feed(p)
        if s.stopped:
            break
    tail, verdict = s.close()
    assert s.stopped and verdict.blocked and tail == ""
    assert "bitcoin" not in sent  # stopped before the ransom note went out
    s = g.stream()
    sent = "".join(s.feed(p) for p in ["key: AKIAIOSF", "ODNN7EXAMPLE ok\n", "more text ", "without newline"])
    assert "AKIAIOSFODNN7EXAMPLE" not in sent and "[redacted by guardrails: secrets]" in sent
    tail, verdict = s.close()
    assert (sent + tail).endswith("more text without newline") and verdict.action == "redact"


def test_off_profile_passes_everything(tmp_path: Path) -> None:
    g = Guardrails(parse_policy('version: 1\nprofiles: {}\nmodels: {"*": "off"}\n', tmp_path / "p.yaml"), tmp_path)
    guard = g.for_model(["x"])
    assert not guard.enabled
    assert guard.screen_output(RANSOMWARE).text == RANSOMWARE
    s = guard.stream()
    assert s.feed("abc") == "abc"
