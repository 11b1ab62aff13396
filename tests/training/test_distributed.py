"""The same command under torchrun: 2 CPU processes (gloo), data parallel, same loss as 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry
from tests.conftest import free_port


def run_cli(args: list[str], home: Path, *, torchrun: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "SECOPS_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "secops_ai.cli.main", *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(torchrun),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "secops_ai.cli.main", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(workspace: Workspace, tiny_config, tmp_path: Path) -> None:
    from secops_ai.data.store import DatasetStore

    # 8 examples: both layouts split every epoch into whole global batches of 4
    sft_dataset = DatasetStore(workspace).create("test", "dp-sft", "chat", [
        {"messages": [{"role": "user", "content": f"Which port does service {i} use?"},
                      {"role": "assistant", "content": f"Service {i} listens on port {1000 + i}."}]}
        for i in range(8)]).ref
    # Same global batch: 1 process x 4 examples vs 2 processes x 2 examples. No packing, so every
    # process sees whole examples and the per-example losses line up.
    common = dict(max_steps=4, packing=False, learning_rate=5e-2, lr_scheduler_type="constant")
    one = tmp_path / "one.yaml"
    one.write_text(tiny_config(sft_dataset, per_device_train_batch_size=4, **common).to_yaml())
    two = tmp_path / "two.yaml"
    two.write_text(tiny_config(sft_dataset, per_device_train_batch_size=2, **common).to_yaml())

    single = run_cli(["train", "run", str(one), "--run-id", "dp-1", "--no-progress"], workspace.root)
    assert single.returncode == 0, single.stdout + single.stderr
    multi = run_cli(["train", "run", str(two), "--run-id", "dp-2", "--no-progress"], workspace.root, torchrun=2)
    assert multi.returncode == 0, multi.stdout[-3000:] + multi.stderr[-5000:]

    run1, run2 = workspace.models / "builtin" / "dp-1", workspace.models / "builtin" / "dp-2"
    assert json.loads((run2 / "run.json").read_text())["world_size"] == 2
    l1, l2 = losses(run1), losses(run2)
    assert len(l1) == len(l2) == 4
    for a, b in zip(l1, l2, strict=True):  # the same examples in every global batch, the same loss
        assert abs(a - b) <= 0.005 * a, (l1, l2)
    # A random tiny model's loss sits near ln(vocab) whatever it learns, so also compare what training
    # changed: the LoRA weights (B starts at zero) must have moved, and moved the same way.
    w1, w2 = load_file(run1 / "adapter_model.safetensors"), load_file(run2 / "adapter_model.safetensors")
    diff = sum((w1[k] - w2[k]).norm() ** 2 for k in w1) ** 0.5
    norm = sum(w1[k].norm() ** 2 for k in w1) ** 0.5
    assert float(sum(w1[k].norm() for k in w1 if "lora_B" in k)) > 0
    assert diff / norm < 0.05, float(diff / norm)
    # one finished run per command: rank 1 registers nothing of its own
    names = {r.name for r in Registry(Settings(home=workspace.root)).list()}
    assert names == {"builtin/dp-1", "builtin/dp-2"}
