"""DDP under torchrun: two gloo CPU processes train one model and checkpoint both samplers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from secops_ai.config import Workspace
from secops_ai.training.pretrain.train import load_checkpoint, runs_dir


@pytest.mark.slow
def test_torchrun_two_processes(workspace: Workspace, log_corpus: Path) -> None:
    cli = Path(sys.executable).parent / "secops-ai"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(cli),
           "pretrain", "train", f"corpus={log_corpus.name}", "run_id=ddp", "model.n_layer=1", "model.n_head=2",
           "model.n_embd=32", "model.block_size=32", "batch_size=4", "gradient_accumulation_steps=2",
           "max_iters=6", "lr_decay_iters=6", "warmup_iters=1", "eval_interval=3", "eval_iters=2", "device=cpu",
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("trained ddp") == 1  # only rank 0 reports and exports
    model, ckpt = load_checkpoint(runs_dir(workspace) / "ddp")
    assert ckpt["world_size"] == 2 and ckpt["iter_num"] == 6
    assert ckpt["tokens_seen"] == 6 * 2 * 4 * 32  # accumulation split over the two ranks
    samplers = [s["sampler"] for s in ckpt["rng"]]
    assert len(samplers) == 2 and not torch.equal(samplers[0], samplers[1])  # each rank drew its own batches
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert (workspace.models / "nanogpt" / "ddp" / "config.json").is_file()
