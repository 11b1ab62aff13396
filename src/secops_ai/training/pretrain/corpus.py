"""Pretraining corpora: ``data/nanogpt/<name>-v<N>/{train,val}.bin`` + ``meta.json``, immutable once written.

A corpus is built from synthetic security logs (``logs.py``), imported log files and plain text files.
Log lines are pseudonymised with the dataset store's :class:`~secops_ai.data.obfuscation.Pseudonymizer`
before anything is tokenised, so no raw IP, host, user or secret reaches the model. Tokens are stored as
nanoGPT does (a flat ``uint16`` array per split, read with ``np.memmap``), char-level or with the base
model's BPE tokenizer, which is copied into the corpus so it stays readable when the base changes.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from secops_ai.config.atomic import atomic_dir, make_read_only
from secops_ai.data.store import hash_file
from secops_ai.training.pretrain.logs import KINDS, generate_logs

META_FORMAT = "secops-ai/nanogpt-corpus/1"
UNK = "<unk>"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


class CorpusError(ValueError):
    """Bad corpus input or request; the message names the file, line or field."""


class CorpusSpec(BaseModel):
    """What goes into one corpus version."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Corpus name; the folder is data/nanogpt/<name>-v<N>.")
    tokenizer: Literal["char", "bpe"] = "char"
    synthetic_lines: int = Field(default=0, ge=0, description="Benign synthetic log lines to generate.")
    synthetic_kinds: tuple[str, ...] = KINDS
    seed: int = 0
    logs: list[Path] = Field(default_factory=list, description="Imported log files (one event a line).")
    texts: list[Path] = Field(default_factory=list, description="Plain text files, taken as they are.")
    obfuscate: bool = Field(default=True, description="Pseudonymise log lines (texts too) before tokenising.")
    val_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)


class CharTokenizer:
    """One id per character seen in the corpus, plus ``<unk>`` for characters it never saw."""

    kind = "char"

    def __init__(self, chars: list[str]) -> None:
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.unk_id = len(chars)
        self.vocab_size = len(chars) + 1

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(c, self.unk_id) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] if i < len(self.chars) else UNK for i in ids)


class BPETokenizer:
    """The base model's tokenizer (a Hugging Face tokenizer folder), without special tokens added."""

    kind = "bpe"

    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer

        self.folder = folder
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.vocab_size = len(self.tok)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids))


Tokenizer = CharTokenizer | BPETokenizer


def load_tokenizer(corpus_dir: Path) -> Tokenizer:
    meta = read_meta(corpus_dir)
    tk = meta["tokenizer"]
    if tk["kind"] == "char":
        return CharTokenizer(tk["chars"])
    return BPETokenizer(corpus_dir / "tokenizer")


def read_meta(corpus_dir: Path) -> dict[str, Any]:
    path = corpus_dir / "meta.json"
    if not path.is_file():
        raise CorpusError(f"{corpus_dir} is not a corpus (no meta.json); build one with `secops-ai pretrain corpus`")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != META_FORMAT:
        raise CorpusError(f"{path}: unknown corpus format {meta.get('format')!r} (expected {META_FORMAT})")
    return meta


def resolve_corpus(nanogpt_dir: Path, ref: str) -> Path:
    """``name-vN`` → that folder; a bare ``name`` → its newest version."""
    if (nanogpt_dir / ref).is_dir():
        return nanogpt_dir / ref
    versions = list_versions(nanogpt_dir, ref)
    if not versions:
        raise CorpusError(f"no corpus {ref!r} under {nanogpt_dir}")
    return nanogpt_dir / f"{ref}-v{versions[-1]}"


def list_versions(nanogpt_dir: Path, name: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(name)}-v(\d+)$")
    if not nanogpt_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in nanogpt_dir.iterdir() if p.is_dir() and (m := pattern.match(p.name)))


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CorpusError(f"{path}: cannot read: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CorpusError(f"{path}: line {line} is not valid UTF-8") from None
    return text.splitlines()


def collect_text(spec: CorpusSpec, obfuscate: Callable[[str], str] | None) -> str:
    """The corpus text: synthetic lines, then each log file, then each text file, one line per line."""
    lines: list[str] = list(generate_logs(spec.synthetic_lines, seed=spec.seed, kinds=spec.synthetic_kinds))
    for path in spec.logs:
        lines.extend(line for line in _read_lines(path) if line.strip())
    for path in spec.texts:
        lines.extend(_read_lines(path))
    if not lines:
        raise CorpusError("the corpus is empty: give synthetic_lines > 0, a log file or a text file")
    if obfuscate is not None:
        lines = [obfuscate(line) for line in lines]
    return "\n".join(lines) + "\n"


def build_corpus(
    nanogpt_dir: Path,
    spec: CorpusSpec,
    *,
    key: str | None = None,
    version: int | None = None,
    bpe_tokenizer_dir: Path | None = None,
) -> Path:
    """Write ``<nanogpt_dir>/<name>-v<version>/`` (next free version when None) and return it.

    ``key`` is the pseudonymisation key (required when ``spec.obfuscate``; only its key id is stored).
    An existing version is never overwritten: asking for one raises :class:`CorpusError`.
    """
    version, final = _new_version(nanogpt_dir, spec.name, version)
    obfuscate, key_id = _pseudonymizer(spec, key)
    if spec.tokenizer == "bpe" and bpe_tokenizer_dir is None:
        raise CorpusError("tokenizer 'bpe' needs the base model's tokenizer folder")

    text = collect_text(spec, obfuscate)
    tokenizer, tok_meta = _tokenizer(spec, text, bpe_tokenizer_dir)
    dtype = np.uint16 if tokenizer.vocab_size <= 65536 else np.uint32
    train_ids, val_ids = _split(text, tokenizer, spec.val_fraction, dtype)

    with atomic_dir(final) as tmp:
        train_ids.tofile(tmp / "train.bin")
        val_ids.tofile(tmp / "val.bin")
        if spec.tokenizer == "bpe":
            assert bpe_tokenizer_dir is not None
            (tmp / "tokenizer").mkdir()
            for name in _TOKENIZER_FILES:
                if (bpe_tokenizer_dir / name).is_file():
                    shutil.copy2(bpe_tokenizer_dir / name, tmp / "tokenizer" / name)
        meta = {
            "format": META_FORMAT,
            "name": spec.name,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tokenizer": tok_meta,
            "vocab_size": tokenizer.vocab_size,
            "dtype": np.dtype(dtype).name,
            "train_tokens": len(train_ids),
            "val_tokens": len(val_ids),
            "lines": text.count("\n"),
            "obfuscation": {"pseudonymised": spec.obfuscate, "key_id": key_id},
            "sources": {
                "synthetic": {"lines": spec.synthetic_lines, "seed": spec.seed, "kinds": list(spec.synthetic_kinds)},
                "logs": [{"path": str(p), "sha256": _sha256(p)} for p in spec.logs],
                "texts": [{"path": str(p), "sha256": _sha256(p)} for p in spec.texts],
            },
            "sha256": {"train.bin": _sha256(tmp / "train.bin"), "val.bin": _sha256(tmp / "val.bin")},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        make_read_only(tmp)
    return final


def _new_version(nanogpt_dir: Path, name: str, version: int | None) -> tuple[int, Path]:
    """The version to write (next free when None) and its folder, which must not exist yet."""
    if not _NAME.match(name):
        raise CorpusError(f"corpus name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
    if version is None:
        existing = list_versions(nanogpt_dir, name)
        version = (existing[-1] + 1) if existing else 1
    final = nanogpt_dir / f"{name}-v{version}"
    if final.exists():
        raise CorpusError(f"corpus {final.name} already exists at {final}; corpora are immutable, build a new version")
    return version, final


def _pseudonymizer(spec: CorpusSpec, key: str | None) -> tuple[Callable[[str], str] | None, str | None]:
    """(line pseudonymiser, key id) when the spec asks for obfuscation, else (None, None)."""
    if not spec.obfuscate:
        return None, None
    if not key:
        raise CorpusError("obfuscation needs a key (--key or SECOPS_OBFUSCATION_KEY), or pass --no-obfuscate")
    from secops_ai.data.obfuscation import Pseudonymizer

    pseudo = Pseudonymizer(key)
    return pseudo.text, pseudo.key_id


def _tokenizer(spec: CorpusSpec, text: str, bpe_tokenizer_dir: Path | None) -> tuple[Tokenizer, dict[str, Any]]:
    """The corpus' tokenizer and how ``meta.json`` describes it (a char vocabulary is the text's characters)."""
    if spec.tokenizer == "char":
        chars = CharTokenizer(sorted(set(text)))
        return chars, {"kind": "char", "chars": chars.chars, "unk": UNK}
    assert bpe_tokenizer_dir is not None
    bpe = BPETokenizer(bpe_tokenizer_dir)
    return bpe, {"kind": "bpe", "source": str(bpe_tokenizer_dir), "eos_token": bpe.tok.eos_token}


def _split(text: str, tokenizer: Tokenizer, val_fraction: float, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous split at a line boundary, as nanoGPT splits shakespeare: train first, val the tail."""
    cut = text.rfind("\n", 0, int(len(text) * (1 - val_fraction))) + 1 or int(len(text) * (1 - val_fraction))
    train_ids = np.array(tokenizer.encode(text[:cut]), dtype=dtype)
    val_ids = np.array(tokenizer.encode(text[cut:]), dtype=dtype)
    if len(val_ids) < 2 or len(train_ids) < 2:
        raise CorpusError(f"corpus too small to split ({len(train_ids)} train, {len(val_ids)} val tokens)")
    return train_ids, val_ids


def _sha256(path: Path) -> str:
    return hash_file(path).sha256


def load_split(corpus_dir: Path, split: Literal["train", "val"]) -> np.memmap:
    meta = read_meta(corpus_dir)
    return np.memmap(corpus_dir / f"{split}.bin", dtype=np.dtype(meta["dtype"]), mode="r")
