"""Task accuracy: multiple-choice questions built from the offline CWE catalog, on held-out weaknesses.

- ``cwe_classification``: a weakness's description; pick its name among four CWE names.
- ``remediation``: a weakness's name; pick the mitigation the catalog lists for it among four (the three
  distractors are mitigations of unrelated weaknesses).

Options are shuffled with the seed, and the right letter is balanced: within each task every letter is the key
of a quarter of the items (give or take one), so a model that always answers the same letter scores chance,
0.25, not the share of that letter among the keys (items v1 had 21 A keys in 60: "always A" scored 0.35).
The reply's first standalone letter A-D (or "answer: X") is the answer. Metrics: ``accuracy`` over both, and
each task's accuracy.

A note gives a second reference point besides chance: the accuracy of picking the option that shares the most
content words with the question (:func:`word_overlap_choice`). On the default gate's items that baseline
scores about 0.9 (the catalog's names and mitigations echo its descriptions), so these items measure whether
a model reads the options against the question more than what it knows; a model far below the baseline does
not use the text it was given.
"""

from __future__ import annotations

import random
import re

from secops_ai.data.text import clip
from secops_ai.evals.holdout import held_out_cwes
from secops_ai.evals.result import ItemRecord, rate
from secops_ai.evals.suites.base import EvalItem, ScoreContext, SuiteConfig, fixed_sample, user

LETTERS = "ABCD"
_ANSWER = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([ABCD])\b|^\s*\(?([ABCD])[).:\s]|^\s*\(?([ABCD])$",
                     re.IGNORECASE | re.MULTILINE)
_LETTER = re.compile(r"\b([ABCD])\b")


def parse_choice(reply: str) -> str | None:
    """The chosen letter: an explicit "answer: X" / leading "X)" first, else the first standalone A-D."""
    m = _ANSWER.search(reply)
    if m:
        return next(g for g in m.groups() if g).upper()
    m = _LETTER.search(reply)
    return m.group(1) if m else None


_STOP = frozenset({"the", "a", "an", "of", "or", "and", "to", "in", "is", "by", "for", "with", "that", "this", "it",
                   "be", "as", "on", "not", "are", "from", "its", "can", "which", "does", "describe", "weakness",
                   "product"})


def _stems(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in _STOP}


def word_overlap_choice(question: str) -> str | None:
    """The letter whose option shares the largest part of its words (5-letter stems) with the question's stem."""
    stem, _, rest = question.partition("\n\n")
    options = {m.group(1): m.group(2) for m in re.finditer(r"^([ABCD])\) (.*)$", rest, re.MULTILINE)}
    if not options:
        return None
    words = _stems(stem)
    return max(options, key=lambda k: (len(_stems(options[k]) & words) / max(1, len(_stems(options[k]))),
                                       -LETTERS.index(k)))


def _question(stem: str, options: list[str]) -> str:
    lines = [stem, ""] + [f"{LETTERS[i]}) {opt}" for i, opt in enumerate(options)]
    return "\n".join([*lines, "", "Answer with the letter of the correct option."])


def _strip_phase(mitigation: str) -> str:
    # catalog mitigations start with their phase ("Implementation: ..."); the phase gives no hint, drop it
    return re.sub(r"^[A-Z][\w ]{2,40}:\s+", "", mitigation)


class TaskAccuracySuite:
    name = "task_accuracy"
    items_version = 2  # v2: balanced answer letters (the gate fingerprint changes, cached results are redone)
    description = "Multiple choice on held-out CWE weaknesses: classification and remediation."
    metrics = ("accuracy", "cwe_classification_accuracy", "remediation_accuracy")

    def build(self, cfg: SuiteConfig, seed: int) -> list[EvalItem]:
        pool = held_out_cwes()
        n_cls = (cfg.samples + 1) // 2
        picked = fixed_sample(pool, cfg.samples, seed, lambda c: c.id)
        # the key's position per item: each letter equally often within each task, in a seeded order
        keys: list[int] = []
        for task, n, first in (("cls", n_cls, 0), ("rem", len(picked) - n_cls, n_cls % 4)):
            slots = [(first + j) % 4 for j in range(n)]  # the second task continues the cycle: totals balance too
            random.Random(f"task-accuracy-keys:{seed}:{task}").shuffle(slots)
            keys += slots
        items: list[EvalItem] = []
        for i, cwe in enumerate(picked):
            rng = random.Random(f"task-accuracy:{seed}:{cwe.id}")
            others = [c for c in pool if c.id != cwe.id and cwe.id not in c.parents and c.id not in cwe.parents]
            distractors = rng.sample(others, 3)
            if i < n_cls:
                options = [cwe.name] + [d.name for d in distractors]
                stem = f"Which weakness does this describe?\n\"{clip(cwe.description, 400)}\""
                task = "cwe_classification"
            else:
                options = [clip(_strip_phase(cwe.mitigations[0]), 220)] + [
                    clip(_strip_phase(rng.choice(d.mitigations)), 220) for d in distractors]
                stem = f"Which mitigation addresses the weakness '{cwe.name}'?"
                task = "remediation"
            wrong = options[1:]
            rng.shuffle(wrong)
            shuffled = [*wrong[:keys[i]], options[0], *wrong[keys[i]:]]
            answer = LETTERS[keys[i]]
            items.append(EvalItem(f"{task}-{cwe.id}", user(_question(stem, shuffled)), expected=answer,
                                  meta={"task": task, "cwe": f"CWE-{cwe.id}"}))
        return items

    def score(self, items: list[EvalItem], replies: list[str], cfg: SuiteConfig,
              ctx: ScoreContext) -> tuple[dict[str, float], list[ItemRecord], list[str]]:
        records = []
        for it, reply in zip(items, replies, strict=True):
            choice = parse_choice(reply)
            records.append(ItemRecord(id=it.id, prompt=it.prompt, response=reply, flagged=choice != it.expected,
                                      expected=it.expected,
                                      detail={"task": it.meta["task"], "choice": choice, "cwe": it.meta["cwe"]},
                                      outcomes={"accuracy": choice == it.expected,
                                                f"{it.meta['task']}_accuracy": choice == it.expected}))

        def acc(task: str | None) -> float:
            return rate([not r.flagged for r in records if task is None or r.detail["task"] == task])

        metrics = {"accuracy": acc(None), "cwe_classification_accuracy": acc("cwe_classification"),
                   "remediation_accuracy": acc("remediation")}
        overlap = rate([word_overlap_choice(it.prompt) == it.expected for it in items])
        return metrics, records, [f"chance is 0.25; picking the option with the most words in common with the "
                                  f"question scores {overlap:.2f} on these {len(items)} items"]
