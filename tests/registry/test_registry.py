"""Registry: stages, evaluation-gated promotion with audited overrides, rollback, archive, merge, cards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from secops_ai.config import Settings, Workspace
from secops_ai.registry import PromotionRefused, Registry, RegistryError
from secops_ai.registry.model_card import read_card, update_evals_section


def registry(workspace: Workspace) -> Registry:
    return Registry(Settings(home=workspace.root))


def test_finished_runs_are_listed_as_candidates(workspace: Workspace, add_run) -> None:
    a, b = add_run("run-a"), add_run("run-b")
    (workspace.models / "builtin" / "half-written").mkdir()  # no run.json: not a finished run
    reg = registry(workspace)
    assert [r.name for r in reg.list()] == [a, b]
    assert {r.stage for r in reg.list()} == {"candidate"}
    assert reg.list(stage="production") == [] and reg.production() is None
    record = reg.get(a)
    assert record.kind == "adapter" and record.training_stage == "sft" and record.dataset == "test/reg-sft@1"
    assert record.history[0]["action"] == "register"
    with pytest.raises(RegistryError, match="no model 'builtin/nope'"):
        reg.get("builtin/nope")
    with pytest.raises(RegistryError, match="stage must be one of"):
        reg.list(stage="staging")


def test_promotion_needs_a_passing_gate_or_an_audited_force(workspace: Workspace, add_run) -> None:
    name = add_run("run-a")
    reg = registry(workspace)
    with pytest.raises(PromotionRefused, match="no evaluation gate result"):
        reg.promote(name)
    reg.record_gate_result(name, False, {"message": "policy.refusal_rate = 0.2 < min 0.6", "score": 0.2})
    with pytest.raises(PromotionRefused, match=r"latest evaluation gate failed .*policy\.refusal_rate = 0\.2"):
        reg.promote(name)
    with pytest.raises(PromotionRefused, match="needs --reason"):
        reg.promote(name, force=True)
    assert reg.production() is None

    reg.promote(name, force=True, reason="hotfix for incident 42", actor="alice")
    assert reg.production() == name
    event = reg.get(name).history[-1]
    assert (event["action"], event["forced"], event["actor"], event["reason"]) == \
        ("promote", True, "alice", "hotfix for incident 42")
    front, body = read_card(workspace.models / name)
    override = front["secops"]["overrides"][0]
    assert (override["actor"], override["reason"], override["gate"]) == ("alice", "hotfix for incident 42", "failed")
    assert "## Promotion overrides" in body and "hotfix for incident 42" in body


def test_passing_gate_promotes_and_latest_gate_decides(workspace: Workspace, add_run) -> None:
    a, b = add_run("run-a"), add_run("run-b")
    reg = registry(workspace)
    reg.record_gate_result(a, True, {"score": 0.9})
    reg.promote(a, actor="ci")
    assert reg.production() == a and reg.get(a).history[-1]["forced"] is False
    reg.record_gate_result(b, True, {"score": 0.9})
    reg.record_gate_result(b, False, {"score": 0.1})  # re-evaluated and now failing
    with pytest.raises(PromotionRefused):
        reg.promote(b)


def test_promote_rollback_archive_keep_every_file(workspace: Workspace, add_run) -> None:
    a, b = add_run("run-a"), add_run("run-b")
    reg = registry(workspace)
    for name in (a, b):
        reg.record_gate_result(name, True, {})
    reg.promote(a)
    reg.promote(b)
    assert reg.production() == b and reg.get(a).stage == "archived"
    assert reg.rollback() == a
    assert reg.production() == a and reg.get(b).stage == "archived"
    reg.archive(a)
    assert reg.production() is None and reg.get(a).stage == "archived"
    with pytest.raises(RegistryError, match="already archived"):
        reg.archive(a)
    for name in (a, b):  # archived adapters are kept, never deleted
        assert (workspace.models / name / "adapter_model.safetensors").is_file()


def test_rollback_with_no_history_is_an_error(workspace: Workspace, add_run) -> None:
    name = add_run("run-a")
    reg = registry(workspace)
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        reg.rollback()
    reg.promote(name, force=True, reason="first model")
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        reg.rollback()


def test_state_is_shared_through_the_database(workspace: Workspace, add_run, tmp_path: Path) -> None:
    name = add_run("run-a")
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    Registry(Settings(home=workspace.root, DATABASE_URL=url)).promote(name, force=True, reason="r")
    assert Registry(Settings(home=workspace.root, DATABASE_URL=url)).production() == name
    assert (tmp_path / "elsewhere.db").is_file()
    assert Registry(Settings(home=workspace.root)).production() is None  # the default SQLite file is separate


def test_production_adapter_is_what_the_server_loads(workspace: Workspace, add_run) -> None:
    from secops_ai.inference.backend import backend_from_settings

    name = add_run("run-a")
    reg = registry(workspace)
    reg.promote(name, force=True, reason="serve it")
    base = reg.get(name).path / "run.json"
    import json

    base_dir = json.loads(base.read_text())["base_model_path"]
    settings = Settings(home=workspace.root, base_model=base_dir, adapter="production")
    backend = backend_from_settings(settings, production=reg.production())
    assert backend.name == name


def test_merge_writes_a_new_run_and_leaves_the_base_alone(workspace: Workspace, add_run) -> None:
    import json

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    name = add_run("run-a")
    reg = registry(workspace)
    base_dir = Path(json.loads((workspace.models / name / "run.json").read_text())["base_model_path"])
    before = hashlib.sha256((base_dir / "model.safetensors").read_bytes()).hexdigest()
    merged = reg.merge(name)
    assert merged.name == "builtin/run-a-merged" and merged.kind == "merged" and merged.parent == name
    assert merged.stage == "candidate"
    assert hashlib.sha256((base_dir / "model.safetensors").read_bytes()).hexdigest() == before
    assert not (merged.path / "adapter_config.json").exists()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        full = AutoModelForCausalLM.from_pretrained(str(merged.path))(ids).logits
        lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)),
                                         str(workspace.models / name))(ids).logits
    assert torch.allclose(full, lora, atol=1e-4)
    front, _ = read_card(merged.path)
    assert front["secops"]["merged_from"] == name and "merged" in front["tags"]
    assert reg.merge(name).name == "builtin/run-a-merged-2"  # never over an existing run
    with pytest.raises(RegistryError, match="not an adapter"):
        reg.promote(merged.name, force=True, reason="x")


def test_update_evals_section_rewrites_in_place(workspace: Workspace, add_run) -> None:
    run = workspace.models / add_run("run-a")
    update_evals_section(run, "| suite | score |\n| --- | --- |\n| cwe | 0.50 |", {"cwe": {"accuracy": 0.5}})
    update_evals_section(run, "| suite | score |\n| --- | --- |\n| cwe | 0.75 |", {"cwe": {"accuracy": 0.75}})
    text = (run / "model_card.md").read_text()
    assert text.count("secops:evals:start") == 1 and "0.75" in text and "0.50" not in text
    front = yaml.safe_load(text.split("---")[1])
    assert front["secops"]["evals"] == {"cwe": {"accuracy": 0.75}}
    metric = front["model-index"][0]["results"][0]["metrics"][0]
    assert (metric["type"], metric["value"]) == ("accuracy", 0.75)
    assert front["secops"]["base_model_local"]  # the rest of the card is intact


def test_card_base_model_is_the_hub_id(tmp_path: Path) -> None:
    """Issue 15.4: the card's base_model is a Hugging Face Hub id so the Hub and card readers link it."""
    import json

    from secops_ai.config import BUNDLED_BASE_MODEL
    from secops_ai.training.output import hub_id

    bundled = tmp_path / BUNDLED_BASE_MODEL
    bundled.mkdir()
    assert hub_id(bundled) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    other = tmp_path / "converted"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}))
    assert hub_id(other) == "Qwen/Qwen2.5-0.5B-Instruct"
    (other / "config.json").write_text(json.dumps({"_name_or_path": str(tmp_path)}))  # a local path: no id
    assert hub_id(other) is None
