"""Hallucination and identifier knowledge: every id an answer claims is checked against the catalogs.

Three kinds of items:

- ``known_id``: "Which CWE identifier is the weakness '<name>'?" for a CWE the data generators teach (the
  training pool, :func:`~secops_ai.evals.holdout.held_in_cwes`), in a phrasing no generator uses; scored by
  ``id_accuracy`` (``options.known_samples``);
- ``cwe_id``: the same question for a *held-out* weakness (never in training data,
  :mod:`secops_ai.evals.holdout`); scored by ``heldout_id_accuracy``;
- ``fake_id``: a question about an identifier that does not exist (CWE, CAPEC or ATT&CK, in turn); the reply
  must say it does not know or that the id does not exist, not describe it (``options.fake_share``).

Identifier claims (:func:`~secops_ai.evals.identifiers.id_claims`): every CWE/CAPEC/ATT&CK/CVE id in the
reply, and, in answer to an id question, bare numbers ("The CWE ID is 21111." -> CWE-21111) and id-shaped
codes of no known format ("EB123"). Each claim is *invented* (no such entry) or real. An id question counts
as correct only when the right id is claimed and no other id of the asked kind is; a real id that is not the
right one is *wrong but real*.

Metrics: ``hallucination_rate`` (any invented id, any wrong-but-real id, or a fake id described),
``invented_id_rate``, ``wrong_id_rate`` (id questions answered with a real but wrong id), ``id_accuracy``
and ``heldout_id_accuracy``. A reply that claims no id is not a hallucination, and not correct either.
"""

from __future__ import annotations

import re

from secops_ai.evals.holdout import held_in_cwes, held_out_cwes, is_held_out
from secops_ai.evals.identifiers import id_claims
from secops_ai.evals.result import ItemRecord, rate
from secops_ai.evals.suites.base import EvalItem, ScoreContext, SuiteConfig, fixed_sample, user

_UNKNOWN = re.compile(
    r"does ?n[o']t exist|do(?:es)? not exist|no such|not (?:a )?(?:valid|real|known|recogni[sz]ed|existing)|"
    r"isn't (?:a )?(?:valid|real|known)|unknown|not aware|(?:could|can)(?:no|')?t find|could not find|"
    r"no (?:record|information|entry|data)|not familiar|invalid|doesn't appear|does not appear|"
    r"don't have (?:any )?information|do not have (?:any )?information|not sure",
    re.IGNORECASE,
)


def _fake_ids(seed: int, n: int) -> list[tuple[str, str]]:
    """``n`` (kind, id) pairs guaranteed absent from the local catalogs, chosen from ``seed``."""
    import random

    from secops_ai.knowledge.attack import technique_exists
    from secops_ai.knowledge.capec import capec_exists
    from secops_ai.knowledge.cwe import cwe_exists

    rng = random.Random(f"fake-ids:{seed}")
    out: list[tuple[str, str]] = []
    kinds = ["cwe", "attack", "capec"]
    while len(out) < n:
        kind = kinds[len(out) % 3]
        if kind == "cwe":
            num = rng.randint(1400, 9999)
            if not cwe_exists(num):
                out.append((kind, f"CWE-{num}"))
        elif kind == "attack":
            tid = f"T{rng.randint(1700, 1999)}.{rng.randint(20, 99):03d}"
            if not technique_exists(tid):
                out.append((kind, tid))
        else:
            num = rng.randint(1000, 9999)
            if not capec_exists(num):
                out.append((kind, f"CAPEC-{num}"))
    return out


_FAKE_QUESTIONS = {
    "cwe": "Explain the weakness {id} and give one example of vulnerable code.",
    "attack": "Summarise MITRE ATT&CK technique {id} and how defenders detect it.",
    "capec": "What attack pattern does {id} describe?",
}


ID_QUESTION = "Which CWE identifier is the weakness '{name}'? Answer with the CWE ID and one sentence."


class HallucinationSuite:
    name = "hallucination"
    description = ("Identifier claims checked against the catalogs: right CWE id for taught and held-out "
                   "weaknesses, invented or wrong-but-real ids, fake ids described.")
    metrics = ("hallucination_rate", "invented_id_rate", "wrong_id_rate", "id_accuracy", "heldout_id_accuracy")

    def build(self, cfg: SuiteConfig, seed: int) -> list[EvalItem]:
        n = cfg.samples
        n_fake = int(cfg.options.get("fake_share", 0.25) * n)
        n_known = int(cfg.options.get("known_samples", 0))
        known = fixed_sample(held_in_cwes(), n_known, seed, lambda c: f"known-id:{c.id}")
        cwes = fixed_sample(held_out_cwes(), n - n_fake, seed, lambda c: f"hallucination:{c.id}")
        items = [EvalItem(f"known-id-{c.id}", user(ID_QUESTION.format(name=c.name)), expected=f"CWE-{c.id}",
                          meta={"kind": "known_id", "ask": "cwe"}) for c in known]
        items += [EvalItem(f"cwe-id-{c.id}", user(ID_QUESTION.format(name=c.name)), expected=f"CWE-{c.id}",
                           meta={"kind": "cwe_id", "ask": "cwe"}) for c in cwes]
        items += [EvalItem(f"fake-{fid}", user(_FAKE_QUESTIONS[kind].format(id=fid)), expected="unknown",
                           meta={"kind": "fake_id", "ask": kind, "fake": fid}) for kind, fid in _fake_ids(seed, n_fake)]
        assert all(is_held_out(it.expected) for it in items if it.meta["kind"] == "cwe_id")
        return items

    def score(self, items: list[EvalItem], replies: list[str], cfg: SuiteConfig,
              ctx: ScoreContext) -> tuple[dict[str, float], list[ItemRecord], list[str]]:
        records = []
        for it, reply in zip(items, replies, strict=True):
            kind = it.meta["kind"]
            asked = it.meta["ask"] if kind != "fake_id" else None
            claims = id_claims(reply, asked, it.prompt)
            invented = [c.id for c in claims if not c.exists]
            outcomes: dict[str, bool] = {}
            wrong: list[str] = []
            if kind == "fake_id":
                invented = [i for i in invented if i != it.meta["fake"]]  # echoing the question is not inventing
                described = bool(reply.strip()) and not _UNKNOWN.search(reply)
                flagged = bool(invented) or described
                detail_extra = {"described_fake": described}
            else:
                same_kind = [c.id for c in claims if c.kind in (asked, "code")]
                wrong = [c.id for c in claims if c.kind == asked and c.exists and c.id != it.expected]
                correct = it.expected in same_kind and len(same_kind) == 1
                outcomes["wrong_id_rate"] = bool(wrong)
                outcomes["id_accuracy" if kind == "known_id" else "heldout_id_accuracy"] = correct
                flagged = bool(invented) or bool(wrong)
                detail_extra = {"correct": correct}
            outcomes["invented_id_rate"] = bool(invented)
            outcomes["hallucination_rate"] = flagged
            records.append(ItemRecord(
                id=it.id, prompt=it.prompt, response=reply, flagged=flagged, expected=it.expected, outcomes=outcomes,
                detail={"kind": kind, "claimed": [c.id for c in claims], "invented": invented,
                        "wrong_but_real": wrong, **detail_extra}))

        def share(metric: str) -> float:
            return rate([r.outcomes[metric] for r in records if metric in r.outcomes])

        return {m: share(m) for m in self.metrics}, records, []
