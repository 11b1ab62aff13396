"""Knowledge items reserved for evaluation, and the check that no training data has seen them.

Task-accuracy and hallucination questions are built only from *held-out* catalog entries: a CWE weakness
or ATT&CK technique is held out when a salted SHA-256 of its id falls in one bucket of ``HOLDOUT_BUCKETS``
(about one in five). The partition is a pure function of the id, so it never changes between runs and
any training-data generator can apply it too (:func:`is_held_out`). :func:`find_contamination` then
verifies, dataset by dataset, that no training record uses a held-out id (in its ``metadata.ids`` or in
its text, e.g. "CWE-1234") or repeats an evaluation prompt.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

HOLDOUT_SALT = "secops-ai-evals-v1"
HOLDOUT_BUCKETS = 5


def is_held_out(identifier: str | int) -> bool:
    """True for ids reserved for evaluation: ``"CWE-79"``, ``79`` (a CWE), ``"T1059.001"``."""
    key = f"CWE-{identifier}" if isinstance(identifier, int) or str(identifier).isdigit() else str(identifier)
    key = key.upper().replace("_", "-")
    return int(hashlib.sha256(f"{HOLDOUT_SALT}:{key}".encode()).hexdigest()[:8], 16) % HOLDOUT_BUCKETS == 0


def held_out_cwes() -> list[Any]:
    """Held-out CWE weaknesses usable for questions: Base/Variant, not deprecated, with a mitigation."""
    from secops_ai.knowledge.cwe import all_cwes

    return [c for c in all_cwes()
            if c.abstraction in ("Base", "Variant") and c.status not in ("Deprecated", "Obsolete")
            and c.description and c.mitigations and is_held_out(c.id)]


def held_out_techniques() -> list[Any]:
    from secops_ai.knowledge.attack import all_techniques

    return [t for t in all_techniques() if is_held_out(t.id)]


_ID_IN_TEXT = re.compile(r"\b(CWE-\d+|T\d{4}(?:\.\d{3})?)\b", re.IGNORECASE)


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


def find_contamination(datasets: Iterable[tuple[str, Iterable[dict[str, Any]]]],
                       eval_prompts: Iterable[str]) -> list[Contamination]:
    """Records (of ``(ref, records)`` pairs) that use a held-out id or contain an evaluation prompt verbatim."""
    prompts = {_norm(p) for p in eval_prompts if len(_norm(p)) >= 20}
    found: list[Contamination] = []
    for ref, records in datasets:
        for line, record in enumerate(records, start=1):
            meta_ids = [str(i) for i in ((record.get("metadata") or {}).get("ids") or [])]
            text = record_text(record)
            used = {i.upper() for i in meta_ids} | {m.upper() for m in _ID_IN_TEXT.findall(text)}
            bad = sorted(i for i in used if (i.startswith("CWE-") or i.startswith("T")) and is_held_out(i))
            if bad:
                found.append(Contamination(ref, line, f"uses held-out id(s) {', '.join(bad[:5])}"))
                continue
            norm = _norm(text)
            hit = next((p for p in prompts if p in norm), None)
            if hit:
                found.append(Contamination(ref, line, f"contains the evaluation prompt {hit[:60]!r}..."))
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
