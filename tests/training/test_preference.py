"""DPO against the base with the adapter disabled (no second copy of the weights) and ORPO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry
from secops_ai.training import train
from secops_ai.training.data import build_preference_dataset


def test_dpo_reference_is_the_base_with_the_adapter_disabled(workspace: Workspace, dpo_dataset: str, tiny_config,
                                                             tiny_llama_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from secops_ai.training.recipes import build_dpo

    config = tiny_config(dpo_dataset, stage="dpo")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    base_params = sum(p.numel() for p in model.parameters())
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    from tests.training.conftest import DPO_RECORDS

    trainer = build_dpo(config, model, tok, DPO_RECORDS, tmp_path / "ckpt", dataset_ref=dpo_dataset, cuda=False,
                        distributed=False, callbacks=[])
    assert trainer.ref_model is None
    assert list(trainer.model.peft_config) == ["default"]  # no "ref" adapter copy either
    total = sum(p.numel() for p in trainer.model.parameters())
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert total == base_params + trainable  # one set of base weights + the LoRA matrices, nothing else

    # Disabling the adapter gives exactly the base model's log-probs (the reference), before any training.
    batch = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad(), trainer.model.disable_adapter():
        ref = trainer.model(batch).logits
    fresh = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))(batch).logits
    assert torch.allclose(ref, fresh.detach(), atol=1e-5)


def test_dpo_and_orpo_runs_produce_registered_adapters(workspace: Workspace, dpo_dataset: str, tiny_config) -> None:
    settings = Settings(home=workspace.root)
    dpo = train(tiny_config(dpo_dataset, stage="dpo", max_steps=2), settings, progress=False)
    orpo = train(tiny_config(dpo_dataset, stage="orpo", max_steps=2), settings, progress=False)
    for result, marker in ((dpo, "rewards/margins"), (orpo, "log_odds_ratio")):
        rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert any(marker in r for r in rows), (marker, rows[0].keys())
        assert (result.run_dir / "adapter_model.safetensors").is_file()
        # tokens are counted for preference batches too (ORPO logged tokens_seen 0 and tokens/s 0.0)
        losses = [r for r in rows if "loss" in r]
        assert losses and all(r["tokens_seen"] > 0 and r["tokens_per_second"] > 0 for r in losses), (marker, losses)
    stages = {r.name: r.training_stage for r in Registry(settings).list()}
    assert stages == {dpo.run_name: "dpo", orpo.run_name: "orpo"}


def test_string_preferences_become_chat_turns() -> None:
    ds = build_preference_dataset([{"prompt": "Q", "chosen": "good", "rejected": "bad"}], dataset_ref="t/x@1")
    row = ds[0]
    assert row["prompt"] == [{"role": "user", "content": "Q"}]
    assert row["chosen"] == [{"role": "assistant", "content": "good"}]


def test_dpo_after_sft_continues_the_sft_adapter_and_uses_it_as_reference(
        workspace: Workspace, sft_dataset: str, dpo_dataset: str, tiny_config) -> None:
    """The recipe's DPO step starts from the SFT adapter: at step 1 the policy *is* the reference, so the DPO
    loss is exactly ln 2 and the rewards are 0 (with the base as reference, the SFT adapter's shift would show),
    and the finished adapter holds only the trained weights (no TRL 'ref' copy)."""
    import math

    from safetensors.torch import load_file

    settings = Settings(home=workspace.root)
    sft = train(tiny_config(sft_dataset, max_steps=6), settings, progress=False)
    dpo = train(tiny_config(dpo_dataset, stage="dpo", max_steps=2, adapter_name_or_path=str(sft.run_dir)),
                settings, progress=False)
    rows = [json.loads(line) for line in (dpo.run_dir / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in rows if "loss" in r)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4) and abs(first["rewards/margins"]) < 1e-4
    # the adapter was continued: same LoRA tensors as the SFT one (names and shapes), different values
    a, b = load_file(sft.run_dir / "adapter_model.safetensors"), load_file(dpo.run_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and any(not (a[k] == b[k]).all() for k in a)
    assert not (dpo.run_dir / "ref").exists()
