"""Other providers: LLaMA-Factory job files (and a clear message without its CLI), unsloth without CUDA."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry
from secops_ai.training import TrainingError, train
from secops_ai.training.providers.llamafactory import write_job
from secops_ai.training.runner import work_root


def test_llamafactory_writes_its_job_and_says_what_is_missing(workspace: Workspace, sft_dataset: str, tiny_config,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a machine without LLaMA-Factory: none linked next to the interpreter (`make setup` links one), none on PATH
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "no-venv"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    settings = Settings(home=workspace.root)
    with pytest.raises(TrainingError, match="llamafactory-cli` is not installed") as err:
        train(tiny_config(sft_dataset, provider="llamafactory"), settings, run_id="lf-1")
    job = work_root(settings) / "lf-1" / "llamafactory"
    assert str(job) in str(err.value)
    info = json.loads((job / "dataset_info.json").read_text())
    entry = info["sec-sft"]
    assert entry["formatting"] == "sharegpt" and entry["tags"]["assistant_tag"] == "assistant"
    rows = [json.loads(line) for line in (job / entry["file_name"]).read_text().splitlines()]
    assert len(rows) == 6 and rows[1]["system"] == "You are a security assistant."
    assert rows[1]["messages"][-1] == {"role": "assistant", "content": "CWE-79."}
    cfg = yaml.safe_load((job / "train.yaml").read_text())
    assert (cfg["stage"], cfg["finetuning_type"], cfg["lora_rank"], cfg["dataset"]) == ("sft", "lora", 4, "sec-sft")
    assert cfg["dataset_dir"] == str(job) and cfg["max_steps"] == 4
    assert not (workspace.models / "llamafactory").exists() and Registry(settings).list() == []


def test_llamafactory_cli_setting_that_points_nowhere_is_named(workspace: Workspace, sft_dataset: str, tiny_config,
                                                               tmp_path: Path) -> None:
    settings = Settings(home=workspace.root, llamafactory_cli=str(tmp_path / "missing" / "llamafactory-cli"))
    with pytest.raises(TrainingError, match=r"SECOPS_LLAMAFACTORY_CLI=.*missing/llamafactory-cli: no executable"):
        train(tiny_config(sft_dataset, provider="llamafactory"), settings, run_id="lf-2")
    assert not (workspace.models / "llamafactory").exists() and Registry(settings).list() == []


def test_llamafactory_preference_job_uses_ranking(workspace: Workspace, dpo_dataset: str, tiny_config,
                                                  tmp_path: Path) -> None:
    job = write_job(tiny_config(dpo_dataset, stage="dpo"), Settings(home=workspace.root), tmp_path / "job",
                    output_dir=tmp_path / "out")
    entry = json.loads((job.parent / "dataset_info.json").read_text())["sec-dpo"]
    assert entry["ranking"] is True
    row = json.loads((job.parent / entry["file_name"]).read_text().splitlines()[0])
    assert row["chosen"]["role"] == "assistant" and row["messages"][0]["role"] == "user"
    assert yaml.safe_load(job.read_text())["pref_beta"] == 0.1


def test_unsloth_without_cuda_says_so(workspace: Workspace, sft_dataset: str, tiny_config) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this check is about machines without CUDA")
    with pytest.raises(TrainingError, match="CUDA GPU"):
        train(tiny_config(sft_dataset, provider="unsloth"), Settings(home=workspace.root))
    assert not list(workspace.models.glob("unsloth/*"))


def test_train_export_writes_a_llamafactory_job(workspace: Workspace, sft_dataset: str, tiny_config,
                                                tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from secops_ai.cli.main import app

    cfg = tmp_path / "run.yaml"
    cfg.write_text(tiny_config(sft_dataset).to_yaml())
    res = CliRunner().invoke(app, ["train", "export", str(cfg), str(tmp_path / "job"), "lora_rank=16"])
    assert res.exit_code == 0, res.output
    train_yaml = yaml.safe_load((tmp_path / "job" / "train.yaml").read_text())
    assert train_yaml["lora_rank"] == 16 and train_yaml["output_dir"] == str(tmp_path / "job" / "output")
    assert (tmp_path / "job" / "dataset_info.json").is_file()
