"""Verifier-keyed items: prompts whose right answer the local catalog knows, trained on their key (evolve's
``keyed`` stage).

Why a stage of its own: the gate's task-accuracy items are multiple choice on held-out CWE weaknesses, which
the 135M model answers at chance. ``bench/choice_learning.py`` showed the skill they test (read the options
against the question) is learnable, but only after ~2,000 fresh items of answer-level training; the skill
then appears within ~100 steps. The actor/judge pairs give at most a few dozen multiple-choice prompts per
iteration, and on a question the model cannot answer none of its samples is right, so pairs cannot carry
that volume. Here no judge is needed: the verifier *is* the key (the catalog says which option is right),
so the chosen answer is the key's letter, and every item is new.

Items are built from Base/Variant weaknesses that are not held out (the gate's items use held-out ones
only, distractors included), in the gate's two shapes (which weakness does this describe; which mitigation
addresses this weakness), with the key's letter cycling A-D so no position is favoured. The prompt
stage's contamination check runs on them before they are written. Optionally (``replay``) the chosen answers
of the iteration's actor pairs are mixed in; on the bundled 135M model that taught a generic refusal
(false refusals 0 -> 0.5), so it is off by default.

Two more kinds of keyed item guard what the drill alone made worse (docs/BENCHMARKS.md):

- ``catalog_items``: "what is the CWE number of <name>?" answered by pointing to the catalog instead of a
  number. Drilled on letters only, the model answered the gate's id questions with a confident wrong id
  (wrong ids 0.50 -> 0.71); it cannot learn 75 numbers in CPU minutes (bench/fact_recall.py), and a wrong but
  real id misleads a triage more than none. The recipe's deferral answers (``recipe.DEFER_A``).
- ``tooling_items``: defensive tooling requests ("write a Bash script that detects ...") answered in full
  (the recipe's ``builders``). The preference run teaches refusals of "write me a ... that attacks"; without a
  counterweight the model also refused the gate's benign "generate a script that blocks ..." requests.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from secops_ai.config.settings import DEFAULT_SYSTEM_PROMPT
from secops_ai.data.text import clip

KEYED_VERSION = "2"
CATALOG_TASK = "catalog_defer"
TOOLING_TASK = "benign_builder"
_KIND = {CATALOG_TASK: "catalog deferral", TOOLING_TASK: "tooling"}  # any other task: multiple choice


def _record(question: str, answer: str, task: str, ids: list[str], template: str) -> dict[str, Any]:
    """One keyed chat record: the default system prompt, the question, the keyed answer."""
    return {"messages": [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                         {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}],
            "metadata": {"task": task, "ids": ids, "source": "evolve-keyed", "template": template}}


def reading_pool() -> list[Any]:
    """Weaknesses usable for keyed questions: Base/Variant, current, with a description and a mitigation,
    and never held out (the gate's items are built from held-out weaknesses only)."""
    from secops_ai.evals.holdout import held_out_ids
    from secops_ai.knowledge.cwe import all_cwes

    held = held_out_ids()
    return [c for c in all_cwes() if c.abstraction in ("Base", "Variant") and c.status not in ("Deprecated", "Obsolete")
            and c.description and c.mitigations and c.id not in held]


def _held_out_mitigations() -> frozenset[str]:
    """Every mitigation of a held-out weakness, as an option would show it (normalised)."""
    from secops_ai.evals.holdout import _norm, held_out_ids
    from secops_ai.evals.suites.task_accuracy import _strip_phase
    from secops_ai.knowledge.cwe import all_cwes

    held = held_out_ids()
    return frozenset(_norm(clip(_strip_phase(m), 220)) for c in all_cwes() if c.id in held for m in c.mitigations)


def choice_items(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` fresh multiple-choice chat records (system, question, key letter), half of each shape.

    Deterministic in ``seed``; the key's letter cycles A, B, C, D within each shape.
    """
    from secops_ai.evals.holdout import _norm
    from secops_ai.evals.suites.task_accuracy import LETTERS, _question, _strip_phase

    pool = reading_pool()
    if len(pool) < 8:
        raise ValueError(f"keyed items need at least 8 catalogued weaknesses that are not held out; found {len(pool)}")
    # Sibling weaknesses share mitigation text (CWE-760 and the held-out CWE-759 have the same ones), and a
    # question built on such text nearly repeats a gate item: no option may be a held-out weakness's mitigation.
    held = _held_out_mitigations()

    def shown(mitigation: str) -> str:
        return clip(_strip_phase(mitigation), 220)

    usable = {c.id: [m for m in map(shown, c.mitigations) if _norm(m) not in held] for c in pool}
    keys = [c for c in pool if usable[c.id][:1] == [shown(c.mitigations[0])]]  # remediation keys: first mitigation

    rng = random.Random(f"evolve-keyed:{seed}")
    out = []
    for i in range(n):
        remediation = i % 2 == 1
        c = rng.choice(keys if remediation else pool)
        others = [o for o in pool if o.id != c.id and c.id not in o.parents and o.id not in c.parents
                  and (not remediation or usable[o.id])]
        distractors = rng.sample(others, 3)
        if not remediation:
            task, options = "cwe_classification", [c.name] + [d.name for d in distractors]
            stem = f"Which weakness does this describe?\n\"{clip(c.description, 400)}\""
        else:
            task = "remediation"
            options = [shown(c.mitigations[0])] + [rng.choice(usable[d.id]) for d in distractors]
            stem = f"Which mitigation addresses the weakness '{c.name}'?"
        k = (i // 2) % 4
        wrong = options[1:]
        rng.shuffle(wrong)
        question = _question(stem, [*wrong[:k], options[0], *wrong[k:]])
        out.append(_record(question, LETTERS[k], task, [f"CWE-{c.id}"], f"keyed:{seed}:{i}"))
    return out


def replay_items(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chosen side of preference records as chat records (prompt + chosen answer), one per prompt."""
    from secops_ai.training.data import to_preference

    out, seen = [], set()
    for i, rec in enumerate(pairs, start=1):
        pref = to_preference(rec, where=f"pair {i}")
        key = repr(pref["prompt"])
        if key in seen:
            continue
        seen.add(key)
        meta = rec.get("metadata") or {}
        out.append({"messages": [*pref["prompt"], *pref["chosen"]],
                    "metadata": {"task": meta.get("task", "replay"), "source": "evolve-replay",
                                 "ids": list(meta.get("ids") or [])}})
    return out


def _catalog_pool() -> list[Any]:
    """Current CWE entries that are not held out: the taught ones (the gate asks their ids) and the reading pool."""
    from secops_ai.evals.holdout import held_in_cwes

    seen: dict[int, Any] = {c.id: c for c in held_in_cwes()}
    for c in reading_pool():
        seen.setdefault(c.id, c)
    return [seen[k] for k in sorted(seen)]


def catalog_items(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` name -> id questions answered with a pointer to the catalog, one question per record.

    One per record, not packed: what a LoRA on this model learns is bound by optimizer steps
    (bench/fact_recall.py). Every weakness is asked before any is asked again.
    """
    from secops_ai.data.generators.recipe import DEFER_A, NAME_TO_ID_Q

    pool = _catalog_pool()
    rng = random.Random(f"evolve-keyed-catalog:{seed}")
    order: list[Any] = []
    out = []
    for i in range(n):
        if not order:
            order = rng.sample(pool, len(pool))
        c = order.pop()
        question = rng.choice(NAME_TO_ID_Q).format(name=c.name)
        answer = rng.choice(DEFER_A).format(name=c.name)
        out.append(_record(question, answer, CATALOG_TASK, [f"CWE-{c.id}"], f"keyed-catalog:{seed}:{i}"))
    return out


def tooling_items(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` defensive tooling requests with their full answers (code first), every task before any repeats."""
    from secops_ai.data.generators.builders import builder_requests

    return [_record(request, answer, TOOLING_TASK, [], template)
            for _, request, answer, template in builder_requests(seed, n)]


def drill_items(choices: int, catalog: int, tooling: int, seed: int) -> list[dict[str, Any]]:
    """Every keyed item of one iteration, the three kinds interleaved in a fixed order (``seed``)."""
    items = choice_items(choices, seed) + catalog_items(catalog, seed) + tooling_items(tooling, seed)
    if catalog or tooling:
        random.Random(f"evolve-keyed-mix:{seed}").shuffle(items)
    return items


def kind_counts(items: list[dict[str, Any]]) -> dict[str, int]:
    """How many drill items of each kind ("multiple-choice", "catalog deferral", "tooling") ``items`` holds."""
    return dict(Counter(_KIND.get(r["metadata"]["task"], "multiple-choice") for r in items))
