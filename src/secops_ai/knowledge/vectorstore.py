"""An embedded vector store: numpy for exact search, hnswlib above a size threshold, atomic snapshots on disk.

Vectors are expected L2-normalised (as :func:`secops_ai.knowledge.embeddings.embed` returns them), so the
score is the cosine similarity (inner product). Small stores are searched exactly (a matrix product is
faster than a graph below ~20k vectors and is the ground truth); larger ones use an HNSW graph built
incrementally as vectors arrive.

On disk a store is a folder holding snapshots ``snap-000001/`` (``vectors.npy``, ``meta.jsonl``,
``hnsw.bin`` when built) and a ``CURRENT`` file naming the live one. A snapshot is written to a temporary
folder and renamed, then ``CURRENT`` is replaced atomically, so a crash leaves the previous snapshot live.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from secops_ai.config.atomic import atomic_dir, atomic_write_text

FORMAT_VERSION = 1


@dataclass(frozen=True)
class VectorHit:
    id: str
    score: float
    metadata: dict[str, Any]


class VectorStoreError(ValueError):
    """Bad input (wrong dimension, duplicate id) or an unreadable snapshot; the message says which."""


class VectorStore:
    """Ids + vectors + JSON metadata, searched by inner product.

    ``exact_threshold``: at or below this many vectors, search is exact; above, HNSW (``M``,
    ``ef_construction``, ``ef_search`` as in hnswlib).
    """

    def __init__(
        self,
        dim: int,
        *,
        exact_threshold: int = 20_000,
        M: int = 16,
        ef_construction: int = 100,
        ef_search: int = 128,
        num_threads: int = -1,
    ) -> None:
        if dim < 1:
            raise VectorStoreError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.exact_threshold = exact_threshold
        self.M, self.ef_construction, self.ef_search, self.num_threads = M, ef_construction, ef_search, num_threads
        self._matrix = np.zeros((0, dim), dtype=np.float32)  # capacity grows by doubling
        self._n = 0
        self.ids: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self._pos: dict[str, int] = {}
        self._index: Any = None  # hnswlib.Index covering rows [0, self._indexed)
        self._indexed = 0

    def __len__(self) -> int:
        return self._n

    def __contains__(self, id: object) -> bool:
        return id in self._pos

    @property
    def vectors(self) -> np.ndarray:
        return self._matrix[: self._n]

    def get(self, id: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        i = self._pos.get(id)
        return None if i is None else (self._matrix[i], self.metadata[i])

    # -- writing ----------------------------------------------------------------------------------------------
    def add(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None = None) -> None:
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim == 1:
            vecs = vecs[None, :]
        if vecs.ndim != 2 or vecs.shape[1] != self.dim:
            raise VectorStoreError(f"vectors must have shape (n, {self.dim}), got {tuple(vecs.shape)}")
        if len(ids) != len(vecs):
            raise VectorStoreError(f"{len(ids)} ids for {len(vecs)} vectors")
        metas = list(metadata) if metadata is not None else [{} for _ in ids]
        if len(metas) != len(ids):
            raise VectorStoreError(f"{len(metas)} metadata entries for {len(ids)} ids")
        seen: set[str] = set()
        for i, id in enumerate(ids):
            if not isinstance(id, str) or not id:
                raise VectorStoreError(f"ids[{i}] must be a non-empty string")
            if id in self._pos or id in seen:
                raise VectorStoreError(f"ids[{i}]: id {id!r} is already in the store")
            seen.add(id)
        if not np.isfinite(vecs).all():
            raise VectorStoreError("vectors contain NaN or infinity")
        need = self._n + len(vecs)
        if need > len(self._matrix):
            grown = np.zeros((max(need, 2 * len(self._matrix), 1024), self.dim), dtype=np.float32)
            grown[: self._n] = self._matrix[: self._n]
            self._matrix = grown
        self._matrix[self._n : need] = vecs
        for offset, id in enumerate(ids):
            self._pos[id] = self._n + offset
        self.ids.extend(ids)
        self.metadata.extend(dict(m) for m in metas)
        self._n = need

    # -- searching --------------------------------------------------------------------------------------------
    @property
    def uses_index(self) -> bool:
        return self._n > self.exact_threshold

    def search(
        self,
        query: np.ndarray,
        k: int = 10,
        *,
        exact: bool | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[VectorHit]:
        """The ``k`` nearest vectors to one ``query`` vector, best first (ties broken by insertion order).

        ``where`` keeps only hits whose metadata passes; ``exact`` forces (or forbids) brute force.
        """
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise VectorStoreError(f"query must have {self.dim} dimensions, got {q.shape[0]}")
        if self._n == 0 or k < 1:
            return []
        k = min(k, self._n)
        use_exact = (not self.uses_index) if exact is None else exact
        if use_exact:
            # einsum, not BLAS gemv: a multi-threaded BLAS stalls for milliseconds on a busy CPU (measured 24 ms
            # vs 0.3 ms at 5k vectors once another GEMM had woken its thread pool); one core is plenty here.
            scores = np.einsum("ij,j->i", self.vectors, q)
            if where is not None:
                keep = np.fromiter((where(m) for m in self.metadata), dtype=bool, count=self._n)
                scores = np.where(keep, scores, -np.inf)
            top = np.argpartition(-scores, k - 1)[:k] if k < self._n else np.arange(self._n)
            order = top[np.lexsort((top, -scores[top]))]
            return [VectorHit(self.ids[i], float(scores[i]), self.metadata[i]) for i in order if np.isfinite(scores[i])]
        index = self._ensure_index()
        index.set_ef(max(self.ef_search, k))
        flt = (lambda label: where(self.metadata[label])) if where is not None else None
        try:
            labels, dists = index.knn_query(q[None, :], k=k, filter=flt)
        except RuntimeError:  # fewer than k items pass the filter
            return self.search(q, k, exact=True, where=where)
        return [VectorHit(self.ids[int(i)], float(1.0 - d), self.metadata[int(i)])
                for i, d in zip(labels[0], dists[0], strict=True)]

    def _ensure_index(self) -> Any:
        import hnswlib

        if self._index is None:
            self._index = hnswlib.Index(space="ip", dim=self.dim)
            self._index.init_index(max_elements=max(self._n, 1024), ef_construction=self.ef_construction, M=self.M)
            self._indexed = 0
        if self._indexed < self._n:
            if self._index.get_max_elements() < self._n:
                self._index.resize_index(max(self._n, 2 * self._index.get_max_elements()))
            self._index.add_items(self._matrix[self._indexed : self._n], np.arange(self._indexed, self._n),
                                  num_threads=self.num_threads)
            self._indexed = self._n
        return self._index

    def build_index(self) -> None:
        """Build (or extend) the HNSW graph now rather than at the first search."""
        if self._n:
            self._ensure_index()

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write a new snapshot under ``path`` and make it current; older snapshots are then removed."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        current = current_snapshot(path)
        number = int(current.split("-")[1]) + 1 if current else 1
        name = f"snap-{number:06d}"
        with atomic_dir(path / name) as tmp:
            np.save(tmp / "vectors.npy", self.vectors)
            with (tmp / "meta.jsonl").open("w", encoding="utf-8") as fh:
                for id, meta in zip(self.ids, self.metadata, strict=True):
                    fh.write(json.dumps({"id": id, "metadata": meta}, ensure_ascii=False, sort_keys=True) + "\n")
            if self._index is not None and self._indexed == self._n and self._n:
                self._index.save_index(str(tmp / "hnsw.bin"))
            config = {"format": FORMAT_VERSION, "dim": self.dim, "count": self._n,
                      "exact_threshold": self.exact_threshold, "M": self.M, "ef_construction": self.ef_construction,
                      "ef_search": self.ef_search}
            (tmp / "store.json").write_text(json.dumps(config, indent=2))
        atomic_write_text(path / "CURRENT", name + "\n")
        for old in path.glob("snap-*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        return path / name

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> VectorStore:
        """Open the current snapshot under ``path`` (:class:`VectorStoreError` when there is none or it is bad)."""
        path = Path(path)
        current = current_snapshot(path)
        if current is None:
            raise VectorStoreError(f"{path}: no vector store here (missing CURRENT)")
        snap = path / current
        try:
            config = json.loads((snap / "store.json").read_text())
            vectors = np.load(snap / "vectors.npy")
        except (OSError, ValueError) as exc:
            raise VectorStoreError(f"{snap}: unreadable snapshot: {exc}") from None
        if config.get("format") != FORMAT_VERSION:
            raise VectorStoreError(f"{snap}/store.json: format {config.get('format')} is not {FORMAT_VERSION}")
        params = {k: config[k] for k in ("exact_threshold", "M", "ef_construction", "ef_search") if k in config}
        store = cls(int(config["dim"]), **{**params, **overrides})
        ids, metas = [], []
        with (snap / "meta.jsonl").open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    row = json.loads(line)
                    ids.append(row["id"])
                    metas.append(row["metadata"])
                except (ValueError, KeyError) as exc:
                    raise VectorStoreError(f"{snap}/meta.jsonl:{n}: bad row ({exc})") from None
        if len(ids) != len(vectors) or len(ids) != config["count"]:
            raise VectorStoreError(f"{snap}: {len(ids)} metadata rows, {len(vectors)} vectors, count {config['count']}")
        if len(ids):
            store.add(ids, vectors, metas)
        if (snap / "hnsw.bin").is_file() and len(ids):
            import hnswlib

            index = hnswlib.Index(space="ip", dim=store.dim)
            index.load_index(str(snap / "hnsw.bin"), max_elements=max(len(ids), 1024))
            if index.get_current_count() == len(ids):
                store._index, store._indexed = index, len(ids)
        return store

    @classmethod
    def open(cls, path: Path, dim: int, **kwargs: Any) -> VectorStore:
        """Load the store under ``path`` if one exists, else a new empty one (saved on the first ``save``)."""
        return cls.load(path) if current_snapshot(Path(path)) else cls(dim, **kwargs)


def current_snapshot(path: Path) -> str | None:
    """Name of the live snapshot under ``path`` (``snap-000007``), or ``None`` when there is no store."""
    try:
        name = (path / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return name if name.startswith("snap-") and (path / name).is_dir() else None
