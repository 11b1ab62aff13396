"""A real tiny run, trained once per session and copied into each test's workspace under new run ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from secops_ai.config import Settings, Workspace


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    from secops_ai.data.store import DatasetStore
    from secops_ai.training import RunConfig, train

    home = tmp_path_factory.mktemp("registry-src") / "home"
    settings = Settings(home=home)
    ref = DatasetStore(settings.workspace.ensure()).create("test", "reg-sft", "chat", [
        {"messages": [{"role": "user", "content": f"Question {i}?"},
                      {"role": "assistant", "content": f"Answer {i}."}]} for i in range(4)]).ref
    config = RunConfig.from_dict(dict(model_name_or_path=str(tiny_llama_dir), dataset=ref, lora_rank=4, max_steps=2,
                                      per_device_train_batch_size=2, learning_rate=5e-2, cutoff_len=64, seed=3))
    return train(config, settings, run_id="template", progress=False).run_dir


@pytest.fixture
def add_run(workspace: Workspace, trained_run: Path):
    """``add_run("run-a")`` -> name of a finished run copied into the workspace as builtin/run-a."""

    def add(run_id: str) -> str:
        target = workspace.models / "builtin" / run_id
        shutil.copytree(trained_run, target)
        info = json.loads((target / "run.json").read_text())
        info.update(name=f"builtin/{run_id}", run_id=run_id)
        (target / "run.json").write_text(json.dumps(info))
        return f"builtin/{run_id}"

    return add
