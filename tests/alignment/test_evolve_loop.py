"""The whole evolve loop on a tiny random Llama: artefacts, manifests, resume, determinism, and the gate
refusing a candidate that regresses on a safety suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secops_ai.alignment.config import EvolveConfig
from secops_ai.alignment.pipeline import EvolvePipeline
from secops_ai.config import Settings, get_settings
from secops_ai.data.store import DatasetStore

pytestmark = pytest.mark.slow

GATE = Path(__file__).parent / "gate-evolve.yaml"
REFUSE = "I can't help with that."


def tiny_config(**overrides) -> EvolveConfig:
    data = {
        "name": "tiny", "seed": 3, "start_from": "production", "batch_size": 16,
        "prompts": {"sources": ["refusals", "cwe_choice"], "per_source": 2},
        "actor": {"samples": 4, "max_tokens": 8},
        "judge": {"judgments": 2, "max_tokens": 8},
        "meta_judge": {"max_answers": 6, "max_tokens": 2},
        "train": {"overrides": {"max_steps": 3, "learning_rate": 5e-3, "cutoff_len": 256,
                                "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                                "lora_target": "all", "save_steps": 1}},
        "gate": {"gate": str(GATE), "safety_suites": ["policy"], "max_regression": 0.0},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return EvolveConfig.model_validate(data)


@pytest.fixture
def evolve_settings(workspace, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))
    get_settings.cache_clear()
    return get_settings()


def _train_refuser(settings: Settings) -> str:
    """A production adapter that refuses everything (so the gate's harmful_refusal_rate is 1.0)."""
    from secops_ai.alignment.prompts import gate_prompts
    from secops_ai.training.config import RunConfig
    from secops_ai.training.runner import train

    records = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": REFUSE}]}
               for p in gate_prompts(str(GATE))]
    ref = DatasetStore(settings.workspace).create("test", "refuse", "chat", records).ref
    cfg = RunConfig.from_dict(dict(model_name_or_path=str(settings.base_model), dataset=ref, lora_rank=16,
                                   lora_target="all", max_steps=12, per_device_train_batch_size=8,
                                   learning_rate=1e-2, lr_scheduler_type="constant", cutoff_len=512,
                                   packing=False, save_steps=1000, seed=3, run_name="refuser"))
    return train(cfg, settings, progress=False).run_name


def test_evolve_loop_end_to_end(evolve_settings: Settings, tmp_path: Path) -> None:
    settings = evolve_settings
    cfg = tiny_config(start_from="base")
    state = EvolvePipeline(cfg, settings).run()
    it = state["iterations"][0]
    assert state["status"] == "finished" and it["status"] == "finished"
    assert list(it["stages"]) == ["actor", "judge", "verify", "meta", "pairs", "train", "gate"]
    store = DatasetStore(settings.workspace)
    refs = it["stages"]["pairs"]["datasets"]
    actor = store.get(refs["actor"])
    assert actor.path.parent.name == "evolve" and actor.manifest.kind == "preference"
    gen = actor.manifest.generator.config
    assert gen["prompt_dataset"] == state["prompts"]["ref"] and gen["adapter"] == "base"
    assert gen["verifiers"]["version"] and gen["rubric_version"] and gen["judge"]["endpoint"] == "self"
    assert actor.manifest.record_count == it["stages"]["pairs"]["actor"]["pairs"] > 0
    print(json.dumps(it["stages"]["pairs"], indent=1))
    print(json.dumps(it["stages"]["gate"]["regressions"], indent=1))
