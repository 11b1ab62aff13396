"""What a self-correction run records: the draft, critique, claims, evidence, checks and revisions.

These objects are the extension field of a chat response (``secops.self_correction``), so every field is
plain JSON. ``message.content`` carries the final answer; nothing here is needed to read it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["off", "intrinsic", "verified"]
MODES: tuple[str, ...] = ("off", "intrinsic", "verified")

ClaimKind = Literal["cwe", "capec", "attack", "cve", "code"]
CheckStatus = Literal["supported", "contradicted", "not_found", "wrong_id", "missing", "unverified", "issues"]


class Claim(BaseModel):
    """A checkable statement: an identifier (with the sentence that binds text to it) or a code block."""

    kind: ClaimKind
    ref: str = Field(description="'CWE-79', 'T1059.001', 'CVE-2021-44228', or 'code-1' for the first code block.")
    text: str = Field(description="The sentence (or code) the claim was read from, clipped.")
    source: Literal["question", "draft", "revision"]


class Evidence(BaseModel):
    """A fact from a local catalog or a scanner, shown to the model and cited in the answer."""

    ref: str
    title: str
    text: str = ""
    source: str = Field(description="Where it comes from: 'MITRE CWE 4.14 (local)', 'bandit', ...")


class Check(BaseModel):
    """The verdict on one claim."""

    ref: str
    status: CheckStatus
    detail: str
    stage: Literal["draft", "revision"] = "draft"


class Revision(BaseModel):
    """One change on the way to the final answer: a model rewrite or a deterministic edit."""

    action: Literal["critique_revise", "regenerate", "strike", "correct_id", "state_fact", "mark_unverified",
                    "cite", "warn_code", "keep_draft"]
    target: str = ""
    reason: str = ""
    before: str | None = None
    after: str | None = None


class Unverified(BaseModel):
    ref: str
    reason: str


class Correction(BaseModel):
    """The outcome of :func:`~secops_ai.alignment.selfcorrect.correct`; ``final`` is the answer to show."""

    mode: Mode
    final: str
    draft: str
    critique: str | None = None
    claims: list[Claim] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    revisions: list[Revision] = Field(default_factory=list)
    verification: Literal["verified", "unverified", "not_checked"] = "not_checked"
    unverified: list[Unverified] = Field(default_factory=list)
    model_calls: int = 0
    duration_s: float = 0.0

    def extension(self) -> dict:
        """The response's extension field: everything but the final answer (that is ``message.content``)."""
        return self.model_dump(exclude={"final"})
