"""Self-correction loops over any generation function.

- ``intrinsic`` (Self-Refine, Madaan et al. 2023): draft -> the model critiques its draft -> it revises
  (skipped when the critique finds no issue). Three model calls at most, no outside knowledge.
- ``verified`` (CRITIC, Gou et al. 2023): draft -> claims read out of the draft and the question (CWE / CAPEC
  / ATT&CK / CVE ids, the sentences bound to them, code blocks) are checked against the local catalogs and
  scanned with bandit/semgrep -> when anything failed, ONE regeneration with the evidence in context ->
  the regenerated answer is checked again and whatever still contradicts the catalog is corrected or struck
  deterministically, then every verified id is cited inline (``[CWE-79]``) with a sources line giving its
  catalog title. Two model calls at most, so latency stays near 2x a plain answer.

The batch form (:func:`correct_batch`) runs each stage for all conversations in one call of the backend,
which is how the evaluation gate scores a model with self-correction on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from secops_ai.alignment.selfcorrect import catalog as cat
from secops_ai.alignment.selfcorrect.claims import (
    DENIES,
    Segment,
    bind,
    distinct,
    is_multiple_choice,
    join,
    last_user_text,
    mentions,
    segments,
)
from secops_ai.alignment.selfcorrect.scan import BlockScan, scan_block
from secops_ai.alignment.selfcorrect.trace import (
    MODES,
    Check,
    Claim,
    Correction,
    Evidence,
    Mode,
    Revision,
    Unverified,
)
from secops_ai.data.text import clip
from secops_ai.inference.types import ChatBackend, GenerationParams, Message

log = logging.getLogger(__name__)

Generate = Callable[[list[Message]], str]
# (conversations, max_tokens or None for the caller's own budget) -> one reply each
BatchGenerate = Callable[[list[list[Message]], int | None], list[str]]

CRITIQUE_TOKENS = 128
MAX_SUBJECTS = 6
_CATALOG_NAMES = {"cwe": "CWE", "capec": "CAPEC", "attack": "MITRE ATT&CK"}

CRITIQUE_PROMPT = (
    "Review your answer above for factual mistakes, invented identifiers (CWE, CAPEC, ATT&CK, CVE) and insecure "
    "code. List each problem in one short line. If there are none, reply exactly: NO ISSUES")
REVISE_PROMPT = (
    "Feedback on your answer:\n{critique}\n\n"
    "Write an improved answer to the original question that fixes these problems. Reply with the answer only.")
EVIDENCE_PROMPT = (
    "Facts from the local security catalogs and scanners (verified):\n{facts}\n\n"
    "Problems found in a first draft:\n{problems}\n\n"
    "Question: {question}\n\n"
    "Answer the question again using only the facts above. Cite each fact's id in square brackets, "
    "e.g. [CWE-79]. Do not mention any other identifier.{code_hint}")
_NO_ISSUES = re.compile(r"\bno (?:issues?|problems?|mistakes?|errors?)\b", re.IGNORECASE)


class ModeError(ValueError):
    """A self-correction mode outside ``off | intrinsic | verified``."""


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ModeError(f"self_correct must be one of {', '.join(MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]


# -- public API ----------------------------------------------------------------------------------------------

def correct(messages: list[Message], generate: Generate, mode: str = "verified", *, draft: str | None = None,
            scan_code: bool = True) -> Correction:
    """Answer ``messages`` with self-correction. ``generate(messages) -> reply`` is any model call.

    ``draft``: an answer already written (an agent's report): it is checked and corrected instead of drafting.
    """
    return correct_batch([messages], lambda convs, _max: [generate(c) for c in convs], mode,
                         drafts=None if draft is None else [draft], scan_code=scan_code)[0]


def check_claims(text: str, question: str = "", *, scan_code: bool = True) -> Correction:
    """The verified checks over text already written (an agent's final report, a plan), without any model call:
    ids checked against the catalogs, contradictions struck or corrected, CVEs marked unverified, verified ids
    cited. ``question`` (the task) tells which entries the text is about."""
    return correct_batch([[{"role": "user", "content": question}]], None, "verified", drafts=[text],
                         scan_code=scan_code)[0]


def backend_generate(backend: ChatBackend, params: GenerationParams | None = None) -> BatchGenerate:
    """A :data:`BatchGenerate` over a :class:`ChatBackend` (critiques get a shorter budget)."""
    base = params or GenerationParams()

    def run(convs: list[list[Message]], max_tokens: int | None) -> list[str]:
        p = base if max_tokens is None else replace(base, max_tokens=min(max_tokens, base.max_tokens))
        return backend.chat(convs, p)

    return run


def correct_batch(conversations: Sequence[list[Message]], generate: BatchGenerate | None, mode: str = "verified",
                  *, drafts: Sequence[str] | None = None, scan_code: bool = True) -> list[Correction]:
    """:func:`correct` for many conversations, one backend call per stage. With ``generate=None`` (``drafts``
    given, verified mode) only the deterministic checks and corrections run."""
    mode = check_mode(mode)
    if generate is None and (drafts is None or mode == "intrinsic"):
        raise ValueError("generate=None needs drafts and mode 'verified' or 'off'")
    convs = [list(c) for c in conversations]
    started = time.perf_counter()
    calls = [0] * len(convs)
    if drafts is None:
        drafts = _generate(generate, convs, None, calls, range(len(convs)))  # type: ignore[arg-type]
    drafts = list(drafts)
    assert len(drafts) == len(convs), "one draft per conversation"
    failures: list[str] = []
    if mode == "off":
        out = [Correction(mode="off", final=d, draft=d) for d in drafts]
    elif mode == "intrinsic":
        out = _intrinsic(convs, drafts, generate, calls, failures)
    else:
        try:
            out = _verified(convs, drafts, generate, calls, scan_code, failures)
        except Exception as exc:  # a bug or broken data in the checks must not cost the user the answer
            log.exception("self-correction: verification failed; returning the draft unverified")
            failures.append(f"verification failed: {type(exc).__name__}: {str(exc)[:300]}")
            out = [Correction(mode="verified", final=d, draft=d, verification="unverified") for d in drafts]
    for c in out:
        for reason in failures:
            c.unverified.append(Unverified(ref="self_correction", reason=reason))
            if c.mode == "verified":
                c.verification = "unverified"
    elapsed = (time.perf_counter() - started) / max(1, len(convs))
    for c, n in zip(out, calls, strict=True):
        c.model_calls = n
        c.duration_s = round(elapsed, 3)
    return out


def _generate(generate: BatchGenerate, convs: list[list[Message]], max_tokens: int | None, calls: list[int],
              which: Sequence[int], failures: list[str] | None = None) -> list[str]:
    """Replies for ``convs[i]``, ``i`` in ``which``. With ``failures`` given, an extra pass that fails (the
    evidence made the prompt too long, the queue is full) yields empty replies and its reason, so the caller
    keeps the draft instead of failing the request; without it (the draft itself) the error propagates."""
    which = list(which)
    if not which:
        return []
    try:
        replies = generate([convs[i] for i in which], max_tokens)
    except Exception as exc:
        if failures is None:
            raise
        log.warning("self-correction: an extra generation failed, keeping the draft: %s", exc)
        failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        return [""] * len(which)
    for i in which:
        calls[i] += 1
    return [r or "" for r in replies]


# -- intrinsic --------------------------------------------------------------------------------------------------

def _intrinsic(convs: list[list[Message]], drafts: list[str], generate: BatchGenerate,
               calls: list[int], failures: list[str]) -> list[Correction]:
    crit_convs = [[*c, {"role": "assistant", "content": d}, {"role": "user", "content": CRITIQUE_PROMPT}]
                  for c, d in zip(convs, drafts, strict=True)]
    critiques = _generate(generate, crit_convs, CRITIQUE_TOKENS, calls, range(len(convs)), failures)
    todo = [i for i, cr in enumerate(critiques) if cr.strip() and not _NO_ISSUES.search(cr)]
    rev_convs = [[*conv, {"role": "assistant", "content": draft},
                  {"role": "user", "content": REVISE_PROMPT.format(critique=critique.strip())}]
                 for conv, draft, critique in zip(convs, drafts, critiques, strict=True)]
    revised = dict(zip(todo, _generate(generate, rev_convs, None, calls, todo, failures), strict=True))
    out = []
    for i, (draft, critique) in enumerate(zip(drafts, critiques, strict=True)):
        new = revised.get(i, "").strip()
        if new:
            out.append(Correction(mode="intrinsic", final=new, draft=draft, critique=critique, revisions=[
                Revision(action="critique_revise", reason="the critique listed problems", before=draft, after=new)]))
        else:
            why = ("the revision was empty" if i in revised else
                   "the critique found no issues" if critique.strip() else "no critique was produced")
            out.append(Correction(mode="intrinsic", final=draft, draft=draft, critique=critique,
                                  revisions=[Revision(action="keep_draft", reason=why)]))
    return out


# -- verified ---------------------------------------------------------------------------------------------------

@dataclass
class _Subject:
    kind: str
    ref: str
    via: str  # "id" (the question cites it) or "name" (the question names the entry)
    entry: cat.Entry | None
    exists: bool | None  # None: cannot be checked offline (CVE) or the catalog failed


@dataclass
class _State:
    """Everything one verified correction learns; becomes the Correction."""

    question: str
    subjects: list[_Subject] = field(default_factory=list)
    entries: dict[str, cat.Entry | None] = field(default_factory=dict)
    catalog_errors: dict[str, str] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    unverified: dict[str, str] = field(default_factory=dict)
    scans: dict[str, BlockScan] = field(default_factory=dict)  # code text -> scan

    def entry(self, kind: str, ref: str) -> cat.Entry | None:
        """The catalog entry (cached); a catalog failure is remembered and the id treated as unverifiable."""
        if ref not in self.entries and ref not in self.catalog_errors:
            try:
                self.entries[ref] = cat.lookup(kind, ref)
            except cat.CatalogError as exc:
                self.catalog_errors[ref] = str(exc)
                self.unverified[ref] = f"the {_CATALOG_NAMES.get(kind, kind)} catalog failed: {exc}"
        return self.entries.get(ref)

    def known(self, ref: str) -> bool:
        return ref in self.entries


def _verified(convs: list[list[Message]], drafts: list[str], generate: BatchGenerate | None, calls: list[int],
              scan_code: bool, failures: list[str]) -> list[Correction]:
    states = [_subjects(last_user_text(c)) for c in convs]
    problems = [_inspect(s, d, "draft", scan_code) for s, d in zip(states, drafts, strict=True)]
    todo = [i for i, p in enumerate(problems) if p] if generate is not None else []
    prompts = {i: [*convs[i][:-1], {"role": "user", "content": _evidence_prompt(states[i], problems[i])}]
               for i in todo}
    regen_convs = [prompts.get(i, convs[i]) for i in range(len(convs))]
    regenerated = dict(zip(todo, _generate(generate, regen_convs, None, calls, todo, failures),  # type: ignore[arg-type]
                           strict=True))
    out = []
    for i, (state, draft) in enumerate(zip(states, drafts, strict=True)):
        text = draft
        if i in regenerated and regenerated[i].strip():
            text = regenerated[i]
            state.revisions.append(Revision(action="regenerate", reason="; ".join(problems[i])[:500],
                                            before=draft, after=text))
            _inspect(state, text, "revision", scan_code)
        final = _finalize(state, text, scan_code)
        evidence = [Evidence(ref=e.ref, title=e.title, text=clip(e.text, 400), source=e.source)
                    for e in state.entries.values() if e is not None]
        evidence += [Evidence(ref=ref, title="not in the local catalog", source=_CATALOG_NAMES.get(_kind(ref), ""))
                     for ref, e in state.entries.items() if e is None]
        for scan in state.scans.values():
            if scan.scanner:
                evidence.append(Evidence(ref=f"code:{scan.scanner}", title=f"{len(scan.findings)} finding(s)"
                                         if scan.error is None else "scan failed",
                                         text="\n".join(scan.findings) or (scan.error or "no findings"),
                                         source=scan.scanner))
        unverified = [Unverified(ref=r, reason=why) for r, why in state.unverified.items()]
        out.append(Correction(mode="verified", final=final, draft=draft, claims=state.claims, evidence=evidence,
                              checks=state.checks, revisions=state.revisions,
                              verification="unverified" if unverified else "verified", unverified=unverified))
    return out


def _kind(ref: str) -> str:
    if ref.startswith("CWE-"):
        return "cwe"
    if ref.startswith("CAPEC-"):
        return "capec"
    if ref.startswith("CVE-"):
        return "cve"
    return "attack"


def _subjects(question: str) -> _State:
    """What the question asks about: ids it cites, entries it names (not for multiple-choice questions)."""
    state = _State(question=question)
    if is_multiple_choice(question):
        return state
    found: list[tuple[str, str, str]] = [(m.kind, m.ref, "id") for m in distinct(mentions(question))]
    try:
        found += [(k, r, "name") for k, r in cat.named_entries(question)]
    except cat.CatalogError as exc:
        state.unverified["question"] = f"catalog names could not be searched: {exc}"
    seen: set[str] = set()
    for kind, ref, via in found:
        if ref in seen or len(state.subjects) >= MAX_SUBJECTS:
            continue
        seen.add(ref)
        state.claims.append(Claim(kind=kind, ref=ref, text=clip(question, 300), source="question"))  # type: ignore[arg-type]
        if kind == "cve":
            state.subjects.append(_Subject(kind, ref, via, None, None))
            continue
        entry = state.entry(kind, ref)
        state.subjects.append(_Subject(kind, ref, via, entry, None if not state.known(ref) else entry is not None))
    return state


@dataclass
class _Verdict:
    strike: str | None = None  # why the sentence goes
    replace: dict[str, str] = field(default_factory=dict)  # wrong id -> the id the question's name binds
    unverified: list[str] = field(default_factory=list)  # CVE ids to mark
    cite: list[str] = field(default_factory=list)  # verified ids the sentence states


def _judge(state: _State, seg: Segment) -> tuple[_Verdict, list[Check]]:
    """Check one sentence against the catalogs."""
    v, checks = _Verdict(), []
    denies = bool(DENIES.search(seg.text))
    named = {s.kind: s for s in state.subjects if s.via == "name" and s.exists}
    subject_refs = {s.ref for s in state.subjects}
    for m in distinct(mentions(seg.text)):
        if m.kind == "cve":
            if m.cve_well_formed:
                v.unverified.append(m.ref)
                checks.append(Check(ref=m.ref, status="unverified", detail="no offline CVE source to check it against"))
            else:
                v.strike = f"{m.ref} is not a well-formed CVE id"
                checks.append(Check(ref=m.ref, status="not_found", detail=v.strike))
            continue
        entry = state.entry(m.kind, m.ref)
        if not state.known(m.ref):
            checks.append(Check(ref=m.ref, status="unverified", detail=state.unverified.get(m.ref, "catalog failed")))
            continue
        if entry is None:
            if denies:
                checks.append(Check(ref=m.ref, status="supported", detail="says the id does not exist (it does not)"))
            else:
                v.strike = f"{m.ref} does not exist in the local {_CATALOG_NAMES[m.kind]} catalog"
                checks.append(Check(ref=m.ref, status="not_found", detail=v.strike))
            continue
        subject = named.get(m.kind)
        if subject and m.ref not in subject_refs and subject.entry is not None:
            # "Which CWE is <name>?" has one right answer; any other id of that kind answers it wrongly.
            checks.append(Check(ref=m.ref, status="wrong_id", detail=(
                f"the question names '{subject.entry.title}', which the catalog files as {subject.ref}; "
                f"{m.ref} is '{entry.title}'")))
            if subject.ref in seg.text:
                v.strike = f"cites {m.ref} beside {subject.ref}, the id the catalog gives the named entry"
            else:
                v.replace[m.ref] = subject.ref
            continue
        v.cite.append(m.ref)
    for kind, subject in named.items():
        # Bare numbers ("The CWE ID is 21111") and made-up codes ("EB123") answer an id question too: the
        # gate's own reading of id claims (evals.identifiers) decides what counts.
        if kind not in ("cwe", "capec") or denies or v.strike:
            continue
        from secops_ai.evals.identifiers import id_claims

        odd = [c.id for c in id_claims(seg.text, kind, state.question) if c.form != "formatted"
               and c.id != subject.ref]
        if odd:
            v.strike = f"gives {', '.join(odd[:3])} as the id, where the catalog files the named entry as {subject.ref}"
            checks.append(Check(ref=", ".join(odd[:3]), status="wrong_id", detail=v.strike))
    bound = [state.entries.get(r) for r in seg.refs if r not in v.replace]
    bound_entries = [e for e in bound if e is not None]
    if bound_entries and not denies and v.strike is None:
        score = cat.support(seg.text, bound_entries)
        refs = ", ".join(e.ref for e in bound_entries)
        if score is not None and score < cat.SUPPORT_THRESHOLD:
            v.strike = f"says something the catalog entry for {refs} does not support (agreement {score:.2f})"
            checks.append(Check(ref=refs, status="contradicted", detail=v.strike))
        elif score is not None:
            checks.append(Check(ref=refs, status="supported",
                                detail=f"agrees with the catalog (agreement {score:.2f})"))
    return v, checks


def _inspect(state: _State, text: str, stage: str, scan_code: bool) -> list[str]:
    """Check ``text``; record claims and checks; return the problems (empty: nothing to fix)."""
    segs = segments(text)
    bind(segs, [s.ref for s in state.subjects] if len(state.subjects) == 1 else [])
    problems: list[str] = []
    n_code = 0
    for seg in segs:
        if seg.kind == "code":
            n_code += 1
            state.claims.append(Claim(kind="code", ref=f"code-{n_code}", text=clip(seg.code, 300), source=stage))  # type: ignore[arg-type]
            if not scan_code:
                continue
            scan = _scan(state, seg)
            if scan.error:
                state.checks.append(Check(ref=f"code-{n_code}", status="unverified", detail=scan.error, stage=stage))  # type: ignore[arg-type]
            elif scan.findings:
                state.checks.append(Check(ref=f"code-{n_code}", status="issues", detail="; ".join(scan.findings)[:600],
                                          stage=stage))  # type: ignore[arg-type]
                problems.append(f"code block {n_code}: " + "; ".join(scan.findings))
            else:
                state.checks.append(Check(ref=f"code-{n_code}", status="supported",
                                          detail=f"{scan.scanner}: no findings", stage=stage))  # type: ignore[arg-type]
            continue
        if seg.kind != "sentence" or not (seg.refs or mentions(seg.text)):
            continue
        for m in distinct(mentions(seg.text)):
            state.claims.append(Claim(kind=m.kind, ref=m.ref, text=clip(seg.text, 300), source=stage))  # type: ignore[arg-type]
        _, checks = _judge(state, seg)
        for c in checks:
            c.stage = stage  # type: ignore[assignment]
        state.checks.extend(checks)
        problems += [f"{c.ref}: {c.detail}" for c in checks if c.status in ("not_found", "contradicted", "wrong_id")]
    for s in _missing(state, text):
        state.checks.append(Check(ref=s.ref, status="missing", stage=stage,  # type: ignore[arg-type]
                                  detail="the answer does not state what the catalog says about it"))
        problems.append(f"{s.ref}: the answer does not state the catalog's facts")
    return problems


def _scan(state: _State, seg: Segment) -> BlockScan:
    scan = state.scans.get(seg.code)
    if scan is None:
        scan = scan_block(seg.lang, seg.code)
        state.scans[seg.code] = scan
        if scan.error and scan.scanner:
            state.unverified[f"code:{scan.scanner}"] = scan.error
    return scan


def _missing(state: _State, text: str) -> list[_Subject]:
    """Subjects the answer leaves unanswered: no id, no catalog title, or an invented id not denied."""
    if len(state.subjects) > 3:  # a long list of ids is context, not one question per id
        return []
    prose = "".join(s.text for s in segments(text) if s.kind != "code")
    out = []
    for s in state.subjects:
        if s.exists is None:
            continue
        if not s.exists:
            if not (s.ref.lower() in prose.lower() and DENIES.search(prose)):
                out.append(s)
        elif s.entry is not None and not (s.ref in {m.ref for m in mentions(prose)}
                                          and cat.states_title(prose, s.entry)):
            out.append(s)
    return out


def _evidence_prompt(state: _State, problems: list[str]) -> str:
    facts = []
    for ref, e in state.entries.items():
        if e is not None:
            facts.append(f"[{ref}] {e.title}: {clip(e.text, 300)}")
        else:
            facts.append(f"[{ref}] does not exist in the local {_CATALOG_NAMES.get(_kind(ref), '')} catalog.")
    for s in state.subjects:
        if s.kind == "cve":
            facts.append(f"[{s.ref}] cannot be verified offline (no local CVE source).")
    code_hint = ""
    for scan in state.scans.values():
        if scan.findings:
            facts += [f"- {f}" for f in scan.findings]
            code_hint = " Show corrected code that the scanner findings no longer apply to."
    return EVIDENCE_PROMPT.format(facts="\n".join(facts) or "(none)",
                                  problems="\n".join(f"- {p}" for p in problems[:10]),
                                  question=state.question.strip(), code_hint=code_hint)


def _finalize(state: _State, text: str, scan_code: bool) -> str:
    """Deterministic last pass: strike or correct what still contradicts the catalog, state missing facts,
    mark unverifiable ids, warn about code with findings, cite verified ids."""
    segs = segments(text)
    bind(segs, [s.ref for s in state.subjects] if len(state.subjects) == 1 else [])
    cited: list[str] = []
    marked: set[str] = set()
    for seg in segs:
        if seg.kind == "code":
            scan = _scan(state, seg) if scan_code else None
            if scan and scan.findings:
                seg.text += "\n\n> Warning: scanner findings remain in the code above: " + "; ".join(scan.findings)
                state.revisions.append(Revision(action="warn_code", target=seg.code[:80],
                                                reason="; ".join(scan.findings)[:500]))
            elif scan and scan.error and scan.scanner:
                seg.text += f"\n\n> Note: this code could not be scanned ({scan.error}); it is unverified."
            continue
        if seg.kind != "sentence" or not (seg.refs or mentions(seg.text)):
            continue
        verdict, _ = _judge(state, seg)
        if verdict.strike:
            state.revisions.append(Revision(action="strike", target=", ".join(seg.refs), reason=verdict.strike,
                                            before=seg.text))
            seg.text = ""
            continue
        for wrong, right in verdict.replace.items():
            before = seg.text
            seg.text = re.sub(rf"\b{re.escape(wrong)}\b", right, seg.text)
            verdict.cite.append(right)
            state.revisions.append(Revision(action="correct_id", target=wrong, before=before, after=seg.text,
                                            reason=f"the catalog files the named entry as {right}"))
        for ref in verdict.unverified:
            if ref not in marked:
                marked.add(ref)
                seg.text = re.sub(rf"\b{re.escape(ref)}\b(?! \[unverified\])", f"{ref} [unverified]", seg.text, count=1)
                state.unverified.setdefault(ref, "no offline CVE source")
                state.revisions.append(Revision(action="mark_unverified", target=ref, reason="no offline CVE source"))
        new = [r for r in dict.fromkeys(verdict.cite) if r not in cited and f"[{r}]" not in seg.text]
        if new:
            cited += new
            body = seg.text.rstrip()
            tail = body[-1] if body and body[-1] in ".!?:" else ""
            seg.text = body[: len(body) - len(tail)] + "".join(f" [{r}]" for r in new) + tail + seg.text[len(body):]
        cited += [r for r in verdict.cite if r not in cited]
    final = join(segs)
    facts = []
    for s in _missing(state, final):
        if s.exists and s.entry is not None:
            facts.append(f"{s.ref} is \"{s.entry.title}\" [{s.ref}].")
            if s.ref not in cited:
                cited.append(s.ref)
        else:
            facts.append(f"{s.ref} does not exist in the local {_CATALOG_NAMES[s.kind]} catalog, "
                         "so there is nothing verified to say about it.")
        state.revisions.append(Revision(action="state_fact", target=s.ref, after=facts[-1],
                                        reason="the answer did not state the catalog's facts"))
    for s in state.subjects:
        if s.kind == "cve" and s.ref not in marked:
            facts.append(f"{s.ref} cannot be verified offline (no local CVE source); treat details about it as "
                         "unverified.")
            state.unverified.setdefault(s.ref, "no offline CVE source")
    final = " ".join([*facts, final]).strip() if not final.startswith("```") else "\n\n".join([*facts, final])
    if not final:
        final = "I could not verify an answer to this against the local catalogs."
    sources = [f"[{r}] {state.entries[r].title} — {state.entries[r].source}"  # type: ignore[union-attr]
               for r in dict.fromkeys(cited) if state.entries.get(r) is not None and f"[{r}]" in final]
    if sources:
        final += "\n\nSources:\n" + "\n".join(sources)
        state.revisions.append(Revision(action="cite", target=", ".join(dict.fromkeys(cited)),
                                        reason="verified against the local catalogs"))
    return final
