"""Corpus builder: pseudonymised, tokenised, split, versioned and immutable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from secops_ai.config import Workspace
from secops_ai.data.obfuscation import Pseudonymizer
from secops_ai.training.pretrain.corpus import (
    BPETokenizer,
    CharTokenizer,
    CorpusError,
    CorpusSpec,
    build_corpus,
    load_split,
    load_tokenizer,
    resolve_corpus,
)
from secops_ai.training.pretrain.logs import KINDS, attack_lines, generate_logs


def test_synthetic_logs_are_reproducible_and_cover_every_kind() -> None:
    lines = list(generate_logs(400, seed=1))
    assert lines == list(generate_logs(400, seed=1))
    assert lines != list(generate_logs(400, seed=2))
    assert any("sshd[" in x for x in lines) and any('HTTP/1.1"' in x for x in lines)
    assert any("[UFW " in x for x in lines) and any("[Classification:" in x for x in lines)
    assert set(KINDS) == {"auth", "web", "firewall", "ids"}
    with pytest.raises(ValueError, match="unknown log kind"):
        list(generate_logs(1, kinds=("dns",)))


def test_corpus_is_pseudonymised_tokenised_and_read_only(workspace: Workspace, tmp_path: Path, key: str) -> None:
    imported = tmp_path / "auth.log"
    raw = "Jan  5 09:00:01 bastion sshd[77]: Failed password for mallory from 198.51.100.23 port 4242 ssh2\n"
    imported.write_text(raw * 5)
    before = imported.read_bytes()
    path = build_corpus(workspace.nanogpt_data, CorpusSpec(name="logs", synthetic_lines=300, logs=[imported]),
                        key=key)
    assert path == workspace.nanogpt_data / "logs-v1"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["obfuscation"] == {"pseudonymised": True, "key_id": Pseudonymizer(key).key_id}
    assert meta["lines"] == 305 and meta["tokenizer"]["kind"] == "char"
    tok = load_tokenizer(path)
    text = tok.decode(load_split(path, "train").tolist()) + tok.decode(load_split(path, "val").tolist())
    assert len(load_split(path, "train")) == meta["train_tokens"] and meta["val_tokens"] > 0
    # nothing raw reaches the corpus; the imported lines are there, pseudonymised
    assert "198.51.100.23" not in text and "mallory" not in text and "bastion" not in text
    assert Pseudonymizer(key).text(raw.strip()) in text
    assert imported.read_bytes() == before  # raw input untouched
    # immutable: read-only files and no overwrite
    assert not os.access(path / "train.bin", os.W_OK) or os.geteuid() == 0
    assert (path / "train.bin").stat().st_mode & 0o222 == 0
    with pytest.raises(CorpusError, match="already exists"):
        build_corpus(workspace.nanogpt_data, CorpusSpec(name="logs", synthetic_lines=10), key=key, version=1)
    assert build_corpus(workspace.nanogpt_data, CorpusSpec(name="logs", synthetic_lines=10), key=key).name == "logs-v2"
    assert resolve_corpus(workspace.nanogpt_data, "logs") == workspace.nanogpt_data / "logs-v2"
    assert resolve_corpus(workspace.nanogpt_data, "logs-v1") == path


def test_bad_inputs_fail_clearly_and_write_nothing(workspace: Workspace, tmp_path: Path, key: str) -> None:
    workspace.nanogpt_data.mkdir(parents=True, exist_ok=True)  # exists, so "nothing written" is checked below
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"ok line\nsecond line\n\xff\xfe broken\n")
    with pytest.raises(CorpusError, match=r"bad\.log: line 3 is not valid UTF-8"):
        build_corpus(workspace.nanogpt_data, CorpusSpec(name="logs", logs=[bad]), key=key)
    with pytest.raises(CorpusError, match="needs a key"):
        build_corpus(workspace.nanogpt_data, CorpusSpec(name="logs", synthetic_lines=10))
    with pytest.raises(CorpusError, match="empty"):
        build_corpus(workspace.nanogpt_data, CorpusSpec(name="logs"), key=key)
    with pytest.raises(CorpusError, match="must be lower-case"):
        build_corpus(workspace.nanogpt_data, CorpusSpec(name="Bad Name", synthetic_lines=10), key=key)
    assert list(workspace.nanogpt_data.iterdir()) == []  # no corpus and no temporary folder left behind


def test_char_tokenizer_maps_unseen_characters_to_unk() -> None:
    tok = CharTokenizer(sorted("abc\n"))
    assert tok.vocab_size == 5
    assert tok.decode(tok.encode("ab\nc")) == "ab\nc"
    assert tok.encode("aé") == [tok.stoi["a"], tok.unk_id]


def test_bpe_corpus_uses_the_base_tokenizer_and_keeps_a_copy(workspace: Workspace, smollm2_tokenizer_dir: Path,
                                                            tmp_path: Path, key: str) -> None:
    text = tmp_path / "attacks.txt"
    text.write_text("\n".join(attack_lines()) + "\n")
    path = build_corpus(workspace.nanogpt_data,
                        CorpusSpec(name="logs-bpe", tokenizer="bpe", synthetic_lines=200, texts=[text]),
                        key=key, bpe_tokenizer_dir=smollm2_tokenizer_dir)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["tokenizer"]["kind"] == "bpe" and meta["vocab_size"] == 49152 and meta["dtype"] == "uint16"
    assert (path / "tokenizer" / "tokenizer.json").is_file()
    tok = load_tokenizer(path)
    assert isinstance(tok, BPETokenizer)
    ids = load_split(path, "train")
    assert ids.dtype == np.uint16 and len(ids) == meta["train_tokens"]
    assert "Accepted" in tok.decode(ids[:2000].tolist()) or "HTTP/1.1" in tok.decode(ids[:2000].tolist())
    # BPE packs several characters per token
    decoded = tok.decode(ids.tolist()) + tok.decode(load_split(path, "val").tolist())
    assert "198.51.100" not in decoded and attack_lines()[0] not in decoded  # pseudonymised (the IP)
    assert meta["train_tokens"] + meta["val_tokens"] < 0.8 * len(decoded)
