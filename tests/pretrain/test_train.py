"""The training loop: schedule, learning, periodic eval + checkpoint, and resume == uninterrupted run."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from secops_ai.config import Workspace
from secops_ai.training.pretrain.train import get_lr, load_checkpoint, train


def test_lr_warms_up_then_decays_by_cosine_to_min(tiny: Any) -> None:
    cfg = tiny("x", learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=110)
    lrs = [get_lr(i, cfg) for i in range(130)]
    assert lrs[0] == pytest.approx(1e-3 / 11) and lrs[9] == pytest.approx(1e-3 * 10 / 11)
    assert lrs[10] == pytest.approx(1e-3)  # peak right after warmup
    assert lrs[60] == pytest.approx(1e-4 + 0.5 * 0.9e-3)  # halfway down the cosine
    assert lrs[110] == pytest.approx(1e-4) and lrs[129] == pytest.approx(1e-4)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    flat = tiny("x", decay_lr=False)
    assert get_lr(0, flat) == get_lr(50, flat) == flat.learning_rate


def test_training_learns_logs_evaluates_and_checkpoints(workspace: Workspace, log_corpus: Path, tiny: Any) -> None:
    logged: list[dict] = []
    result = train(tiny(log_corpus.name, max_iters=40, lr_decay_iters=40, run_id="r1"), workspace, progress=False,
                   on_log=logged.append)
    assert result.iters == 40 and result.run_dir.name == "r1"
    evals = [r for r in logged if "val_loss" in r]
    assert [r["iter"] for r in evals] == [10, 20, 30, 40]
    # char-level logs: chance is ln(vocab) ≈ 4.4 nats; 40 steps already learn the log alphabet
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] < math.log(85)
    assert result.val_loss == pytest.approx(evals[-1]["val_loss"], abs=1e-6) and result.ms_per_iter > 0
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows == logged
    model, ckpt = load_checkpoint(result.run_dir)
    assert ckpt["iter_num"] == 40 and ckpt["tokens_seen"] == 40 * 8 * 32 and ckpt["corpus"] == "logs-v1"
    assert model.config.vocab_size == json.loads((log_corpus / "meta.json").read_text())["vocab_size"]
    with pytest.raises(FileExistsError, match="already exists"):
        train(tiny(log_corpus.name, run_id="r1"), workspace, progress=False)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny(log_corpus.name, run_id="nope"), workspace, resume=True, progress=False)


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["iter"], r["loss"]) for r in rows if "loss" in r]


def test_resume_continues_exactly_like_an_uninterrupted_run(workspace: Workspace, log_corpus: Path,
                                                            tiny: Any) -> None:
    """Dropout, gradient accumulation and random batches all depend on saved state: any gap shows."""
    common = {"lr_decay_iters": 12, "warmup_iters": 3, "eval_interval": 4, "gradient_accumulation_steps": 2,
              "model": {"dropout": 0.1}}
    full = train(tiny(log_corpus.name, run_id="full", max_iters=12, **common), workspace, progress=False)
    # the same run stopped after 8 iterations (its last checkpoint), then resumed to 12
    first = train(tiny(log_corpus.name, run_id="split", max_iters=8, **common), workspace, progress=False)
    assert first.iters == 8
    resumed = train(tiny(log_corpus.name, run_id="split", max_iters=12, **common), workspace, resume=True,
                    progress=False)
    assert resumed.iters == 12
    assert _losses(resumed.run_dir) == _losses(full.run_dir)  # per-iteration losses, all 12, bit for bit
    a, b = load_checkpoint(full.run_dir)[0].state_dict(), load_checkpoint(resumed.run_dir)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.val_loss == full.val_loss
    # the model section cannot change on resume
    with pytest.raises(ValueError, match="model section differs"):
        train(tiny(log_corpus.name, run_id="split", max_iters=16, **{**common, "model": {"n_embd": 64}}),
              workspace, resume=True, progress=False)


def test_shakespeare_parity_config_learns_on_a_slice(workspace: Workspace, shared_data: Path, tmp_path: Path) -> None:
    """The shipped nanoGPT recipe (configs/pretrain/shakespeare-char.yaml), 30 iterations on 50k characters."""
    from secops_ai.training.pretrain.config import load_config
    from secops_ai.training.pretrain.corpus import CorpusSpec, build_corpus

    text = tmp_path / "slice.txt"
    text.write_text((shared_data / "tinyshakespeare" / "input.txt").read_text()[:50_000])
    corpus = build_corpus(workspace.nanogpt_data, CorpusSpec(name="shakespeare-char", texts=[text], obfuscate=False))
    config = Path(__file__).resolve().parents[2] / "configs" / "pretrain" / "shakespeare-char.yaml"
    cfg = load_config(config, ["max_iters=30", "eval_interval=30", "eval_iters=5", "device=cpu"])
    assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.block_size, cfg.batch_size) == (4, 128, 64, 12)
    result = train(cfg, workspace, progress=False)
    assert corpus.name == "shakespeare-char-v1" and result.iters == 30
    # from chance (ln 60 ≈ 4.1) to the unigram level in 30 steps; 2000 steps reach 1.88 (bench/pretrain.py)
    assert result.val_loss < 3.4
