"""Run configs: LLaMA-Factory key names, strict validation naming the key, key=value overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.training.config import ConfigError, RunConfig

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_yaml_with_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "stage: sft\ndataset: starter/security-sft@1\nlora_rank: 8\nlearning_rate: 1.0e-4\n")
    cfg = RunConfig.from_yaml(path, overrides=["lora_rank=16", "max_steps=5", "stage=dpo", "packing=false"])
    assert (cfg.lora_rank, cfg.max_steps, cfg.stage, cfg.packing) == (16, 5, "dpo", False)
    assert cfg.learning_rate == 1e-4
    assert cfg.effective_lora_alpha == 32  # 2 * rank unless given


def test_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "dataset: starter/security-sft@1\nlora_rnak: 8\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.from_yaml(path)
    assert "lora_rnak" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(("override", "key"), [
    ("lora_rank=0", "lora_rank"),
    ("learning_rate=-1", "learning_rate"),
    ("stage=ppo", "stage"),
    ("dataset=security-sft", "dataset"),
    ("quantization_bit=3", "quantization_bit"),
    ("max_steps=0", "max_steps"),
    ("lora_dropout=1.5", "lora_dropout"),
])
def test_impossible_values_name_the_key(tmp_path: Path, override: str, key: str) -> None:
    path = write(tmp_path, "dataset: starter/security-sft@1\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.from_yaml(path, overrides=[override])
    assert key in str(err.value)


def test_bad_override_syntax_and_unknown_override(tmp_path: Path) -> None:
    path = write(tmp_path, "dataset: starter/security-sft@1\n")
    with pytest.raises(ConfigError, match="expected key=value"):
        RunConfig.from_yaml(path, overrides=["lora_rank"])
    with pytest.raises(ConfigError, match="unknown key 'epochs'"):
        RunConfig.from_yaml(path, overrides=["epochs=3"])


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "dataset: starter/security-sft@1\nlora_rank: [8\n")
    with pytest.raises(ConfigError, match=r"line \d"):
        RunConfig.from_yaml(path)


def test_qlora_needs_lora() -> None:
    with pytest.raises(ConfigError, match="quantization_bit"):
        RunConfig.from_dict({"dataset": "a/b@1", "quantization_bit": 4, "finetuning_type": "full"})


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict({"dataset": "starter/security-dpo@1", "stage": "orpo", "pref_beta": 0.2})
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert RunConfig.from_yaml(path) == cfg


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_are_valid(name: str) -> None:
    cfg = RunConfig.from_yaml(REPO / "configs" / name)
    assert cfg.dataset
