"""The serving-time screen: one :class:`Guardrails` per server, one :class:`ModelGuard` per request's model.

Request path (see docs/guardrails.md for where the API calls each step)::

    guard = guardrails.for_model([requested id, resolved id, aliases...])
    verdict = guard.screen_input(messages)        # answer | caution (system note added) | refuse (helpful refusal)
    ... generate from verdict.messages unless refused ...
    out = guard.screen_output(text)               # annotate | redact | block (finish_reason content_filter)
    stream = guard.stream(); stream.feed(delta)   # the same checks on a growing stream
    body["guardrails"] = guard.report(verdict, [out])

A policy that needs the intent classifier refuses to screen (raises :class:`GuardrailsUnavailable`, the API
answers 503) while the classifier is loading or after it failed to load: requests are never served
unscreened silently.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from secops_ai.guardrails.injection import screen_untrusted
from secops_ai.guardrails.intent import IntentClassifier, Thresholds, resolve_classifier
from secops_ai.guardrails.output import (
    Finding,
    code_blocks,
    insecure_findings,
    malicious_findings,
    pseudonym_findings,
    redact,
    secret_findings,
    toxicity_findings,
)
from secops_ai.guardrails.policy import OFF, OUTPUT_CATEGORIES, Policy, Profile, load_policy

log = logging.getLogger(__name__)

OBFUSCATION_KEY_ENV = "SECOPS_OBFUSCATION_KEY"
CAUTION_NOTE = ("Safety note from this deployment's guardrails: the next request may touch on harmful use. Help "
                "only with defensive, legal and non-operational aspects (understanding, detection, prevention, "
                "response). Do not write working malware, exploits, phishing material or step-by-step "
                "instructions for getting into systems or accounts the user does not own.")
GENERIC_REFUSAL = ("I can't help with that: it could be used to harm systems or people who haven't agreed to it. "
                   "If you're working on defence, I'm glad to help with detecting, preventing or responding to "
                   "this kind of attack instead.")
BLOCKED_ANSWER = ("I can't share that answer: it contained {what}. If you're working on defence, I'm glad to "
                  "help with detecting or preventing this instead.")

OutputAction = Literal["pass", "annotate", "redact", "block"]
_SEVERITY = {"pass": 0, "annotate": 1, "redact": 2, "block": 3}


class GuardrailsUnavailable(RuntimeError):
    """The policy needs the classifier and it is not loaded (still loading, or failed: the message says)."""


@dataclass
class InputVerdict:
    decision: Literal["answer", "caution", "refuse"] = "answer"
    score: float | None = None
    reasons: list[str] = field(default_factory=list)
    refusal: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    injections: int = 0
    latency_ms: float = 0.0

    def public(self) -> dict[str, Any]:
        return {"decision": self.decision, "score": self.score, "reasons": self.reasons,
                **({"injections_marked": self.injections} if self.injections else {})}


@dataclass
class OutputVerdict:
    action: OutputAction = "pass"
    text: str = ""
    findings: list[Finding] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)  # category -> action applied

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def public(self) -> dict[str, Any]:
        return {"action": self.action,
                "findings": [{**f.public(), "action": self.actions.get(f.category, "annotate")} for f in self.findings]}


class ModelGuard:
    """The policy profile in force for one request's model."""

    def __init__(self, owner: Guardrails, profile: Profile, model: str) -> None:
        self.owner = owner
        self.profile = profile
        self.model = model

    @property
    def enabled(self) -> bool:
        return self.profile.enabled

    # -- input --------------------------------------------------------------------------------------------
    def screen_input(self, messages: list[dict[str, Any]]) -> InputVerdict:
        """Decide on a chat request; ``verdict.messages`` is what the model should see."""
        started = time.perf_counter()
        verdict = InputVerdict(messages=[dict(m) for m in messages])
        if not self.enabled:
            return verdict
        inj = self.profile.rule("prompt_injection")
        if inj.action != OFF:
            for m in verdict.messages:
                # tool output is untrusted data; a user message may carry text pasted from elsewhere (the
                # operator's system message is trusted and left alone)
                if m.get("role") in ("tool", "function", "user") and isinstance(m.get("content"), str):
                    screened = screen_untrusted(m["content"], inj.action)  # type: ignore[arg-type]
                    if screened.flagged:
                        verdict.injections += len(screened.findings)
                        m["content"] = screened.text
            if verdict.injections:
                verdict.reasons.append(f"prompt_injection: {verdict.injections} instruction-like passage(s) "
                                       f"({inj.action})")
                self.owner.count("input", "prompt_injection", inj.action, self.model)
        rule = self.profile.rule("harmful_intent")
        if rule.action != OFF:
            text = _last_user_text(messages)
            if text:
                clf = self.owner.classifier_or_raise()
                t = Thresholds(refuse=rule.option("refuse_at"), caution=rule.option("caution_at"))
                s = clf.score(text, t)
                verdict.score = s.score
                if s.decision != "answer":
                    why = (f"harmful_intent: score {s.score:.2f} >= {t.refuse if s.decision == 'refuse' else t.caution}"
                           + (f" (closest curated case: {s.nearest_pair})" if s.nearest_pair else ""))
                    verdict.reasons.append(why)
                    decision = s.decision
                    if rule.action == "caution" and decision == "refuse":
                        decision = "caution"
                    if rule.action == "annotate":
                        decision = "answer"
                    verdict.decision = decision  # type: ignore[assignment]
                    if decision == "refuse":
                        verdict.refusal = helpful_refusal(s.nearest_pair)
                    elif decision == "caution":
                        verdict.messages = with_caution_note(verdict.messages)
        verdict.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        if rule.action != OFF:
            self.owner.count("input", "harmful_intent", verdict.decision, self.model)
        self.owner.observe("input", time.perf_counter() - started)
        return verdict

    def screen_prompt(self, prompt: str) -> InputVerdict:
        """A legacy completions prompt screened as one user message."""
        return self.screen_input([{"role": "user", "content": prompt}])

    # -- output -------------------------------------------------------------------------------------------
    def _findings(self, text: str, *, insecure: bool = True, toxic_from: int = 0) -> list[Finding]:
        p = self.profile
        found: list[Finding] = []
        blocks = code_blocks(text) if any(p.rule(c).action != OFF for c in ("malicious_code", "insecure_code")) else []
        if p.rule("malicious_code").action != OFF:
            found += malicious_findings(text, blocks)
        if insecure and p.rule("insecure_code").action != OFF:
            found += insecure_findings(blocks)
        if p.rule("toxicity").action != OFF and toxic_from < len(text):
            found += [Finding(f.category, f.rule, f.message, f.start + toxic_from, f.end + toxic_from, f.severity)
                      for f in toxicity_findings(text[toxic_from:], p.rule("toxicity").option("cutoff"))]
        if p.rule("secrets").action != OFF:
            found += secret_findings(text)
        if p.rule("pseudonym_leak").action != OFF:
            found += pseudonym_findings(text, self.owner.private_keys)
        return found

    def _decide(self, text: str, findings: list[Finding]) -> OutputVerdict:
        actions = {f.category: self.profile.rule(f.category).action for f in findings}
        worst: OutputAction = "pass"
        for a in actions.values():
            if _SEVERITY[a] > _SEVERITY[worst]:
                worst = a  # type: ignore[assignment]
        out = text
        if worst == "block":
            what = "; ".join(sorted({f.message.split(":")[0] for f in findings if actions[f.category] == "block"}))
            out = BLOCKED_ANSWER.format(what=what)
        elif worst == "redact":
            out = redact(text, [f for f in findings if actions[f.category] == "redact"])
        return OutputVerdict(worst, out, findings, actions)

    def screen_output(self, text: str) -> OutputVerdict:
        """Check a whole answer and apply the profile's action per category."""
        if not any(self.profile.rule(c).action != OFF for c in OUTPUT_CATEGORIES):
            return OutputVerdict("pass", text)
        started = time.perf_counter()
        verdict = self._decide(text, self._findings(text))
        self._count_output(verdict)
        self.owner.observe("output", time.perf_counter() - started)
        return verdict

    def _count_output(self, verdict: OutputVerdict) -> None:
        for category, action in verdict.actions.items():
            self.owner.count("output", category, action, self.model)

    def stream(self) -> StreamGuard:
        return StreamGuard(self)

    # -- reporting ----------------------------------------------------------------------------------------
    def report(self, verdict: InputVerdict | None, outputs: list[OutputVerdict] | None = None) -> dict[str, Any]:
        """The ``guardrails`` extension field of a response."""
        decision = verdict.decision if verdict else "answer"
        outs = outputs or []
        if any(o.blocked for o in outs):
            decision = "blocked"
        elif any(o.action == "redact" for o in outs) and decision == "answer":
            decision = "redacted"
        body: dict[str, Any] = {"decision": decision, "policy": self.profile.name,
                                "policy_file": self.owner.policy_label, "classifier": self.owner.classifier_id}
        if verdict is not None:
            body["input"] = verdict.public()
        if outs:
            body["output"] = [dict(index=i, **o.public()) for i, o in enumerate(outs)]
        return body


class StreamGuard:
    """Output checks on a growing stream of one choice.

    Deltas pass straight through unless the profile redacts something, in which case text is released a
    line at a time after the line was checked. Checks run at each newline (and every 200 characters without
    one); a ``block`` finding stops the stream (finish_reason ``content_filter``). Redaction in a stream
    applies from the point where the finding becomes visible: use ``block`` for categories that must never
    reach a client in part.
    """

    CHECK_EVERY = 200

    def __init__(self, guard: ModelGuard) -> None:
        self.guard = guard
        p = guard.profile
        self.active = any(p.rule(c).action != OFF for c in OUTPUT_CATEGORIES)
        self.buffered = any(p.rule(c).action == "redact" for c in OUTPUT_CATEGORIES)
        self.text = ""
        self.sent = 0  # characters of self.text already released (raw positions)
        self.checked_at = 0
        self.toxic_from = 0
        self.findings: dict[tuple[str, str, int], Finding] = {}
        self.stopped = False
        self.elapsed = 0.0

    def _check(self, final: bool) -> None:
        started = time.perf_counter()
        cut = len(self.text) if final else self.text.rfind("\n") + 1 or len(self.text)
        for f in self.guard._findings(self.text, insecure=final or self.text.count("```") % 2 == 0,
                                      toxic_from=self.toxic_from):
            self.findings.setdefault((f.category, f.rule, f.start), f)
        self.toxic_from = cut
        self.checked_at = len(self.text)
        if any(self.guard.profile.rule(f.category).action == "block" for f in self.findings.values()):
            self.stopped = True
        self.elapsed += time.perf_counter() - started

    def _release(self, upto: int) -> str:
        """Raw text [sent, upto) with redact-findings replaced (pieces inside an already-redacted span vanish)."""
        if upto <= self.sent:
            return ""
        spans = [f for f in self.findings.values() if self.guard.profile.rule(f.category).action == "redact"]
        out, pos = [], self.sent
        for f in sorted(spans, key=lambda f: f.start):
            if f.end <= pos or f.start >= upto:
                continue
            if f.start > pos:
                out.append(self.text[pos:f.start])
            if f.start >= self.sent:
                out.append(f"[redacted by guardrails: {f.category}]")
            pos = max(pos, min(f.end, upto))
        if pos < upto:
            out.append(self.text[pos:upto])
        self.sent = upto
        return "".join(out)

    def feed(self, delta: str) -> str:
        """Add ``delta``; return the text to send now ("" while held back or once stopped)."""
        if self.stopped:
            return ""
        self.text += delta
        if not self.active:
            self.sent = len(self.text)
            return delta
        if "\n" in delta or len(self.text) - self.checked_at >= self.CHECK_EVERY:
            self._check(final=False)
            if self.stopped:
                return ""
        if not self.buffered:
            self.sent = len(self.text)
            return delta
        line_end = self.text.rfind("\n") + 1
        return self._release(line_end) if line_end > self.sent and self.checked_at >= line_end else ""

    def close(self) -> tuple[str, OutputVerdict]:
        """Final check on the whole answer: the held-back tail to send, and the verdict."""
        if self.active and not self.stopped:
            self._check(final=True)
        tail = "" if self.stopped or not self.active else self._release(len(self.text))
        verdict = self.guard._decide(self.text, list(self.findings.values())) if self.active \
            else OutputVerdict("pass", self.text)
        if self.active:
            self.guard._count_output(verdict)
            self.guard.owner.observe("output", self.elapsed)
        return tail, verdict


class Guardrails:
    """Policy + classifier for one server. Build with :meth:`from_env`; call :meth:`load` (may be slow)."""

    def __init__(self, policy: Policy | None, models_dir: Path, *, embedding_model: str | None = None,
                 metrics: Any = None) -> None:
        self.policy = policy
        self.models_dir = models_dir
        self.embedding_model = embedding_model
        self.metrics = metrics
        self.classifier: IntentClassifier | None = None
        self.load_error: str | None = None
        self.loaded = threading.Event()
        self.production: Callable[[], str | None] = lambda: None  # the registry's production adapter (the app's)
        key = os.environ.get(OBFUSCATION_KEY_ENV, "").strip()
        self.private_keys: tuple[str, ...] = (key,) if key else ()
        if policy is None or not policy.needs_classifier:
            self.loaded.set()

    @classmethod
    def from_env(cls, spec: str | None, models_dir: Path, **kw: Any) -> Guardrails:
        """``spec`` = ``SECOPS_GUARDRAILS_POLICY`` (a path or a name under configs/guardrails/); unset = off.

        An invalid policy file raises :class:`~secops_ai.guardrails.policy.PolicyError` naming the line.
        """
        policy = load_policy(spec) if spec and spec.strip() else None
        return cls(policy, models_dir, **kw)

    @property
    def policy_label(self) -> str | None:
        return f"{self.policy.path.name}@v{self.policy.version}" if self.policy else None

    @property
    def classifier_id(self) -> str | None:
        return self.classifier.run_id if self.classifier else None

    def load(self) -> None:
        """Load the classifier the policy names (never raises: the error is kept for /readyz)."""
        if self.loaded.is_set():
            return
        assert self.policy is not None
        try:
            path = resolve_classifier(self.models_dir, self.policy.classifier)
            self.classifier = IntentClassifier.load(path, embedding_model=self.embedding_model)
            log.info("guardrails: policy %s, classifier %s", self.policy_label, self.classifier.run_id)
        except Exception as exc:
            self.load_error = f"guardrails classifier cannot load: {exc}"
            log.error("%s", self.load_error)
        finally:
            self.loaded.set()

    def status(self) -> tuple[bool, str]:
        """(ready, detail) for /readyz."""
        if self.policy is None:
            return True, "off"
        if self.load_error:
            return False, self.load_error
        if not self.loaded.is_set():
            return False, "guardrails classifier is still loading"
        return True, f"{self.policy_label}" + (f", classifier {self.classifier_id}" if self.classifier else "")

    def classifier_or_raise(self) -> IntentClassifier:
        if self.classifier is not None:
            return self.classifier
        raise GuardrailsUnavailable(self.load_error or "guardrails classifier is still loading")

    def for_model(self, names: list[str | None]) -> ModelGuard:
        """The guard for a request whose model answers to ``names`` (first match in the policy wins)."""
        clean = [n for n in names if n]
        if self.policy is None:
            from secops_ai.guardrails.policy import OFF_PROFILE

            return ModelGuard(self, OFF_PROFILE, clean[0] if clean else "?")
        return ModelGuard(self, self.policy.profile_for(clean), clean[0] if clean else "?")

    # -- metrics ------------------------------------------------------------------------------------------
    def count(self, stage: str, category: str, outcome: str, model: str) -> None:
        m = self.metrics
        if m is not None and hasattr(m, "guardrails_decisions"):
            m.guardrails_decisions.labels(model, stage, category, outcome).inc()

    def observe(self, stage: str, seconds: float) -> None:
        m = self.metrics
        if m is not None and hasattr(m, "guardrails_latency"):
            m.guardrails_latency.labels(stage).observe(seconds)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # OpenAI content parts
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def helpful_refusal(pair_id: str | None) -> str:
    """The curated refusal of the closest harmful case (it names the defensive alternative), else a generic one."""
    if pair_id:
        from secops_ai.data.generators.refusals import REFUSAL_PAIRS

        for p in REFUSAL_PAIRS:
            if p.id == pair_id:
                return p.refusal
    return GENERIC_REFUSAL


def with_caution_note(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the caution note in the (first) system message, added if there is none."""
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0]["content"] = f"{out[0]['content']}\n\n{CAUTION_NOTE}"
    else:  # keep the default system prompt the chat template would have added (SECOPS_SYSTEM_PROMPT)
        from secops_ai.config import get_settings

        default = get_settings().system_prompt
        out.insert(0, {"role": "system", "content": f"{default}\n\n{CAUTION_NOTE}" if default else CAUTION_NOTE})
    return out
