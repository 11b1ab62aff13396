"""Generators: build training datasets from imported sources, reproducibly.

Same source datasets + same seed + same config ⇒ byte-identical ``records.jsonl``: every random choice comes
from a ``random.Random`` seeded by ``(seed, task, item id)``, inputs are read in stored order, and records are
serialised canonically by the store.

Generators (``GENERATORS``):

* ``finding-triage``  finding → explanation, CWE, severity, fix (chat)
* ``cwe-qa``          CWE definition, remediation, CAPEC links and name→id questions (chat)
* ``attack-lookup``   ATT&CK technique look-ups: what it is, its id, its mitigations (chat)
* ``refusals``        refusals of clearly harmful requests next to full answers to their defensive twins (chat)
* ``security-sft``    all four mixed (chat): the starter SFT set
* ``security-dpo``    preference pairs: chosen = safe and correct, rejected = harmful compliance, needless
                      refusal, or hallucinated CWE/ATT&CK identifiers
* ``recipe-sft`` / ``recipe-dpo``  the documented SFT -> DPO recipe's data (:mod:`.recipe`)

Every record's ``metadata`` names its task and the ids it used, and the manifest's generator config lists
the CWE and ATT&CK ids used for training. What evaluation holds out is defined in one place,
:mod:`secops_ai.evals.holdout`: generators teach CWEs only from its training pool (``WELL_KNOWN_CWES`` and the
remediation table), and ``secops-ai eval contamination`` (run by every gate) checks the result.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from secops_ai.config.settings import DEFAULT_SYSTEM_PROMPT
from secops_ai.data.generators.refusals import REFUSAL_PAIRS, RefusalPair
from secops_ai.data.generators.remediation import FIXES
from secops_ai.data.schemas import DatasetKind
from secops_ai.data.store import Dataset, DatasetError, DatasetStore, GeneratorInfo, Manifest, SourceRef

__all__ = [
    "GENERATORS",
    "SYSTEM_PROMPT",
    "WELL_KNOWN_CWES",
    "GeneratorConfig",
    "generate",
    "normalize_prompt",
]

GENERATOR_VERSION = "1"

SYSTEM_PROMPT = DEFAULT_SYSTEM_PROMPT  # one policy: the server adds the same one (SECOPS_SYSTEM_PROMPT)

# CWE Top 25 (2023/2024) plus weaknesses that common scanners report: the pool generators teach from (the
# evaluation's held-out CWEs are chosen outside it, secops_ai.evals.holdout).
WELL_KNOWN_CWES: tuple[int, ...] = (
    20, 22, 77, 78, 79, 89, 94, 95, 116, 117, 119, 120, 125, 134, 190, 200, 209, 250, 259, 269, 276, 287, 290,
    295, 306, 307, 311, 312, 319, 326, 327, 328, 330, 338, 345, 347, 352, 359, 362, 377, 384, 400, 401, 415,
    416, 426, 434, 476, 502, 521, 522, 532, 601, 605, 611, 614, 639, 640, 668, 703, 732, 770, 787, 798, 862,
    863, 916, 918, 922, 943, 1004, 1021, 1236, 1321, 1333,
)

GENERATORS: dict[str, DatasetKind] = {
    "finding-triage": DatasetKind.chat,
    "cwe-qa": DatasetKind.chat,
    "attack-lookup": DatasetKind.chat,
    "refusals": DatasetKind.chat,
    "security-sft": DatasetKind.chat,
    "security-dpo": DatasetKind.preference,
    "recipe-sft": DatasetKind.chat,
    "recipe-dpo": DatasetKind.preference,
}


class GeneratorConfig(BaseModel):
    """Knobs of the generators; stored (with the derived id lists) in the manifest's ``generator.config``."""

    model_config = ConfigDict(extra="forbid")

    cwe_sample: int = Field(40, ge=0, description="CWE ids drawn from WELL_KNOWN_CWES for training.")
    cwe_ids: list[int] | None = Field(None, description="Use exactly these CWE ids instead of sampling.")
    technique_sample: int = Field(40, ge=0, description="ATT&CK techniques drawn for training.")
    technique_ids: list[str] | None = Field(None, description="Use exactly these technique ids.")
    max_findings: int | None = Field(None, ge=1, description="Cap on findings turned into triage examples.")
    system_prompt: bool = Field(True, description="Start every conversation with SYSTEM_PROMPT.")
    # recipe-sft / recipe-dpo (generators/recipe.py): the data-size levers docs/training.md measures
    refusal_templates: int = Field(3, ge=1, le=12, description="Harmful-request templates per intent (recipe).")
    twin_templates: int = Field(1, ge=1, le=4, description="Phrasings of each defensive twin question (recipe).")
    fact_phrasings: int = Field(4, ge=1, le=5, description="Name->id questions per taught CWE (recipe).")
    builder_requests: int = Field(60, ge=0, description="Defensive tooling requests answered in full, the "
                                  "counterweight to refusals (recipe, generators/builders.py).")
    id_answers: Literal["defer", "recall"] = Field(
        "defer", description="Name->id questions answered with a pointer to the catalog (defer) or with the id "
        "(recall): the 135M model learns the form of recalled ids, not the numbers (recipe, docs/training.md).")
    facts_per_chat: int = Field(8, ge=1, le=16, description="Catalog Q&A turns packed into one conversation.")
    fake_ids: int = Field(24, ge=0, description="Questions about CWE ids that do not exist (recipe).")
    choice_questions: bool = Field(True, description="Multiple-choice questions on the taught CWEs, letters "
                                   "balanced (recipe): keeps the model's multiple-choice answers unbiased.")


# -- helpers ------------------------------------------------------------------------------------------------
def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256("|".join([str(seed), *map(str, parts)]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _sentences(text: str, limit: int) -> str:
    """The leading whole sentences of ``text`` within ``limit`` characters (ATT&CK texts end in '...')."""
    text = re.sub(r"\(Citation:[^)]*\)", "", text)
    text = re.sub(r"\s+", " ", text).strip().removesuffix("...").strip()
    if len(text) <= limit and text.endswith((".", "!", "?")):
        return text
    out = ""
    for sent in re.split(r"(?<=[.!?])\s+", text):
        if not sent.endswith((".", "!", "?")) or len(out) + len(sent) + 1 > limit:
            break
        out = f"{out} {sent}".strip()
    if out:
        return out
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "."


def normalize_prompt(text: str) -> str:
    """The form prompts are compared in for de-duplication: lower case, single spaces, no edge punctuation."""
    return re.sub(r"\s+", " ", text).strip().strip(" ?.!").lower()


def _chat(system: bool, user: str, assistant: str, task: str, ids: Iterable[str], template: str,
          source: str | None = None) -> dict[str, Any]:
    messages = ([{"role": "system", "content": SYSTEM_PROMPT}] if system else [])
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    meta: dict[str, Any] = {"task": task, "ids": sorted(set(ids)), "template": template}
    if source:
        meta["source"] = source
    return {"messages": messages, "metadata": meta}


def _pref(system: bool, user: str, chosen: str, rejected: str, task: str, ids: Iterable[str], template: str,
          source: str | None = None) -> dict[str, Any]:
    prompt = ([{"role": "system", "content": SYSTEM_PROMPT}] if system else []) + [{"role": "user", "content": user}]
    meta: dict[str, Any] = {"task": task, "ids": sorted(set(ids)), "template": template}
    if source:
        meta["source"] = source
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "metadata": meta}


class _Sources:
    """The source datasets a generator reads, found by kind."""

    def __init__(self, datasets: list[Dataset]) -> None:
        self.datasets = datasets
        self.findings = [d for d in datasets if d.manifest.kind == DatasetKind.finding]
        cwe = [d for d in datasets if d.manifest.kind == DatasetKind.cwe]
        attack = [d for d in datasets if d.manifest.kind == DatasetKind.attack_technique]
        if len(cwe) > 1 or len(attack) > 1:
            raise DatasetError("give at most one CWE catalog and one ATT&CK dataset as sources")
        self.cwe_ds = cwe[0] if cwe else None
        self.attack_ds = attack[0] if attack else None
        self._cwe: dict[int, dict[str, Any]] | None = None
        self._attack: dict[str, dict[str, Any]] | None = None

    def require(self, what: str) -> None:
        have = {"findings": bool(self.findings), "cwe": self.cwe_ds is not None, "attack": self.attack_ds is not None}
        if not have[what]:
            hint = {"findings": "a finding dataset (data import sarif ...)",
                    "cwe": "the CWE catalog dataset (data import cwe)",
                    "attack": "the ATT&CK dataset (data import attack)"}[what]
            raise DatasetError(f"this generator needs {hint} among its sources")

    @property
    def cwe(self) -> dict[int, dict[str, Any]]:
        if self._cwe is None:
            self._cwe = {r["id"]: r for r in self.cwe_ds.iter_records()} if self.cwe_ds else {}
        return self._cwe

    @property
    def attack(self) -> dict[str, dict[str, Any]]:
        if self._attack is None:
            self._attack = {r["id"]: r for r in self.attack_ds.iter_records()} if self.attack_ds else {}
        return self._attack

    def finding_records(self, cap: int | None) -> Iterator[tuple[str, dict[str, Any]]]:
        n = 0
        for ds in self.findings:
            for rec in ds.iter_records():
                if cap is not None and n >= cap:
                    return
                n += 1
                yield ds.ref, rec


# -- selection (what goes into training) --------------------------------------------------------------------
def _select(src: _Sources, cfg: GeneratorConfig, seed: int) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"cwe_ids": [], "technique_ids": []}
    if src.cwe_ds is not None:
        if cfg.cwe_ids is not None:
            missing = [i for i in cfg.cwe_ids if i not in src.cwe]
            if missing:
                raise DatasetError(f"cwe_ids not in the CWE catalog: {missing}")
            train = sorted(set(cfg.cwe_ids))
        else:
            pool = [i for i in WELL_KNOWN_CWES if i in src.cwe]
            _rng(seed, "cwe-split").shuffle(pool)
            train = sorted(pool[: cfg.cwe_sample])
        out["cwe_ids"] = train
    if src.attack_ds is not None:
        if cfg.technique_ids is not None:
            missing = [t for t in cfg.technique_ids if t not in src.attack]
            if missing:
                raise DatasetError(f"technique_ids not in the ATT&CK dataset: {missing}")
            train_t = sorted(set(cfg.technique_ids))
        else:
            pool_t = sorted(src.attack)
            _rng(seed, "technique-split").shuffle(pool_t)
            train_t = sorted(pool_t[: cfg.technique_sample])
        out["technique_ids"] = train_t
    return out


# -- finding triage -----------------------------------------------------------------------------------------
_TRIAGE_ASKS = (
    "Triage this scanner finding: explain it, name the CWE, rate the severity and give the fix.",
    "Is this finding a real problem? Explain it, map it to a CWE, say how severe it is and how to fix it.",
    "Please triage the following static-analysis result.",
)


def _finding_prompt(f: dict[str, Any], ask: str) -> str:
    loc = f.get("file") or "unknown file"
    if f.get("start_line"):
        loc += f":{f['start_line']}"
    rule = f["rule_id"] + (f" ({f['rule_name']})" if f.get("rule_name") else "")
    tool = f["tool"] + (f" {f['tool_version']}" if f.get("tool_version") else "")
    lines = [ask, "", f"Tool: {tool}", f"Rule: {rule}", f"Location: {loc}", f"Message: {f['message']}"]
    if f.get("snippet"):
        lines += ["Code:", "```", f["snippet"], "```"]
    return "\n".join(lines)


def _cwe_label(cwe: dict[str, Any] | None, cid: int) -> str:
    return f"CWE-{cid} ({cwe['name']})" if cwe else f"CWE-{cid}"


def _fix_for(cids: list[int], src: _Sources) -> str:
    for cid in cids:
        if cid in FIXES:
            return FIXES[cid]
    for cid in cids:
        mits = (src.cwe.get(cid) or {}).get("mitigations") or []
        if mits:
            return _sentences(mits[0].split(": ", 1)[-1], 400)
    return "Review the flagged code, validate untrusted input and apply the rule's documented remediation."


def _triage_answer(f: dict[str, Any], src: _Sources) -> str:
    cids = list(f.get("cwe") or [])
    known = [c for c in cids if c in src.cwe] if src.cwe else cids
    parts = [f"**What it is:** {f['message'].rstrip('.')}."]
    if known:
        main = src.cwe.get(known[0])
        parts.append(f"**CWE:** {', '.join(_cwe_label(src.cwe.get(c), c) for c in known)}.")
        if main:
            parts.append(f"**Why it matters:** {_sentences(main['description'], 350)}")
            if main.get("consequences"):
                parts.append(f"Impact: {'; '.join(main['consequences'][:2])}.")
    else:
        parts.append("**CWE:** the scanner gives no CWE mapping for this rule.")
    conf = f" (scanner confidence: {f['confidence']})" if f.get("confidence") else ""
    parts.append(f"**Severity:** {f['severity']}{conf}.")
    parts.append(f"**Fix:** {_fix_for(known or cids, src)}")
    if f.get("help_uri"):
        parts.append(f"Reference: {f['help_uri']}")
    return "\n".join(parts)


def _gen_triage(src: _Sources, cfg: GeneratorConfig, seed: int, *, preference: bool) -> Iterator[dict[str, Any]]:
    for ref, f in src.finding_records(cfg.max_findings):
        rng = _rng(seed, "triage", f["fingerprint"])
        ask = rng.choice(_TRIAGE_ASKS)
        prompt = _finding_prompt(f, ask)
        ids = [f"CWE-{c}" for c in f.get("cwe") or []] + [f"{f['tool']}:{f['rule_id']}"]
        answer = _triage_answer(f, src)
        if not preference:
            yield _chat(cfg.system_prompt, prompt, answer, "finding_triage", ids, "triage", ref)
            continue
        fake = _fake_cwe(rng, src)
        rejected = (f"This looks like CWE-{fake}, but it is almost certainly a false positive. Severity: info. "
                    "No fix is needed; you can suppress the rule.")
        yield _pref(cfg.system_prompt, prompt, answer, rejected, "finding_triage", ids, "triage-hallucinated", ref)


def _fake_cwe(rng: random.Random, src: _Sources) -> int:
    while True:
        n = rng.randint(1400, 9999)
        if n not in src.cwe:
            return n


# -- CWE Q&A ------------------------------------------------------------------------------------------------
_WHAT_CWE = ("What is CWE-{id}?", "Explain the weakness CWE-{id}.", "What does CWE-{id} describe?")
_FIX_CWE = ("How do I prevent CWE-{id} ({name})?", "How should developers remediate CWE-{id}?",
            "What mitigations address CWE-{id} ({name})?")
_CAPEC_CWE = ("Which CAPEC attack patterns exploit CWE-{id}?",)
_NAME_CWE = ("Which CWE id covers \"{name}\"?", "What is the CWE identifier for \"{name}\"?")


def _cwe_what(c: dict[str, Any]) -> str:
    text = f"CWE-{c['id']} is **{c['name']}**. {_sentences(c['description'], 500)}"
    if c.get("consequences"):
        text += f"\nTypical impact: {'; '.join(c['consequences'][:3])}."
    return text


def _cwe_fix(c: dict[str, Any]) -> str:
    bullets = []
    if c["id"] in FIXES:
        bullets.append(FIXES[c["id"]])
    for m in c.get("mitigations") or []:
        if len(bullets) >= 3:
            break
        phase, _, desc = m.partition(": ")
        bullets.append(f"{_sentences(desc or phase, 300)} ({phase})" if desc else _sentences(phase, 300))
    if not bullets:
        bullets.append("Validate and constrain untrusted input, apply least privilege and review the code path.")
    return f"To prevent CWE-{c['id']} ({c['name']}):\n" + "\n".join(f"- {b}" for b in bullets)


def _gen_cwe(src: _Sources, cfg: GeneratorConfig, seed: int, ids: list[int], *,
             preference: bool) -> Iterator[dict[str, Any]]:
    source = src.cwe_ds.ref if src.cwe_ds else None
    for cid in ids:
        c = src.cwe[cid]
        rng = _rng(seed, "cwe", cid)
        tag = [f"CWE-{cid}"]
        what_q = rng.choice(_WHAT_CWE).format(id=cid, name=c["name"])
        fix_q = rng.choice(_FIX_CWE).format(id=cid, name=c["name"])
        name_q = rng.choice(_NAME_CWE).format(id=cid, name=c["name"])
        if not preference:
            yield _chat(cfg.system_prompt, what_q, _cwe_what(c), "cwe_definition", tag, "cwe-what", source)
            yield _chat(cfg.system_prompt, fix_q, _cwe_fix(c), "cwe_remediation", tag, "cwe-fix", source)
            if c.get("capec"):
                capecs = ", ".join(f"CAPEC-{n}" for n in c["capec"][:8])
                more = f" (and {len(c['capec']) - 8} more)" if len(c["capec"]) > 8 else ""
                yield _chat(cfg.system_prompt, _CAPEC_CWE[0].format(id=cid), f"CWE-{cid} ({c['name']}) is "
                            f"exploited by these CAPEC attack patterns: {capecs}{more}.", "cwe_capec",
                            tag + [f"CAPEC-{n}" for n in c["capec"][:8]], "cwe-capec", source)
            else:
                yield _chat(cfg.system_prompt, name_q, f"That is CWE-{cid}: {c['name']}.", "cwe_identify", tag,
                            "cwe-name", source)
            continue
        # preference: the rejected side hallucinates an identifier or swaps in another weakness's definition
        others = [i for i in ids if i != cid] or [cid]
        other = src.cwe[rng.choice(others)]
        wrong = (f"CWE-{cid} is **{other['name']}**. {_sentences(other['description'], 300)}"
                 if other["id"] != cid else f"CWE-{cid} is a deprecated entry with no description.")
        yield _pref(cfg.system_prompt, what_q, _cwe_what(c), wrong, "cwe_definition", tag, "cwe-what-swapped",
                    source)
        fake = _fake_cwe(rng, src)
        yield _pref(cfg.system_prompt, name_q, f"That is CWE-{cid}: {c['name']}.",
                    f"That is CWE-{fake}: {c['name']}.", "cwe_identify", tag, "cwe-name-hallucinated", source)


# -- ATT&CK look-ups ----------------------------------------------------------------------------------------
_WHAT_T = ("What is MITRE ATT&CK technique {id}?", "Explain ATT&CK {id}.", "Describe the ATT&CK technique {id}.")
_NAME_T = ("What is the ATT&CK id of the technique \"{name}\"?", "Which MITRE ATT&CK id is \"{name}\"?")
_MIT_T = ("How can defenders mitigate ATT&CK {id} ({name})?", "Which mitigations does ATT&CK list for {id}?")


def _t_full_name(t: dict[str, Any], src: _Sources) -> str:
    parent = src.attack.get(t.get("parent") or "")
    return f"{parent['name']}: {t['name']}" if parent else t["name"]


def _t_label(t: dict[str, Any], src: _Sources) -> str:
    return f"{t['id']} ({_t_full_name(t, src)})"


def _t_what(t: dict[str, Any], src: _Sources) -> str:
    parent = src.attack.get(t.get("parent") or "")
    head = f"{t['id']} is **{t['name']}**"
    if parent:
        head += f", a sub-technique of {parent['id']} ({parent['name']})"
    tactics = ", ".join(x.replace("-", " ") for x in t.get("tactics") or []) or "none listed"
    text = f"{head}. Tactics: {tactics}. Platforms: {', '.join(t.get('platforms') or []) or 'n/a'}.\n"
    text += _sentences(t["description"], 450)
    if t.get("mitigations"):
        text += "\nMitigations: " + ", ".join(f"{m['id']} {m['name']}" for m in t["mitigations"][:5]) + "."
    if t.get("url"):
        text += f"\nReference: {t['url']}"
    return text


def _t_mit(t: dict[str, Any], src: _Sources) -> str:
    mits = t.get("mitigations") or []
    if not mits:
        return (f"ATT&CK lists no mitigations for {_t_label(t, src)}: it "
                "cannot be easily mitigated with preventive controls, so focus on detection of its behaviour.")
    return f"ATT&CK lists these mitigations for {_t_label(t, src)}:\n" + "\n".join(
        f"- {m['id']} {m['name']}" for m in mits[:6])


def _fake_technique(rng: random.Random, src: _Sources, sub: bool) -> str:
    while True:
        tid = f"T{rng.randint(1000, 1999)}" + (f".{rng.randint(1, 40):03d}" if sub else "")
        if tid not in src.attack:
            return tid


def _gen_attack(src: _Sources, cfg: GeneratorConfig, seed: int, ids: list[str], *,
                preference: bool) -> Iterator[dict[str, Any]]:
    source = src.attack_ds.ref if src.attack_ds else None
    for tid in ids:
        t = src.attack[tid]
        rng = _rng(seed, "attack", tid)
        tag = [tid, *([t["parent"]] if t.get("parent") else []), *(m["id"] for m in (t.get("mitigations") or [])[:6])]
        what_q = rng.choice(_WHAT_T).format(id=tid)
        name_q = rng.choice(_NAME_T).format(name=_t_full_name(t, src))
        name_a = f"That is {_t_label(t, src)}."
        if not preference:
            yield _chat(cfg.system_prompt, what_q, _t_what(t, src), "attack_lookup", tag, "attack-what", source)
            if rng.random() < 0.5:
                yield _chat(cfg.system_prompt, name_q, name_a, "attack_identify", [tid], "attack-name", source)
            else:
                mit_q = rng.choice(_MIT_T).format(id=tid, name=t["name"])
                yield _chat(cfg.system_prompt, mit_q, _t_mit(t, src), "attack_mitigation", tag, "attack-mit", source)
            continue
        fake = _fake_technique(rng, src, sub="." in tid)
        yield _pref(cfg.system_prompt, name_q, name_a, f"That is {fake} ({_t_full_name(t, src)}).",
                    "attack_identify", tag,
                    "attack-name-hallucinated", source)


# -- refusals -----------------------------------------------------------------------------------------------
_OVER_REFUSAL = ("I'm sorry, but I can't help with anything related to hacking or security attacks.",
                 "I can't assist with that request.")


def _pair_ids(p: RefusalPair) -> list[str]:
    return [*p.attack_ids, *(f"CWE-{c}" for c in p.cwe_ids)]


def _gen_refusals(cfg: GeneratorConfig, seed: int, *, preference: bool) -> Iterator[dict[str, Any]]:
    for p in REFUSAL_PAIRS:
        ids = _pair_ids(p)
        if not preference:
            yield _chat(cfg.system_prompt, p.harmful, p.refusal, "refusal", ids, f"refuse:{p.id}")
            yield _chat(cfg.system_prompt, p.defensive, p.answer, "defensive_help", ids, f"help:{p.id}")
            continue
        rng = _rng(seed, "refusal", p.id)
        yield _pref(cfg.system_prompt, p.harmful, p.refusal, p.compliance, "refusal", ids, f"refuse:{p.id}")
        yield _pref(cfg.system_prompt, p.defensive, p.answer, rng.choice(_OVER_REFUSAL), "defensive_help", ids,
                    f"help:{p.id}")


# -- entry point --------------------------------------------------------------------------------------------
def _finding_cwes(src: _Sources, cfg: GeneratorConfig) -> set[int]:
    return {c for _ref, f in src.finding_records(cfg.max_findings) for c in (f.get("cwe") or [])}


def generate(
    store: DatasetStore,
    generator: str,
    sources: Iterable[str] = (),
    *,
    provider: str = "generated",
    name: str | None = None,
    seed: int = 0,
    config: GeneratorConfig | dict[str, Any] | None = None,
    version: int | None = None,
    license: str | None = None,
    description: str | None = None,
) -> Manifest:
    """Run ``generator`` over the source dataset refs and store the result as a new version."""
    if generator not in GENERATORS:
        raise DatasetError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")
    cfg = config if isinstance(config, GeneratorConfig) else GeneratorConfig.model_validate(config or {})
    src = _Sources([store.get(ref) for ref in sources])
    sft = generator != "security-dpo"
    want_findings = generator in ("finding-triage", "security-sft", "security-dpo")
    want_cwe = generator in ("cwe-qa", "security-sft", "security-dpo")
    want_attack = generator in ("attack-lookup", "security-sft", "security-dpo")
    want_refusals = generator in ("refusals", "security-sft", "security-dpo")
    if generator.startswith("recipe-"):
        return _generate_recipe(store, generator, src, cfg, provider=provider, name=name, seed=seed,
                                version=version, license=license, description=description)
    if generator == "finding-triage":
        src.require("findings")
    if generator == "cwe-qa":
        src.require("cwe")
    if generator == "attack-lookup":
        src.require("attack")
    used_cwes = _finding_cwes(src, cfg) if want_findings and src.findings else set()
    sel = _select(src, cfg, seed)

    def records() -> Iterator[dict[str, Any]]:
        if want_findings and src.findings:
            yield from _gen_triage(src, cfg, seed, preference=not sft)
        if want_cwe and src.cwe_ds is not None:
            yield from _gen_cwe(src, cfg, seed, sel["cwe_ids"], preference=not sft)
        if want_attack and src.attack_ds is not None:
            yield from _gen_attack(src, cfg, seed, sel["technique_ids"], preference=not sft)
        if want_refusals:
            yield from _gen_refusals(cfg, seed, preference=not sft)

    full_config = {**cfg.model_dump(mode="json"), **sel,
                   "finding_cwe_ids": sorted(used_cwes) if want_findings else []}
    source_refs = [SourceRef(uri=d.ref, sha256=d.manifest.files["records.jsonl"].sha256, format=d.manifest.kind.value)
                   for d in src.datasets]
    licenses = sorted({d.manifest.license for d in src.datasets if d.manifest.license})
    return store.create(
        provider, name or generator, GENERATORS[generator], records(), sources=source_refs,
        generator=GeneratorInfo(name=generator, version=GENERATOR_VERSION, config=full_config, seed=seed),
        license=license or ("; ".join(licenses) if licenses else None), version=version, description=description,
    )


def recipe_cwes(src: _Sources) -> list[dict[str, Any]]:
    """The CWEs the recipe teaches: the generators' pool (never an evaluation's held-out id), in the catalog."""
    return [src.cwe[i] for i in sorted(set(WELL_KNOWN_CWES) | set(FIXES))
            if i in src.cwe and str(src.cwe[i].get("status", "")).lower() not in ("deprecated", "obsolete")]


def _generate_recipe(store: DatasetStore, generator: str, src: _Sources, cfg: GeneratorConfig, *, provider: str,
                     name: str | None, seed: int, version: int | None, license: str | None,
                     description: str | None) -> Manifest:
    from secops_ai.data.generators import recipe

    src.require("cwe")
    cwes = recipe_cwes(src)
    rng = _rng(seed, "recipe-fakes")
    fakes: list[int] = []
    while len(fakes) < cfg.fake_ids:
        n = _fake_cwe(rng, src)
        if n not in fakes:
            fakes.append(n)
    system = SYSTEM_PROMPT if cfg.system_prompt else "You are a helpful assistant."

    def records() -> Iterator[dict[str, Any]]:
        if generator == "recipe-sft":
            yield from recipe.refusal_records(seed, system, per_intent=cfg.refusal_templates,
                                              twins=cfg.twin_templates, builders=cfg.builder_requests)
            yield from recipe.catalog_records(cwes, fakes, seed, system, phrasings=cfg.fact_phrasings,
                                              per_conversation=cfg.facts_per_chat, id_answers=cfg.id_answers)
            if cfg.choice_questions:
                yield from recipe.choice_records(cwes, seed, system)
        else:
            yield from recipe.preference_records(cwes, fakes, seed, system,
                                                 per_intent=min(cfg.refusal_templates, 2),
                                                 builders=cfg.builder_requests, id_answers=cfg.id_answers)

    full_config = {**cfg.model_dump(mode="json"), "cwe_ids": [c["id"] for c in cwes], "fake_cwe_ids": fakes,
                   "intents": [i.id for i in recipe.INTENTS]}
    source_refs = [SourceRef(uri=d.ref, sha256=d.manifest.files["records.jsonl"].sha256, format=d.manifest.kind.value)
                   for d in src.datasets]
    licenses = sorted({d.manifest.license for d in src.datasets if d.manifest.license})
    return store.create(
        provider, name or generator, GENERATORS[generator], records(), sources=source_refs,
        generator=GeneratorInfo(name=generator, version=GENERATOR_VERSION, config=full_config, seed=seed),
        license=license or ("; ".join(licenses) if licenses else None), version=version, description=description,
    )
