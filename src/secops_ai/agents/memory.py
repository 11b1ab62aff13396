"""Agent memory: a short-term scratchpad, long-term vector memory, and a critique cache.

- :class:`ShortTermMemory` keeps a run's entries and renders them into a context that fits a budget. The
  truncation is a pure function of the entries and the budget, so the same history always yields the same
  context (reruns and preference data stay reproducible).
- :class:`LongTermMemory` stores remediation snippets and past actions with provenance (source, run id,
  time) in a :class:`~secops_ai.knowledge.vectorstore.VectorStore` under ``$SECOPS_HOME/storage/memory``,
  embedded with all-MiniLM-L6-v2 (:func:`secops_ai.knowledge.embeddings.embed`).
- :class:`CritiqueCache` maps a content hash (the critique prompt and inputs) to the critique produced, so a
  rerun reuses the same critique instead of sampling a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from secops_ai.knowledge.vectorstore import VectorStore, current_snapshot

MemoryKind = Literal["remediation", "action", "note"]
Embedder = Callable[[list[str]], np.ndarray]
EMBEDDING_DIM = 384


def content_hash(*parts: Any) -> str:
    """sha256 of ``parts`` as canonical JSON: equal inputs, equal key (key order in dicts doesn't matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# -- short-term ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScratchEntry:
    kind: str  # "task", "plan", "action", "observation", "critique", ...
    content: str
    step: int

    def render(self) -> str:
        return f"[{self.step}] {self.kind}: {self.content}"


def _clip_middle(text: str, limit: int, count: Callable[[str], int]) -> str:
    """Keep the head and tail of ``text`` so that ``count(result) <= limit`` (binary search on characters)."""
    if count(text) <= limit:
        return text
    lo, hi = 0, len(text)
    best = ""
    while lo <= hi:
        keep = (lo + hi) // 2
        head, tail = keep * 2 // 3, keep - keep * 2 // 3
        candidate = f"{text[:head]} [...{len(text) - keep} chars cut...] {text[len(text) - tail:] if tail else ''}"
        if count(candidate) <= limit:
            best, lo = candidate, keep + 1
        else:
            hi = keep - 1
    return best


class ShortTermMemory:
    """A run's scratchpad: pinned first entries (the task, the plan) plus as many recent entries as fit.

    ``budget`` is measured by ``count`` (characters by default; pass ``lambda s: len(tok.encode(s))`` for
    tokens). Each entry is first clipped to ``entry_budget``; older entries that don't fit are replaced by
    one marker line saying how many were left out.
    """

    def __init__(
        self,
        budget: int = 6000,
        *,
        entry_budget: int | None = None,
        pinned: int = 1,
        count: Callable[[str], int] = len,
    ) -> None:
        if budget < 64:
            raise ValueError(f"short-term memory budget must be at least 64, got {budget}")
        self.budget = budget
        self.entry_budget = entry_budget or max(64, budget // 4)
        self.pinned = pinned
        self.count = count
        self.entries: list[ScratchEntry] = []

    def add(self, kind: str, content: str) -> ScratchEntry:
        entry = ScratchEntry(kind, content, len(self.entries))
        self.entries.append(entry)
        return entry

    def __len__(self) -> int:
        return len(self.entries)

    def window(self) -> tuple[list[str], int]:
        """(rendered lines that fit, how many entries were omitted)."""
        lines = [_clip_middle(e.render(), self.entry_budget, self.count) for e in self.entries]
        head = lines[: self.pinned]
        used = sum(self.count(x) + 1 for x in head)
        marker_cost = self.count("[... 999999 earlier entries omitted ...]") + 1
        tail: list[str] = []
        for line in reversed(lines[self.pinned :]):
            cost = self.count(line) + 1
            if used + cost + marker_cost > self.budget:
                break
            tail.append(line)
            used += cost
        tail.reverse()
        omitted = len(lines) - len(head) - len(tail)
        return head + ([f"[... {omitted} earlier entries omitted ...]"] if omitted else []) + tail, omitted

    def render(self) -> str:
        """The context string: deterministic in (entries, budget, entry_budget, pinned, count)."""
        lines, _ = self.window()
        return "\n".join(lines)

    def digest(self) -> str:
        return content_hash(self.render())


# -- long-term ----------------------------------------------------------------------------------------------
class MemoryRecord(BaseModel):
    id: str
    text: str
    kind: MemoryKind
    source: str = Field(description="Where it came from: a tool, a dataset, 'user', a file ...")
    run_id: str | None = None
    ts: float = Field(description="Unix time it was stored.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class MemoryHit(BaseModel):
    record: MemoryRecord
    score: float


def default_embedder() -> Embedder:
    from secops_ai.knowledge.embeddings import embed

    return embed


class LongTermMemory:
    """Vector memory of remediation snippets and past actions, persisted under ``path``.

    The same (kind, text) is stored once: adding it again returns the first record (with its provenance).
    Every add is saved as a new atomic snapshot, so a crash never loses or half-writes earlier memories.
    Writers are serialised (a thread lock, and an ``flock`` across processes), and each reader and writer
    first reloads a snapshot another process saved, so a server and a CLI can share one memory.
    """

    def __init__(self, path: Path, *, embedder: Embedder | None = None, dim: int = EMBEDDING_DIM,
                 exact_threshold: int = 20_000) -> None:
        self.path = Path(path)
        self._embed = embedder
        self._dim, self._exact_threshold = dim, exact_threshold
        self._lock = threading.Lock()
        self._snapshot: str | None = None
        self.store = VectorStore(dim, exact_threshold=exact_threshold)
        self._refresh()

    def _refresh(self) -> None:
        """Reload when another writer (a CLI next to the server) saved a newer snapshot."""
        current = current_snapshot(self.path)
        if current is None or current == self._snapshot:
            return
        store = VectorStore.load(self.path, exact_threshold=self._exact_threshold)
        if store.dim != self._dim:
            raise ValueError(f"{self.path}: stored vectors have {store.dim} dimensions, the embedder gives {self._dim}")
        self.store, self._snapshot = store, current

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time: a thread lock in this process, an flock across processes."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.path / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @classmethod
    def open(cls, memory_dir: Path, **kwargs: Any) -> LongTermMemory:
        """The long-term memory kept under a workspace's memory folder (``$SECOPS_HOME/storage/memory``).

        Opening is cheap: the embedding model loads on the first add or search.
        """
        return cls(Path(memory_dir) / "long_term", **kwargs)

    @classmethod
    def from_settings(cls, settings: Any = None, **kwargs: Any) -> LongTermMemory:
        if settings is None:
            from secops_ai.config import get_settings

            settings = get_settings()
        return cls.open(settings.workspace.memory, **kwargs)

    @property
    def embedder(self) -> Embedder:
        if self._embed is None:
            self._embed = default_embedder()
        return self._embed

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self.store)

    def add(self, text: str, *, kind: MemoryKind, source: str, run_id: str | None = None,
            metadata: dict[str, Any] | None = None, ts: float | None = None) -> MemoryRecord:
        return self.add_many([{"text": text, "kind": kind, "source": source, "run_id": run_id,
                               "metadata": metadata or {}, "ts": ts}])[0]

    def add_many(self, items: Sequence[dict[str, Any]]) -> list[MemoryRecord]:
        """Store several memories with one embedding batch and one snapshot."""
        records = []
        for i, item in enumerate(items):
            text = str(item.get("text") or "").strip()
            if not text:
                raise ValueError(f"items[{i}].text: a memory needs non-empty text")
            records.append(MemoryRecord(
                id=content_hash(item["kind"], text)[:32], text=text, kind=item["kind"], source=item["source"],
                run_id=item.get("run_id"), ts=item.get("ts") or time.time(), metadata=item.get("metadata") or {},
            ))
        with self._writing():
            self._refresh()
            out, new = [], []
            for rec in records:
                existing = self.store.get(rec.id)
                if existing is not None:
                    out.append(MemoryRecord.model_validate(existing[1]))
                elif rec.id not in {r.id for r in new}:
                    new.append(rec)
                    out.append(rec)
                else:
                    out.append(next(r for r in new if r.id == rec.id))
            if new:
                vectors = self.embedder([r.text for r in new])
                try:
                    self.store.add([r.id for r in new], vectors, [r.model_dump() for r in new])
                    self._snapshot = self.store.save(self.path).name
                except BaseException:
                    self._snapshot = None  # drop the unsaved additions: reload what is on disk
                    self.store = VectorStore(self._dim, exact_threshold=self._exact_threshold)
                    self._refresh()
                    raise
        return out

    def search(self, query: str, k: int = 5, *, kind: MemoryKind | None = None,
               min_score: float | None = None) -> list[MemoryHit]:
        if not query.strip() or len(self) == 0:
            return []
        vector = self.embedder([query])[0]
        where = (lambda m: m.get("kind") == kind) if kind else None
        with self._lock:
            hits = self.store.search(vector, k, where=where)
        return [MemoryHit(record=MemoryRecord.model_validate(h.metadata), score=h.score)
                for h in hits if min_score is None or h.score >= min_score]


# -- critique cache -----------------------------------------------------------------------------------------
class CritiqueCache:
    """Content-hash → critique (a JSON object). Append-only JSONL when given a path, flushed per entry.

    A torn last line (a crash mid-write) is ignored on load; the first value stored for a key wins.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._torn = False  # the file ends mid-line: start the next entry on a fresh line
        if self.path is not None and self.path.is_file():
            raw = self.path.read_bytes()
            self._torn = bool(raw) and not raw.endswith(b"\n")
            for line in raw.decode("utf-8", "replace").splitlines():
                try:
                    row = json.loads(line)
                    self._data.setdefault(row["key"], row["value"])
                except (ValueError, KeyError, TypeError):
                    continue

    @classmethod
    def from_settings(cls, settings: Any = None) -> CritiqueCache:
        if settings is None:
            from secops_ai.config import get_settings

            settings = get_settings()
        return cls(settings.workspace.memory / "critiques.jsonl")

    key = staticmethod(content_hash)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str) -> dict[str, Any] | None:
        return self._data.get(key)

    def put(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Store ``value`` unless ``key`` is known; returns the value now cached for ``key``."""
        with self._lock:
            if key in self._data:
                return self._data[key]
            self._data[key] = value
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    if self._torn:
                        fh.write("\n")
                        self._torn = False
                    fh.write(json.dumps({"key": key, "value": value}, sort_keys=True, ensure_ascii=False) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            return value

