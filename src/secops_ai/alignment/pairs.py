"""Preference pairs from scored candidates (actor pairs) and meta-judged judgments (judge pairs).

A candidate's final score is its judge score (0-5 after the verbosity control; 2.5 when no judgment was
readable) plus 10 x its verifier verdict, so a verified answer always outranks an unverified one and a
verified-bad one ranks below both: the verifier overrides the judge. A conflict (the judge scores a verified
answer on the wrong side of 2.5) is recorded.

Per prompt: chosen = the shortest answer within ``length_margin`` of the best final score (length control),
rejected = the worst; pairs closer than ``min_gap``, identical texts and pairs whose chosen answer is itself
verified bad are dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from secops_ai.alignment.actor import ORIGINS, Candidate
from secops_ai.alignment.config import PairsConfig
from secops_ai.alignment.judge import MAX_SCORE, Judgment, Scored, judge_messages
from secops_ai.alignment.metajudge import MetaDecision
from secops_ai.alignment.prompts import Prompt

VERIFIER_WEIGHT = 10.0
MIDPOINT = MAX_SCORE / 2


@dataclass
class Ranked:
    candidate: Candidate
    judge: float | None
    verdict: int
    final: float
    conflict: bool


def rank(candidates: list[Candidate], scored: dict[tuple[str, int], Scored],
         verdicts: dict[tuple[str, int], int]) -> list[Ranked]:
    out = []
    for c in candidates:
        key = (c.prompt_id, c.index)
        j = scored[key].judge_adjusted
        v = verdicts.get(key, 0)
        final = round((MIDPOINT if j is None else j) + VERIFIER_WEIGHT * v, 4)
        conflict = v != 0 and j is not None and (j >= MIDPOINT) != (v > 0)
        out.append(Ranked(c, j, v, final, conflict))
    return out


def actor_pairs(prompts: list[Prompt], ranked: list[Ranked], cfg: PairsConfig) -> tuple[list[dict], dict[str, Any]]:
    by_prompt: dict[str, list[Ranked]] = {}
    for r in ranked:
        by_prompt.setdefault(r.candidate.prompt_id, []).append(r)
    records, dropped = [], Counter()
    chosen_origin, rejected_origin = Counter(), Counter()
    chosen_len, rejected_len = [], []
    for p in prompts:
        rs = [r for r in by_prompt.get(p.id, []) if r.candidate.text.strip()]
        if len(rs) < 2:
            dropped["too_few_candidates"] += 1
            continue
        top = max(r.final for r in rs)
        near = [r for r in rs if r.final >= top - cfg.length_margin]
        chosen = min(near, key=lambda r: (len(r.candidate.text), -r.final, r.candidate.index))
        rejected = min(rs, key=lambda r: (r.final, -len(r.candidate.text), r.candidate.index))
        if chosen.verdict < 0:
            dropped["no_acceptable_answer"] += 1
            continue
        if chosen.candidate.text.strip() == rejected.candidate.text.strip():
            dropped["identical"] += 1
            continue
        if chosen.final - rejected.final < cfg.min_gap:
            dropped["tie"] += 1
            continue
        chosen_origin[chosen.candidate.origin] += 1
        rejected_origin[rejected.candidate.origin] += 1
        chosen_len.append(len(chosen.candidate.text))
        rejected_len.append(len(rejected.candidate.text))
        records.append({
            "prompt": p.messages,
            "chosen": [{"role": "assistant", "content": chosen.candidate.text}],
            "rejected": [{"role": "assistant", "content": rejected.candidate.text}],
            "metadata": {"task": f"evolve-actor:{p.category}", "ids": list(p.ids), "source": p.id,
                         "template": f"chosen={chosen.candidate.origin};rejected={rejected.candidate.origin}"},
        })
    n = len(records)
    stats = {
        "pairs": n, "prompts": len(prompts), "dropped": dict(sorted(dropped.items())),
        "chosen_origin_share": {o: round(chosen_origin[o] / n, 4) if n else 0.0 for o in ORIGINS},
        "rejected_origin_share": {o: round(rejected_origin[o] / n, 4) if n else 0.0 for o in ORIGINS},
        "avg_chosen_chars": round(sum(chosen_len) / n, 1) if n else 0.0,
        "avg_rejected_chars": round(sum(rejected_len) / n, 1) if n else 0.0,
    }
    return records, stats


def judge_pairs(prompts: list[Prompt], answers: dict[tuple[str, int], str], judgments: list[Judgment],
                decisions: list[MetaDecision]) -> tuple[list[dict], dict[str, Any]]:
    by_id = {p.id: p for p in prompts}
    texts = {(j.prompt_id, j.index, j.k): j.text for j in judgments}
    records = []
    truth = sum(1 for d in decisions if d.truth_winner is not None)
    meta = sum(1 for d in decisions if d.meta_winner is not None)
    agree = sum(1 for d in decisions if d.truth_winner is not None and d.meta_winner == d.truth_winner)
    for d in decisions:
        if d.winner is None:
            continue
        loser = d.second if d.winner == d.first else d.first
        good, bad = texts[(d.prompt_id, d.index, d.winner)].strip(), texts[(d.prompt_id, d.index, loser)].strip()
        if not good or not bad or good == bad:
            continue
        p = by_id[d.prompt_id]
        records.append({
            "prompt": judge_messages(p, answers[(d.prompt_id, d.index)], "question_first"),
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": bad}],
            "metadata": {"task": "evolve-judge", "ids": list(p.ids), "source": f"{p.id}#{d.index}",
                         "template": "verifier" if d.truth_winner is not None else "meta-judge"},
        })
    stats = {"pairs": len(records), "compared": len(decisions), "meta_decided": meta, "verifier_decided": truth,
             "meta_vs_verifier_agreement": round(agree / truth, 4) if truth else None}
    return records, stats


def judge_verifier_agreement(ranked: list[Ranked]) -> dict[str, Any]:
    """How often the judge's side of the midpoint matches the verifier verdict (verified, judged answers)."""
    both = [r for r in ranked if r.verdict != 0 and r.judge is not None]
    agree = sum(1 for r in both if not r.conflict)
    return {"verified_and_judged": len(both), "agreement": round(agree / len(both), 4) if both else None,
            "conflicts": len(both) - agree,
            "verified_good": sum(1 for r in ranked if r.verdict > 0),
            "verified_bad": sum(1 for r in ranked if r.verdict < 0)}
