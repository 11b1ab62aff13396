"""The actor: candidate answers for every prompt, each tagged with where it came from.

Origins:

- ``sample``: N answers sampled from the current model (temperature, per-sample seed);
- ``revise``: the first sample put through self-correction (:mod:`secops_ai.alignment.selfcorrect`:
  ``intrinsic`` critique -> revise, or ``verified`` catalog/scanner-checked correction);
- ``refusal_redirect``: for a prompt a verifier flags as harmful, the answer the model writes under an
  explicit refuse-and-redirect instruction, starting from a refusal opening (a 135M model never refuses on
  its own, so sampling alone cannot produce the better answer);
- ``refusal_probe``: the same instruction on a benign security prompt: a known over-refusal, so the pairs
  also teach the model not to refuse defensive work;
- ``reference``: the prompt's reference answer from its source (``actor.references``): for the recipe's harmful
  requests a refusal that names what is refused and offers the defensive alternative, for their defensive twins
  the full answer. The 135M model's own refusals are nearly all one sentence ("I can't help with that. I'm not
  sure what you're asking."); chosen that often, ORPO taught it as the answer to hard benign requests too.
  A reference is ranked by the verifiers and the judge like any other candidate, and can lose;
- ``choice_hint``: for a multiple-choice prompt, the answer the model writes after being told the option the
  catalog verifies, starting from that option. The 135M model answers "A)" to 36 of 40 held-out questions;
  sampling alone gives a correct candidate only where the answer is A, so its pairs would teach "always A".

Every generation goes through one generator (the serving engine, batched) in a fixed order with fixed seeds.
Each candidate is cut where it starts to loop (:func:`trim_loops`): a 135M model often repeats a sentence
until the token budget ends, and a preference pair that prefers a looping refusal teaches the loop.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from secops_ai.alignment.config import ActorConfig
from secops_ai.alignment.generate import Request, seed_for
from secops_ai.alignment.prompts import NO_REFERENCE, Prompt
from secops_ai.alignment.verifiers import prompt_is_harmful
from secops_ai.inference.types import GenerationParams

ORIGINS = ("sample", "revise", "refusal_redirect", "refusal_probe", "reference", "choice_hint")

REFUSAL_INSTRUCTION = (
    "The next request would help someone attack systems or people without authorisation. Refuse it in one "
    "sentence, then redirect: offer one concrete, safe, defensive alternative the user could ask about instead.")
REFUSAL_OPENING = "I can't help with that"
CHOICE_HINT = "The verified correct option is {answer}. Answer with that option."


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def trim_loops(text: str) -> str:
    """``text`` up to the first sentence that repeats an earlier one (compared without case and spacing).

    "I can't help with that. I'm not sure what you mean. I'm not sure what you mean. I'm" ->
    "I can't help with that. I'm not sure what you mean." Text without a repeated sentence is unchanged.
    """
    seen: set[str] = set()
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        key = " ".join(sentence.lower().split())
        if key in seen:
            return " ".join(kept)
        seen.add(key)
        kept.append(sentence)
    return text


@dataclass
class Candidate:
    prompt_id: str
    index: int
    origin: str
    text: str
    seed: int | None = None
    trimmed: bool = False

    def __post_init__(self) -> None:
        cut = trim_loops(self.text)
        if cut != self.text:
            self.text, self.trimmed = cut, True

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
        from secops_ai.alignment.selfcorrect import correct_batch

        def generate(convs: list[list[dict]], max_tokens: int | None) -> list[str]:
            budget = min(max_tokens or cfg.max_tokens, cfg.max_tokens)
            return generator.generate([Request(c, GenerationParams(max_tokens=budget, temperature=0.0, seed=seed))
                                       for c in convs])

        drafts = [by_prompt[p.id][0].text for p in prompts]
        corrected = correct_batch([p.messages for p in prompts], generate, cfg.revise_mode, drafts=drafts)
        for p, c in zip(prompts, corrected, strict=True):
            by_prompt[p.id].append(Candidate(p.id, len(by_prompt[p.id]), "revise", c.final, None))

    refusal_targets = [(p, "refusal_redirect" if prompt_is_harmful(p) else "refusal_probe") for p in prompts
                       if (cfg.refusal_redirect and prompt_is_harmful(p))
                       or (cfg.benign_refusal_probe and not prompt_is_harmful(p))]
    if refusal_targets:
        texts = generator.generate([Request(_with_system(p.messages, REFUSAL_INSTRUCTION), greedy,
                                            prefix=REFUSAL_OPENING) for p, _ in refusal_targets])
        for (p, origin), text in zip(refusal_targets, texts, strict=True):
            by_prompt[p.id].append(Candidate(p.id, len(by_prompt[p.id]), origin, text, None))

    if cfg.references:  # no model call: the source's answer as it is (multiple choice has choice_hint)
        for p in prompts:
            if p.category != "cwe_choice" and p.reference.strip() and p.reference != NO_REFERENCE:
                by_prompt[p.id].append(Candidate(p.id, len(by_prompt[p.id]), "reference", p.reference, None))

    choices = [p for p in prompts if cfg.choice_hint and p.category == "cwe_choice"]
    if choices:
        texts = generator.generate([Request(_with_system(p.messages, CHOICE_HINT.format(answer=p.reference)),
                                            greedy, prefix=p.reference) for p in choices])
        for p, text in zip(choices, texts, strict=True):
            by_prompt[p.id].append(Candidate(p.id, len(by_prompt[p.id]), "choice_hint", text, None))
    return [c for p in prompts for c in by_prompt[p.id]]
