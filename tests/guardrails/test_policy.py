"""Policy files: the shipped ones load; every mistake stops start-up naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.guardrails.policy import CATEGORIES, PolicyError, load_policy, parse_policy, policies_dir

GOOD = """\
version: 2
classifier: latest
profiles:
  strict:
    harmful_intent: {action: refuse, refuse_at: 0.6, caution_at: 0.2}
    malicious_code: block
  loose:
    secrets: annotate
models:
  production: strict
  base: "off"
  "*": loose
"""


def test_shipped_policies_load() -> None:
    for path in sorted(policies_dir().glob("*.yaml")):
        policy = load_policy(path)
        assert policy.models, path
    default = load_policy("default")  # by name under configs/guardrails/
    assert default.profile_for(["production"]).name == "strict"
    assert default.profile_for(["base"]).name == "off"
    assert not default.profile_for(["base"]).enabled
    assert default.profile_for(["builtin/run-1"]).name == "standard"


def test_profile_lookup_and_options(tmp_path: Path) -> None:
    p = parse_policy(GOOD, tmp_path / "p.yaml")
    assert p.version == 2
    # the requested id wins over later aliases; unknown names fall back to "*"
    assert p.profile_for(["builtin/x", "production"]).name == "strict"
    assert p.profile_for(["base"]).name == "off"
    assert p.profile_for(["something"]).name == "loose"
    rule = p.profiles["strict"].rule("harmful_intent")
    assert rule.action == "refuse" and rule.option("refuse_at") == 0.6 and rule.option("caution_at") == 0.2
    assert p.profiles["strict"].rule("toxicity").action == "off"  # left out = off
    assert p.needs_classifier


def test_no_star_means_off(tmp_path: Path) -> None:
    p = parse_policy("version: 1\nprofiles: {s: {secrets: redact}}\nmodels: {production: s}\n", tmp_path / "p.yaml")
    assert p.profile_for(["builtin/other"]).name == "off"
    assert not p.needs_classifier


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD.replace("    malicious_code: block", "    malware: block"), 6, "unknown category 'malware'"),
    (GOOD.replace("malicious_code: block", "malicious_code: refuse"), 6, "unknown action 'refuse'"),
    (GOOD.replace("{action: refuse, refuse_at", "{action: deny, refuse_at"), 5, "unknown action 'deny'"),
    (GOOD.replace("caution_at: 0.2", "caution_at: 0.9"), 5, "caution_at must not exceed refuse_at"),
    (GOOD.replace("refuse_at: 0.6", "refuse_at: 1.6"), 5, "outside [0.0, 1.0]"),
    (GOOD.replace("refuse_at: 0.6", "threshold: 0.6"), 5, "unknown option 'threshold'"),
    (GOOD.replace("  \"*\": loose", "  \"*\": lose"), 12, "unknown profile 'lose'"),
    (GOOD.replace("classifier: latest", "classifier: latest\nextra: 1"), 3, "unknown key 'extra'"),
    (GOOD.replace("    secrets: annotate", "    secrets: annotate\n    secrets: block"), 9, "duplicate key"),
    (GOOD.replace("version: 2", "version: two"), 1, "version must be an integer"),
    (GOOD.replace("  loose:\n    secrets: annotate\n", "  off:\n    secrets: annotate\n"), 7, "built-in"),
    ("version: 1\nprofiles: {a: {secrets: redact}\nmodels: {}\n", 3, "not valid YAML"),
])
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path.resolve()}:{line}:"), msg
    assert words in msg


def test_missing_sections_and_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="'models' is missing"):
        parse_policy("version: 1\nprofiles: {}\n", tmp_path / "p.yaml")
    with pytest.raises(PolicyError, match="no such guardrails policy file"):
        load_policy("no-such-policy")
    with pytest.raises(PolicyError, match="empty policy file"):
        parse_policy("", tmp_path / "p.yaml")


def test_every_category_has_off() -> None:
    assert all("off" in actions for actions in CATEGORIES.values())
