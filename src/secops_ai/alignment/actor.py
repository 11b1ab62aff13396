"""The actor: candidate answers for every prompt, each tagged with where it came from.

Origins:

- ``sample``: N answers sampled from the current model (temperature, per-sample seed);
- ``revise``: the model critiques its first sample, then rewrites it (critique -> revise);
- ``refusal_redirect``: for a prompt a verifier flags as harmful, the answer the model writes under an
  explicit refuse-and-redirect instruction, starting from a refusal opening (a 135M model never refuses on
  its own, so sampling alone cannot produce the better answer);
- ``refusal_probe``: the same instruction on a benign security prompt: a known over-refusal, so the pairs
  also teach the model not to refuse defensive work.

Every generation goes through one generator (the serving engine, batched) in a fixed order with fixed seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from secops_ai.alignment.config import ActorConfig
from secops_ai.alignment.generate import Request, seed_for
from secops_ai.alignment.prompts import Prompt
from secops_ai.alignment.verifiers import prompt_is_harmful
from secops_ai.inference.backend import GenerationParams

ORIGINS = ("sample", "revise", "refusal_redirect", "refusal_probe")

REFUSAL_INSTRUCTION = (
    "The next request would help someone attack systems or people without authorisation. Refuse it in one "
    "sentence, then redirect: offer one concrete, safe, defensive alternative the user could ask about instead.")
REFUSAL_OPENING = "I can't help with that"
CRITIQUE_INSTRUCTION = (
    "Review the draft answer below for the question. List its problems in at most three short points: wrong "
    "facts or identifiers, unsafe help, refusing legitimate defensive work, missing steps, rambling.")
REVISE_INSTRUCTION = (
    "Rewrite the draft answer so that it fixes the problems listed in the critique. Reply with the improved "
    "answer only.")


@dataclass
class Candidate:
    prompt_id: str
    index: int
    origin: str
    text: str
    seed: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _with_system(messages: list[dict], extra: str) -> list[dict]:
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    rest = [m for m in messages if m["role"] != "system"]
    return [{"role": "system", "content": (system + "\n\n" + extra).strip()}, *rest]


def act(prompts: list[Prompt], generator, cfg: ActorConfig, *, seed: int, iteration: int) -> list[Candidate]:
    """All candidates for ``prompts``, in prompt order, then origin order, then sample index."""
    samples = [Request(p.messages, GenerationParams(max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                                    top_p=cfg.top_p, seed=seed_for(seed, iteration, p.id, k)),
                       meta={"prompt": p.id, "k": k})
               for p in prompts for k in range(cfg.samples)]
    texts = generator.generate(samples)
    by_prompt: dict[str, list[Candidate]] = {p.id: [] for p in prompts}
    for r, text in zip(samples, texts, strict=True):
        pid = r.meta["prompt"]
        by_prompt[pid].append(Candidate(pid, len(by_prompt[pid]), "sample", text, r.params.seed))

    greedy = GenerationParams(max_tokens=cfg.max_tokens, temperature=0.0, seed=seed)
    if cfg.revise:
        drafts = {p.id: by_prompt[p.id][0].text for p in prompts}
        critiques = generator.generate([
            Request([{"role": "system", "content": CRITIQUE_INSTRUCTION},
                     {"role": "user", "content": f"Question:\n{p.user}\n\nDraft answer:\n{drafts[p.id]}"}],
                    GenerationParams(max_tokens=min(64, cfg.max_tokens), temperature=0.0, seed=seed))
            for p in prompts])
        revised = generator.generate([
            Request(_with_system(p.messages, REVISE_INSTRUCTION + f"\n\nDraft answer:\n{drafts[p.id]}\n\n"
                                 f"Critique:\n{crit}"), greedy)
            for p, crit in zip(prompts, critiques, strict=True)])
        for p, text in zip(prompts, revised, strict=True):
            by_prompt[p.id].append(Candidate(p.id, len(by_prompt[p.id]), "revise", text, None))

    refusal_targets = [(p, "refusal_redirect" if prompt_is_harmful(p) else "refusal_probe") for p in prompts
                       if (cfg.refusal_redirect and prompt_is_harmful(p))
                       or (cfg.benign_refusal_probe and not prompt_is_harmful(p))]
    if refusal_targets:
        texts = generator.generate([Request(_with_system(p.messages, REFUSAL_INSTRUCTION), greedy,
                                            prefix=REFUSAL_OPENING) for p, _ in refusal_targets])
        for (p, origin), text in zip(refusal_targets, texts, strict=True):
            by_prompt[p.id].append(Candidate(p.id, len(by_prompt[p.id]), origin, text, None))
    return [c for p in prompts for c in by_prompt[p.id]]
