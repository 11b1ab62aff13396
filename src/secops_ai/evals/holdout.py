"""Knowledge items reserved for evaluation, and the check that no training data has seen them.

Task-accuracy and hallucination questions are built only from *held-out* CWE weaknesses, by construction:

- the data generators draw every CWE they teach from a fixed pool (``WELL_KNOWN_CWES`` plus the ids of their
  remediation table ``FIXES``): those ids are never held out;
- of the remaining Base/Variant weaknesses (not deprecated, with a description and a mitigation), one in
  ``HOLDOUT_BUCKETS`` is held out, chosen by a salted SHA-256 of the id, so the set is a pure function of
  the catalog and never changes between runs (:func:`is_held_out`).

:func:`find_contamination` then verifies, dataset by dataset, that no training record uses a held-out CWE
(in its ``metadata.ids`` or in its text, e.g. "CWE-1234"), contains an evaluation prompt verbatim, or nearly
(half of a prompt's word 8-grams; catches a prompt with a changed ending or a prefix added)
(``secops-ai eval contamination``; every gate run does it too and reports it: :func:`gate_contamination`;
tests/evals/test_holdout.py runs it on the starter and recipe datasets).

This module is the one place that defines what evaluation holds out: the data generators only avoid it
(they teach the pool of :func:`training_pool`) and docs/datasets.md describes it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

HOLDOUT_SALT = "secops-ai-evals-v1"
HOLDOUT_BUCKETS = 5


@lru_cache(maxsize=1)
def training_pool() -> frozenset[int]:
    """CWE ids the data generators may teach, and every CWE their catalog text mentions (never held out)."""
    from secops_ai.data.generators import WELL_KNOWN_CWES
    from secops_ai.data.generators.remediation import FIXES
    from secops_ai.knowledge.cwe import get_cwe

    pool = set(WELL_KNOWN_CWES) | set(FIXES)
    for cid in list(pool):
        entry = get_cwe(cid)
        if entry is None:
            continue
        text = " ".join([entry.name, entry.description, entry.extended_description or "", *entry.mitigations,
                         *FIXES.values()])
        pool.update(int(n) for n in re.findall(r"CWE-(\d+)", text))
    return frozenset(pool)


def _in_bucket(num: int) -> bool:
    return int(hashlib.sha256(f"{HOLDOUT_SALT}:CWE-{num}".encode()).hexdigest()[:8], 16) % HOLDOUT_BUCKETS == 0


@lru_cache(maxsize=1)
def held_out_ids() -> frozenset[int]:
    return frozenset(c.id for c in held_out_cwes())


def is_held_out(identifier: str | int) -> bool:
    """True for CWE ids reserved for evaluation (``"CWE-1041"`` or ``1041``); any other id is not."""
    m = re.fullmatch(r"(?:CWE-)?(\d+)", str(identifier).strip().upper().replace("_", "-"))
    return m is not None and int(m.group(1)) in held_out_ids()


def held_out_cwes() -> list[Any]:
    """Held-out CWE weaknesses usable for questions: Base/Variant, not deprecated, with a mitigation."""
    from secops_ai.knowledge.cwe import all_cwes

    pool = training_pool()
    return [c for c in all_cwes()
            if c.abstraction in ("Base", "Variant") and c.status not in ("Deprecated", "Obsolete")
            and c.description and c.mitigations and c.id not in pool and _in_bucket(c.id)]


def held_in_cwes() -> list[Any]:
    """CWE weaknesses the data generators teach (the training pool), for questions on *taught* facts.

    The gate asks about them in phrasings no generator uses, so answering right shows the fact was learnt,
    not the question memorised.
    """
    from secops_ai.data.generators import WELL_KNOWN_CWES
    from secops_ai.data.generators.remediation import FIXES
    from secops_ai.knowledge.cwe import get_cwe

    out = []
    for cid in sorted(set(WELL_KNOWN_CWES) | set(FIXES)):
        entry = get_cwe(cid)
        if entry is not None and entry.status not in ("Deprecated", "Obsolete"):
            out.append(entry)
    return out


_ID_IN_TEXT = re.compile(r"\bCWE[-_ ]?\d+\b", re.IGNORECASE)


@dataclass(frozen=True)
class Contamination:
    """One training record that touches evaluation material."""

    dataset: str
    line: int
    reason: str


def record_text(record: dict[str, Any]) -> str:
    """Every string a training record shows the model (messages, prompt, completion, chosen, rejected, text)."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for k, v in value.items():
                if k != "metadata":
                    walk(v)

    walk(record)
    return "\n".join(parts)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


NGRAM = 8
NEAR_DUPLICATE_SHARE = 0.5


def _ngrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def find_contamination(datasets: Iterable[tuple[str, Iterable[dict[str, Any]]]],
                       eval_prompts: Iterable[str]) -> list[Contamination]:
    """Records (of ``(ref, records)`` pairs) that use a held-out id or contain an evaluation prompt, or most of it."""
    prompts = {_norm(p) for p in eval_prompts if len(_norm(p)) >= 20}
    grams = {p: _ngrams(p.split()) for p in prompts}
    index: dict[tuple[str, ...], set[str]] = {}
    for p, gs in grams.items():
        for g in gs:
            index.setdefault(g, set()).add(p)
    found: list[Contamination] = []
    for ref, records in datasets:
        for line, record in enumerate(records, start=1):
            meta_ids = [str(i) for i in ((record.get("metadata") or {}).get("ids") or [])]
            text = record_text(record)
            used = {i.upper() for i in meta_ids} | {m.upper().replace(" ", "-") for m in _ID_IN_TEXT.findall(text)}
            bad = sorted(i for i in used if i.startswith("CWE") and is_held_out(i))
            if bad:
                found.append(Contamination(ref, line, f"uses held-out id(s) {', '.join(bad[:5])}"))
                continue
            norm = _norm(text)
            hit = next((p for p in prompts if p in norm), None)
            if hit:
                found.append(Contamination(ref, line, f"contains the evaluation prompt {hit[:60]!r}..."))
                continue
            shared: dict[str, int] = {}
            for g in _ngrams(norm.split()):
                for p in index.get(g, ()):
                    shared[p] = shared.get(p, 0) + 1
            near = next((p for p, k in shared.items() if k >= NEAR_DUPLICATE_SHARE * len(grams[p])), None)
            if near:
                found.append(Contamination(ref, line, f"nearly repeats the evaluation prompt {near[:60]!r}..."))
    return found


def workspace_contamination(store: Any, eval_prompts: list[str]) -> list[Contamination]:
    """:func:`find_contamination` over every training dataset in a :class:`~secops_ai.data.store.DatasetStore`."""
    from secops_ai.data.schemas import TRAINING_KINDS

    training = {str(k) for k in TRAINING_KINDS}
    pairs = []
    for manifest in store.list():
        if str(manifest.kind) in training:
            ds = store.get(manifest.ref)
            pairs.append((manifest.ref, ds.iter_records()))
    return find_contamination(pairs, eval_prompts)


class ContaminationCheck(BaseModel):
    """What a gate run reports about contamination: that it checked, what, and what it found."""

    checked: bool = True
    datasets: list[str] = Field(default_factory=list)
    records: int = 0
    eval_items: int = 0
    found: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        head = (f"checked {self.records} records of {len(self.datasets)} training dataset(s) against "
                f"{self.eval_items} gate items and the held-out ids")
        return f"{head}: {len(self.found)} contaminated" if self.found else f"{head}: none touches them"


def gate_contamination(store: Any, eval_prompts: list[str]) -> ContaminationCheck:
    """:func:`workspace_contamination` as a gate reports it (records counted, findings as text)."""
    from secops_ai.data.schemas import TRAINING_KINDS

    training = {str(k) for k in TRAINING_KINDS}
    manifests = [m for m in store.list() if str(m.kind) in training]
    found = workspace_contamination(store, eval_prompts)
    return ContaminationCheck(datasets=[m.ref for m in manifests], records=sum(m.record_count for m in manifests),
                              eval_items=len(eval_prompts),
                              found=[f"{c.dataset} line {c.line}: {c.reason}" for c in found])
