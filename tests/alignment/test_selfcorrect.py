"""Self-correction logic against the real local catalogs, with scripted model replies.

The replies are fixed strings (what a small model really says: tests/alignment/test_selfcorrect_model.py
runs the bundled model), so each test pins one rule: what is struck, corrected, cited or marked unverified.
"""

from __future__ import annotations

import shutil

import pytest

from secops_ai.alignment.selfcorrect import (
    ModeError,
    SelfCorrectingBackend,
    correct,
    correct_batch,
    split_model_suffix,
)
from secops_ai.alignment.selfcorrect import catalog as cat
from secops_ai.evals.identifiers import cited_ids
from secops_ai.inference.types import GenerationParams

XSS = "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')"


class Scripted:
    """A model that answers from a list and records what it was asked."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[list[dict[str, str]]] = []

    def __call__(self, messages: list[dict[str, str]]) -> str:
        self.prompts.append(messages)
        return self.replies.pop(0)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_wrong_description_is_regenerated_with_evidence_then_corrected_and_cited() -> None:
    model = Scripted("Council of Economic Advisors, a non-profit organization that advocates for economic justice. "
                     "CWE-79 is a non-profit organization. It promotes social welfare and economic development.",
                     "CWE-79 is a bank regulation about economic growth.")
    r = correct(ask("What is CWE-79?"), model, "verified")
    # one draft + ONE regeneration, and the regeneration saw the catalog entry
    assert r.model_calls == 2
    regen_prompt = model.prompts[1][-1]["content"]
    assert f"[CWE-79] {XSS}" in regen_prompt and "What is CWE-79?" in regen_prompt
    assert XSS in r.final and "[CWE-79]" in r.final
    for wrong in ("Economic", "non-profit", "bank"):
        assert wrong.lower() not in r.final.lower()
    assert {c.status for c in r.checks if c.stage == "draft"} >= {"contradicted", "missing"}
    assert [x.action for x in r.revisions][:1] == ["regenerate"] and any(x.action == "strike" for x in r.revisions)
    assert r.verification == "verified"
    assert any(e.ref == "CWE-79" and e.title == XSS for e in r.evidence)


def test_supported_answer_is_kept_and_only_cited() -> None:
    good = "CWE-79 is cross-site scripting: untrusted input is placed in a web page served to other users."
    model = Scripted(good)
    r = correct(ask("What is CWE-79? Include its catalog name: " + XSS), model, "verified")
    assert r.model_calls == 1  # nothing failed: no regeneration
    assert r.final.startswith("CWE-79 is cross-site scripting") and "[CWE-79]" in r.final
    assert "Sources:" in r.final and XSS in r.final


def test_name_question_wrong_id_is_corrected_to_the_catalog_id() -> None:
    q = ask("Which CWE identifier is the weakness 'Use of Redundant Code'? Answer with the CWE ID and one sentence.")
    model = Scripted("The CWE ID is CWE-79, which is about scripting.", "It is CWE-89.")
    r = correct(q, model, "verified")
    same_kind = [c.id for c in cited_ids(r.final) if c.kind == "cwe"]
    assert same_kind and set(same_kind) == {"CWE-1041"}  # what the gate's contradiction check requires
    assert "Use of Redundant Code" in r.final
    assert any(c.status == "wrong_id" for c in r.checks)


def test_invented_ids_are_struck_and_a_fake_subject_is_denied() -> None:
    model = Scripted("CWE-5555 is a heap overflow in parsers, see also CAPEC-9999 and T1999.999.",
                     "CWE-5555 means memory corruption in C code, like CWE-99999.")
    r = correct(ask("Explain the weakness CWE-5555 and give one example of vulnerable code."), model, "verified")
    cited = cited_ids(r.final)
    assert all(c.exists for c in cited if c.id != "CWE-5555"), r.final
    assert "does not exist" in r.final and "heap overflow" not in r.final and "memory corruption" not in r.final
    assert any(c.status == "not_found" for c in r.checks)


def test_cve_without_offline_source_is_marked_unverified_not_described_as_checked() -> None:
    r = correct(ask("What is CVE-2021-44228?"), Scripted("CVE-2021-44228 is a type of ransomware."), "verified")
    assert r.verification == "unverified"
    assert any(u.ref == "CVE-2021-44228" for u in r.unverified)
    assert "CVE-2021-44228 [unverified]" in r.final


def test_catalog_failure_degrades_to_unverified_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(kind: str, ref: str) -> None:
        raise cat.CatalogError("catalog file unreadable")

    monkeypatch.setattr(cat, "lookup", broken)
    r = correct(ask("What is CWE-79?"), Scripted("CWE-79 is cross-site scripting."), "verified")
    assert r.final.startswith("CWE-79 is cross-site scripting")
    assert r.verification == "unverified"
    assert any("catalog file unreadable" in u.reason for u in r.unverified)


def test_failed_regeneration_keeps_the_draft_and_says_why() -> None:
    def model(messages: list[dict[str, str]]) -> str:
        if "Facts from the local security catalogs" in messages[-1]["content"]:
            raise RuntimeError("prompt too long")
        return "CWE-79 is a non-profit economics organisation."

    r = correct(ask("What is CWE-79?"), model, "verified")
    assert "non-profit" not in r.final and XSS in r.final  # the deterministic pass still applies
    assert r.verification == "unverified" and any("prompt too long" in u.reason for u in r.unverified)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the sandbox needs bubblewrap")
def test_code_with_scanner_findings_is_regenerated_and_warned_when_still_flagged() -> None:
    bad = "```python\nimport subprocess\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n```"
    model = Scripted("Here you go:\n" + bad, "Fixed:\n" + bad)
    r = correct(ask("Write a Python function that runs a command."), model, "verified")
    assert r.model_calls == 2
    assert "B602" in model.prompts[1][-1]["content"]  # the finding was in the regeneration's context
    assert "Warning: scanner findings remain" in r.final and "B602" in r.final
    assert any(c.ref == "code-1" and c.status == "issues" and c.stage == "revision" for c in r.checks)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the sandbox needs bubblewrap")
def test_clean_code_passes_without_regeneration() -> None:
    ok = "```python\nimport subprocess\ndef run(args):\n    return subprocess.run(args, check=True)\n```"
    r = correct(ask("Write a Python function that runs a command."), Scripted(ok), "verified")
    assert r.model_calls == 1 and "Warning" not in r.final
    assert any(c.ref == "code-1" and c.status == "supported" for c in r.checks)


def test_multiple_choice_answers_are_left_alone() -> None:
    q = ask("Which weakness does this describe?\n\nA) Use of Redundant Code\nB) Missing Authentication for Critical "
            "Function\nC) Use of Hard-coded Credentials\nD) Integer Overflow or Wraparound\n\nAnswer with the letter.")
    r = correct(q, Scripted("B"), "verified")
    assert r.final == "B" and r.model_calls == 1


def test_intrinsic_critiques_then_revises_or_keeps_the_draft() -> None:
    model = Scripted("draft answer", "1. The answer is vague.", "better answer")
    r = correct(ask("What is SQL injection?"), model, "intrinsic")
    assert (r.draft, r.critique) == ("draft answer", "1. The answer is vague.")
    assert (r.final, r.model_calls) == ("better answer", 3)
    assert "draft answer" in model.prompts[1][-2]["content"]  # the critique saw the draft
    r = correct(ask("What is SQL injection?"), Scripted("fine answer", "NO ISSUES"), "intrinsic")
    assert (r.final, r.model_calls, r.revisions[0].action) == ("fine answer", 2, "keep_draft")


def test_off_and_bad_modes() -> None:
    r = correct(ask("hi"), Scripted("hello"), "off")
    assert (r.final, r.model_calls) == ("hello", 1)
    with pytest.raises(ModeError):
        correct(ask("hi"), Scripted("hello"), "sometimes")


def test_given_draft_is_checked_without_drafting_again() -> None:
    r = correct(ask("Summarise the findings."), Scripted(), "verified",
                draft="The scan found CWE-89 in login.py: SQL queries built from user input.")
    assert r.model_calls == 0 and "[CWE-89]" in r.final


def test_model_suffix() -> None:
    assert split_model_suffix("production+verified") == ("production", "verified")
    assert split_model_suffix("builtin/run-1+intrinsic") == ("builtin/run-1", "intrinsic")
    assert split_model_suffix("base") == ("base", None)
    assert split_model_suffix("a+b") == ("a+b", None)


def test_backend_wrapper_batches_each_stage() -> None:
    calls: list[int] = []

    class Batch:
        name = "scripted"

        def chat(self, convs, params=None):
            calls.append(len(convs))
            return ["CWE-79 is a non-profit." if "Facts" not in c[-1]["content"] else "Still wrong economics answer."
                    for c in convs]

    b = SelfCorrectingBackend(Batch(), "verified")
    out = b.chat([ask("What is CWE-79?"), ask("What is CWE-89?")], GenerationParams(max_tokens=32))
    assert calls == [2, 2]  # one batched draft call, one batched regeneration call
    assert b.name == "scripted+verified" and all("[CWE-" in o for o in out)
    assert len(correct_batch([ask("x")], lambda convs, _m: ["y"] * len(convs), "off")) == 1


def test_id_question_keeps_only_the_catalog_id_as_the_gate_reads_claims() -> None:
    from secops_ai.evals.identifiers import id_claims

    text = ("Which CWE identifier is the weakness 'J2EE Misconfiguration: Missing Custom Error Page'? "
            "Answer with the CWE ID and one sentence.")
    model = Scripted("The CWE ID is 21111. It was found in 2019.",
                     "The answer is CWE-7. It is related to CWE-2 and EB123.")
    r = correct(ask(text), model, "verified")
    # the quoted name holds a shorter catalog name ('Missing Custom Error Page', CWE-756): not a second subject
    assert [(c.id, c.exists) for c in id_claims(r.final, "cwe", text)] == [("CWE-7", True)], r.final
    assert "CWE-756" not in r.final and "2019" not in r.final and "EB123" not in r.final
