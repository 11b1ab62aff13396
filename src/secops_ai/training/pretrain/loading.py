"""Find a pretrained model by name: an export ``models/nanogpt/<run-id>/``, a training run, or a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops_ai.config import Workspace
from secops_ai.training.pretrain.corpus import BPETokenizer, CharTokenizer, Tokenizer, read_meta
from secops_ai.training.pretrain.export import CORPUS_META, NATIVE, PROVIDER, load_export
from secops_ai.training.pretrain.model import GPT
from secops_ai.training.pretrain.train import CKPT, load_checkpoint, runs_dir


@dataclass
class LoadedModel:
    model: GPT
    tokenizer: Tokenizer
    corpus_meta: dict[str, Any]
    source: Path


def load_model(workspace: Workspace, ref: str, device: str = "cpu") -> LoadedModel:
    """``ref``: a run id (export first, then the training run's checkpoint) or a path to either folder."""
    candidates = [Path(ref)] if Path(ref).is_dir() else []
    candidates += [workspace.models / PROVIDER / ref, runs_dir(workspace) / ref]
    for folder in candidates:
        if (folder / NATIVE).is_file() and (folder / CORPUS_META).is_file():
            model, meta = load_export(folder, device)
            tok: Tokenizer = (CharTokenizer(meta["tokenizer"]["chars"]) if meta["tokenizer"]["kind"] == "char"
                              else BPETokenizer(folder))
            return LoadedModel(model, tok, meta, folder)
        if (folder / CKPT).is_file():
            model, ckpt = load_checkpoint(folder, device)
            corpus_dir = workspace.nanogpt_data / ckpt["corpus"]
            meta = read_meta(corpus_dir)
            tok = (CharTokenizer(meta["tokenizer"]["chars"]) if meta["tokenizer"]["kind"] == "char"
                   else BPETokenizer(corpus_dir / "tokenizer"))
            return LoadedModel(model, tok, meta, folder)
    raise FileNotFoundError(
        f"no pretrained model {ref!r}: looked in {', '.join(str(c) for c in candidates)}"
    )
