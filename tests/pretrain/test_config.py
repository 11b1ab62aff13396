"""Run configs: YAML + pydantic, unknown keys rejected by name, key=value overrides, shipped configs valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.training.pretrain.config import ConfigError, load_config, parse_overrides

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"


def test_unknown_keys_are_rejected_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("corpus: logs-v1\nmax_iter: 10\nmodel:\n  n_layers: 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert str(path) in message
    assert "unknown key 'max_iter'" in message
    assert "unknown key 'model.n_layers'" in message


def test_invalid_values_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("corpus: logs-v1\nmodel:\n  n_embd: 30\n  n_head: 4\n")
    with pytest.raises(ConfigError, match="divisible by n_head"):
        load_config(path)
    with pytest.raises(ConfigError, match="'learning_rate'"):
        load_config(path, ["model.n_embd=32", "learning_rate=-1"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_are_yaml_scalars_into_nested_sections(tmp_path: Path) -> None:
    assert parse_overrides(["max_iters=50", "model.rope=true", "model.n_kv_head=null", "run_id=a=b"]) == {
        "max_iters": 50, "model": {"rope": True, "n_kv_head": None}, "run_id": "a=b"}
    path = tmp_path / "run.yaml"
    path.write_text("corpus: logs-v1\nmodel:\n  n_layer: 2\n  n_head: 2\n  n_embd: 32\n")
    cfg = load_config(path, ["model.swiglu=true", "max_iters=7"])
    assert (cfg.model.swiglu, cfg.model.n_layer, cfg.max_iters) == (True, 2, 7)
    assert cfg.model.experiments == ["swiglu"] and not cfg.model.gpt2_compatible
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(path, ["max_iters"])


def test_experiment_flags_are_off_by_default() -> None:
    cfg = load_config(None, ["corpus=x"])
    assert (cfg.model.rope, cfg.model.swiglu, cfg.model.n_kv_head) == (False, False, None)
    assert cfg.model.gpt2_compatible


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.corpus


def test_resuming_reads_the_runs_own_config_pins_its_id_and_applies_overrides(tmp_path: Path) -> None:
    from secops_ai.config import Workspace
    from secops_ai.training.pretrain.config import PretrainConfig, dump_config
    from secops_ai.training.pretrain.train import run_config, runs_dir

    ws = Workspace(tmp_path / "home").ensure()
    saved = runs_dir(ws) / "r1" / "config.yaml"
    saved.parent.mkdir(parents=True)
    saved.write_text(dump_config(PretrainConfig(corpus="logs-v1", run_id="r1", max_iters=40, batch_size=3)))
    cfg = run_config(ws, None, ["max_iters=80"], resume="r1")
    assert (cfg.corpus, cfg.run_id, cfg.max_iters, cfg.batch_size) == ("logs-v1", "r1", 80, 3)
    other = tmp_path / "other.yaml"
    other.write_text("corpus: logs-v2\nrun_id: someone-else\n")
    assert run_config(ws, other, [], resume="r1").run_id == "r1"  # an explicit config still resumes r1
    assert run_config(ws, other, ["seed=5"]).run_id == "someone-else"  # not resuming: the file decides
    with pytest.raises(ConfigError, match="no such config file"):
        run_config(ws, None, [], resume="r2")
