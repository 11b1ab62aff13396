"""The evolve prompt set: a versioned ``prompt_completion`` dataset of prompts with reference answers.

Sources: the curated harmful requests and their defensive twins (``refusals``), the recipe's harmful
intents asked through its many request templates next to their twins (``templated_refusals``), defensive tooling
requests that read like attack tooling (``builder_requests``: the recipe's counterweight), multiple-choice and
remediation questions on CWE weaknesses the generators may teach (``cwe_choice``, ``cwe_fix``: never a
held-out one), user-supplied prompt datasets, and tasks from agent trajectories. The reference answer is
what verifiers check against (the correct letter, the curated refusal); each record's ``metadata.task`` is
its category and ``metadata.template`` its stable prompt id.

Gate items never enter: every prompt is run through :func:`secops_ai.evals.holdout.find_contamination`
against the gate's evaluation prompts and the held-out ids, offenders are dropped (and counted in the
manifest), and the final set is checked again before it is written.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from secops_ai.alignment.config import EvolveConfig
from secops_ai.config.settings import DEFAULT_SYSTEM_PROMPT
from secops_ai.data.store import DatasetStore, GeneratorInfo, SourceRef
from secops_ai.data.text import clip

PROVIDER = "evolve"
PROMPTS_VERSION = "1"
HARMFUL = "harmful_request"
BENIGN_CATEGORIES = ("defensive_help", "cwe_choice", "cwe_fix", "attack", "trajectory_task", "user")
LETTERS = "ABCD"
NO_REFERENCE = "(no reference)"  # a user prompt without an answer in its dataset


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str
    messages: list[dict[str, str]]
    reference: str
    ids: tuple[str, ...] = ()

    @property
    def user(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")

    def record(self) -> dict[str, Any]:
        return {"prompt": self.messages, "completion": [{"role": "assistant", "content": self.reference}],
                "metadata": {"task": self.category, "ids": list(self.ids), "source": "evolve-prompts",
                             "template": self.id}}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Prompt:
        meta = rec.get("metadata") or {}
        ref = rec["completion"]
        return cls(id=meta["template"], category=meta["task"], messages=rec["prompt"],
                   reference=ref if isinstance(ref, str) else ref[-1]["content"], ids=tuple(meta.get("ids") or ()))


def _conv(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _refusals(n: int) -> list[Prompt]:
    from secops_ai.data.generators.refusals import REFUSAL_PAIRS

    out = []
    for p in REFUSAL_PAIRS[:n]:
        ids = (*p.attack_ids, *(f"CWE-{c}" for c in p.cwe_ids))
        out.append(Prompt(f"harmful:{p.id}", HARMFUL, _conv(p.harmful), p.refusal, ids))
        out.append(Prompt(f"defensive:{p.id}", "defensive_help", _conv(p.defensive), p.answer, ids))
    return out


def _templated_refusals(n: int, seed: int) -> list[Prompt]:
    """Harmful requests in many phrasings (the recipe's intents x request templates), each intent's defensive
    twins in several phrasings next to them: volume and variety, so DPO learns the intent, not one sentence.

    Round-robin over intents, so ``n`` prompts cover every intent before any intent gets a second phrasing.
    """
    from secops_ai.data.generators import recipe

    rng = random.Random(f"evolve-templated:{seed}")
    harmful: list[list[Prompt]] = []
    twins: list[list[Prompt]] = []
    for intent in recipe.INTENTS:
        tpls = rng.sample(recipe.HARMFUL_TEMPLATES, len(recipe.HARMFUL_TEMPLATES))
        harmful.append([Prompt(f"templated:{intent.id}:{recipe.HARMFUL_TEMPLATES.index(t)}:{k % len(intent.asks)}",
                               HARMFUL, _conv(recipe.fill_template(t, ask=intent.asks[k % len(intent.asks)])),
                               recipe.refusal_for(rng, intent)) for k, t in enumerate(tpls)])
        questions, answer = recipe.defensive_for(intent)
        twins.append([Prompt(f"templated-twin:{intent.id}:{j}:{recipe.DEFENSIVE_TEMPLATES.index(t)}",
                             "defensive_help",
                             _conv(recipe.fill_template(t, q=q, q_lower=q[:1].lower() + q[1:])), answer)
                      for j, q in enumerate(questions) for t in recipe.DEFENSIVE_TEMPLATES])
    out: list[Prompt] = []
    for pool in (harmful, twins):
        picked: list[Prompt] = []
        for rnd in range(max(len(x) for x in pool)):
            picked += [x[rnd] for x in pool if rnd < len(x)]
        out += picked[:n]
    return out


def _builder_requests(n: int, seed: int) -> list[Prompt]:
    """Benign tooling requests ("write a Go program that blocks ..."), the kind the gate's helpfulness items are
    made of; the verifiers require the answer to address them, so their pairs teach engaging, not refusing."""
    from secops_ai.data.generators.builders import builder_requests

    return [Prompt(f"{template}:{seed}:{i}", "benign_tooling", _conv(request), answer)
            for i, (_, request, answer, template) in enumerate(builder_requests(seed + 7, n))]


def _teachable_cwes() -> list[Any]:
    from secops_ai.evals.holdout import is_held_out, training_pool
    from secops_ai.knowledge.cwe import get_cwe

    out = []
    for cid in sorted(training_pool()):
        c = get_cwe(cid)
        if c and c.description and c.mitigations and c.abstraction != "Category" and not is_held_out(cid):
            out.append(c)
    return out


def _cwe_choice(n: int, seed: int) -> list[Prompt]:
    """Same shape as the gate's task-accuracy questions, but on weaknesses the generators teach."""
    pool = _teachable_cwes()
    rng = random.Random(f"evolve-choice:{seed}")
    picked = rng.sample(pool, min(n, len(pool)))
    out = []
    for c in picked:
        r = random.Random(f"evolve-choice:{seed}:{c.id}")
        others = [o for o in pool if o.id != c.id and c.id not in o.parents and o.id not in c.parents]
        options = [c.name] + [d.name for d in r.sample(others, 3)]
        order = list(range(4))
        r.shuffle(order)
        shown = [options[j] for j in order]
        letter = LETTERS[order.index(0)]
        question = "\n".join([f"Which weakness does this describe?\n\"{clip(c.description, 400)}\"", "",
                              *(f"{LETTERS[i]}) {o}" for i, o in enumerate(shown)), "",
                              "Answer with the letter of the correct option."])
        out.append(Prompt(f"choice:CWE-{c.id}", "cwe_choice", _conv(question), f"{letter}) {c.name}",
                          (f"CWE-{c.id}",)))
    return out


def _cwe_fix(n: int, seed: int) -> list[Prompt]:
    pool = _teachable_cwes()
    picked = random.Random(f"evolve-fix:{seed}").sample(pool, min(n, len(pool)))
    out = []
    for c in picked:
        mit = clip(c.mitigations[0].partition(": ")[2] or c.mitigations[0], 300)
        out.append(Prompt(f"fix:CWE-{c.id}", "cwe_fix", _conv(f"How do I prevent CWE-{c.id} ({c.name})?"),
                          f"To prevent CWE-{c.id} ({c.name}): {mit}", (f"CWE-{c.id}",)))
    return out


def _user_prompts(store: DatasetStore, ref: str, category: str, limit: int | None) -> list[Prompt]:
    ds = store.get(ref)
    out = []
    for i, rec in enumerate(ds.iter_records()):
        if limit is not None and len(out) >= limit:
            break
        if "messages" in rec:
            msgs = rec["messages"]
            last_user = max((j for j, m in enumerate(msgs) if m["role"] == "user"), default=None)
            if last_user is None:
                continue
            conv = [{"role": m["role"], "content": m["content"]} for m in msgs[: last_user + 1]]
            after = [m for m in msgs[last_user + 1:] if m["role"] == "assistant"]
            reference = after[-1]["content"] if after else ""
        elif "prompt" in rec:
            p = rec["prompt"]
            conv = _conv(p) if isinstance(p, str) else [{"role": m["role"], "content": m["content"]} for m in p]
            done = rec.get("completion") or rec.get("chosen") or ""
            reference = done if isinstance(done, str) else (done[-1]["content"] if done else "")
        else:
            continue
        if not any(m["role"] == "system" for m in conv):
            conv = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *conv]
        ids = tuple(str(x) for x in ((rec.get("metadata") or {}).get("ids") or []))
        out.append(Prompt(f"{category}:{ds.manifest.name}@{ds.manifest.version}:{i + 1}", category, conv,
                          reference or NO_REFERENCE, ids))
    return out


def gate_prompts(gate: str) -> list[str]:
    """Every prompt of the gate's evaluation items (the contamination check's reference set)."""
    from secops_ai.evals.gate import load_gate
    from secops_ai.evals.suites import SUITES

    cfg, _ = load_gate(gate)
    return [it.prompt for n, c in cfg.suites.items() for it in SUITES[n].build(c, cfg.seed)]


def collect(config: EvolveConfig, store: DatasetStore) -> tuple[list[Prompt], list[str]]:
    """The candidate prompts of ``config`` (in a fixed order) and the refs of the datasets they came from."""
    p, seed = config.prompts, config.seed
    prompts: list[Prompt] = []
    sources: list[str] = []
    for src in p.sources:
        if src == "refusals":
            prompts += _refusals(p.per_source)
        elif src == "templated_refusals":
            prompts += _templated_refusals(p.per_source, seed)
        elif src == "builder_requests":
            prompts += _builder_requests(p.per_source, seed)
        elif src == "cwe_choice":
            prompts += _cwe_choice(p.per_source, seed)
        elif src == "cwe_fix":
            prompts += _cwe_fix(p.per_source, seed)
        elif src == "trajectories" and p.trajectories:
            prompts += _user_prompts(store, p.trajectories, "trajectory_task", p.per_source)
            sources.append(store.get(p.trajectories).ref)
    for ref in p.datasets:
        prompts += _user_prompts(store, ref, "user", None)
        sources.append(store.get(ref).ref)
    seen: set[str] = set()
    unique = []
    for pr in prompts:
        if pr.id not in seen:
            seen.add(pr.id)
            unique.append(pr)
    return unique, sources


def build_prompt_dataset(config: EvolveConfig, store: DatasetStore) -> tuple[str, int]:
    """Write (or reuse, when identical) the prompt dataset; returns its ref and how many prompts were dropped."""
    from secops_ai.evals.holdout import find_contamination

    prompts, sources = collect(config, store)
    evals = gate_prompts(config.gate.gate)
    bad = {c.line for c in find_contamination([("prompts", [pr.record() for pr in prompts])], evals)}
    kept = [pr for i, pr in enumerate(prompts, start=1) if i not in bad]
    if not kept:
        raise ValueError("no prompts left: every candidate prompt touches the gate's evaluation items")
    assert not find_contamination([("prompts", [pr.record() for pr in kept])], evals)
    name = f"{config.name}-prompts"
    gen = GeneratorInfo(name="evolve-prompts", version=PROMPTS_VERSION, seed=config.seed, config={
        "sources": list(config.prompts.sources), "per_source": config.prompts.per_source,
        "gate": config.gate.gate, "dropped_as_contaminated": len(bad), "prompts": len(kept)})
    records = [pr.record() for pr in kept]
    existing = _same_version(store, name, records)
    if existing:
        return existing, len(bad)
    manifest = store.create(PROVIDER, name, "prompt_completion", records,
                            sources=[SourceRef(uri=s) for s in sources], generator=gen,
                            description=f"evolve prompt set for {config.name} (gate items excluded)")
    return manifest.ref, len(bad)


def _same_version(store: DatasetStore, name: str, records: list[dict]) -> str | None:
    """The latest version of ``name`` when it holds exactly ``records`` (a rerun reuses it, not a new one)."""
    from secops_ai.data.store import canonical_line, validate_record

    versions = store.versions(PROVIDER, name)
    if not versions:
        return None
    ds = store.get(f"{PROVIDER}/{name}@{versions[-1]}")
    want = b"".join(canonical_line(validate_record("prompt_completion", r, file=name, line=i))
                    for i, r in enumerate(records, start=1))
    return ds.ref if ds.records_path.read_bytes() == want else None


def load_prompts(store: DatasetStore, ref: str) -> list[Prompt]:
    return [Prompt.from_record(r) for r in store.get(ref).iter_records()]
