"""The meta-judge: which of two judgments of the same answer is the better one (Meta-Rewarding).

For an answer with two judgments that disagree, the meta-judge sees both, in both orders (A/B then B/A), and
names the better one; a winner must win in both orders, otherwise it is a tie and dropped (position bias).
Where the answer has a verifier verdict, that verdict is ground truth: the better judgment is the one whose
score sits on the verified side of the midpoint (or, both on the same side, nearer the truth); it overrides
the meta-judge, and their agreement is reported. The winners become the judge's preference pairs, with the
rubric prompt (question-first layout) as their prompt.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from secops_ai.alignment.config import MetaJudgeConfig
from secops_ai.alignment.generate import Request
from secops_ai.alignment.judge import MAX_SCORE, Judgment
from secops_ai.alignment.prompts import Prompt
from secops_ai.inference.types import GenerationParams

META_VERSION = "2"  # 2: the verdict is started for the model (META_OPENING)
META_INSTRUCTION = (
    "Two reviewers graded the same answer with the rubric below. Decide which review is more accurate.\n\n"
    "Reply with one letter: A or B.")
META_OPENING = "The more accurate review is Review"
_LETTER = re.compile(r"\b([AB])\b")


@dataclass
class MetaDecision:
    prompt_id: str
    index: int
    first: int  # k of judgment 1
    second: int  # k of judgment 2
    meta_winner: int | None  # k chosen by the meta-judge in both orders, None for a tie
    truth_winner: int | None  # k the verifier verdict supports, None without a verdict or a tie
    winner: int | None  # what the pair uses: truth where it exists, else the meta-judge
    raw: tuple[str, str]

    def to_dict(self) -> dict:
        return asdict(self)


def _meta_messages(prompt: Prompt, answer: str, a: Judgment, b: Judgment) -> list[dict[str, str]]:
    from secops_ai.alignment.judge import RUBRIC

    body = (f"Rubric:\n{RUBRIC}\n\nQuestion:\n{prompt.user}\n\nAnswer:\n{answer}\n\n"
            f"Review A:\n{a.text.strip()}\n\nReview B:\n{b.text.strip()}")
    return [{"role": "system", "content": META_INSTRUCTION}, {"role": "user", "content": body}]


def truth_winner(a: Judgment, b: Judgment, verdict: int) -> int | None:
    """The judgment the verdict (+1 good / -1 bad) supports; None if neither can be preferred."""
    if verdict == 0 or a.score is None or b.score is None or a.score == b.score:
        return None
    # distance from the verified end of the scale: 5 for a good answer, 0 for a bad one
    target = MAX_SCORE if verdict > 0 else 0.0
    return a.k if abs(a.score - target) < abs(b.score - target) else b.k


def meta_judge(prompts: list[Prompt], answers: dict[tuple[str, int], str], judgments: list[Judgment],
               verdicts: dict[tuple[str, int], int], generator, cfg: MetaJudgeConfig, *,
               seed: int) -> list[MetaDecision]:
    by_id = {p.id: p for p in prompts}
    grouped: dict[tuple[str, int], list[Judgment]] = {}
    for j in judgments:
        grouped.setdefault((j.prompt_id, j.index), []).append(j)
    todo: list[tuple[tuple[str, int], Judgment, Judgment]] = []
    for key, js in grouped.items():
        readable = [j for j in js if j.score is not None]
        # the most different readable pair of this answer's judgments (the one worth a comparison)
        best = None
        for i, a in enumerate(readable):
            for b in readable[i + 1:]:
                if a.text.strip() != b.text.strip() and a.score != b.score:
                    gap = abs(a.score - b.score)
                    if best is None or gap > best[0]:
                        best = (gap, a, b)
        if best:
            todo.append((key, best[1], best[2]))
    todo = todo[: cfg.max_answers]
    if not todo:
        return []
    params = GenerationParams(max_tokens=cfg.max_tokens, temperature=0.0, seed=seed)
    reqs = []
    for key, a, b in todo:
        p = by_id[key[0]]
        reqs.append(Request(_meta_messages(p, answers[key], a, b), params, prefix=META_OPENING))
        reqs.append(Request(_meta_messages(p, answers[key], b, a), params, prefix=META_OPENING))
    texts = generator.generate(reqs) if cfg.enabled else ["", ""] * len(todo)
    out = []
    for n, (key, a, b) in enumerate(todo):
        t1, t2 = texts[2 * n], texts[2 * n + 1]
        m1, m2 = _LETTER.search(t1.removeprefix(META_OPENING)), _LETTER.search(t2.removeprefix(META_OPENING))
        first = {"A": a.k, "B": b.k}.get(m1.group(1)) if m1 else None
        second = {"A": b.k, "B": a.k}.get(m2.group(1)) if m2 else None
        meta = first if first is not None and first == second else None
        truth = truth_winner(a, b, verdicts.get(key, 0))
        out.append(MetaDecision(key[0], key[1], a.k, b.k, meta, truth, truth if truth is not None else meta,
                                (t1, t2)))
    return out
