"""Export to models/nanogpt/<run-id>/: transformers' GPT2LMHeadModel computes our logits; atomic; honest cards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from secops_ai.config import Workspace
from secops_ai.training.pretrain.export import ExportError, export_run
from secops_ai.training.pretrain.loading import load_model
from secops_ai.training.pretrain.logs import attack_lines
from secops_ai.training.pretrain.train import load_checkpoint, train


def _front_matter(card: Path) -> dict:
    text = card.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize("bias", [False, True])
def test_export_loads_in_transformers_with_identical_logits(workspace: Workspace, log_corpus: Path, tiny: Any,
                                                            bias: bool) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel

    run = train(tiny(log_corpus.name, run_id="gpt", model={"bias": bias}), workspace, progress=False)
    result = export_run(workspace, "gpt")
    path = workspace.models / "nanogpt" / "gpt"
    assert result.path == path and result.hf_compatible and result.max_logit_diff is not None
    assert not any(p.name.endswith(".partial") for p in path.parent.iterdir())
    # offline, from the folder alone
    tok = AutoTokenizer.from_pretrained(path)
    hf = AutoModelForCausalLM.from_pretrained(path).eval()
    assert isinstance(hf, GPT2LMHeadModel)
    ours, _ = load_checkpoint(run.run_dir)
    line = "Jan  5 08:00:43 host-c99f75 kernel: [UFW BLOCK] IN=eth0 OUT= SRC=10.1.2.3"
    ids = tok(line, return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == line  # char tokenizer round-trips, spaces included
    loaded = load_model(workspace, "gpt")
    assert ids[0].tolist() == loaded.tokenizer.encode(line)  # same ids as training
    ids = ids[:, : ours.config.block_size]
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids)[0], atol=1e-5)
    # the card is a Hugging Face card; run.json tells the registry what this is
    front = _front_matter(path / "model_card.md")
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-generation"
    assert "gpt2" in front["tags"] and front["secops"]["architecture"] == "GPT2LMHeadModel"
    info = json.loads((path / "run.json").read_text())
    assert info["name"] == "nanogpt/gpt" and info["hf_compatible"] and info["dataset"] == "nanogpt/logs-v1"
    assert (path / "loss.png").stat().st_size > 1000 and (path / "metrics.jsonl").is_file()
    from secops_ai.registry.model_card import update_evals_section

    update_evals_section(path, "perplexity 2.1", {"suites": {"logs": {"ppl": 2.1}}})  # the gates can fill it in
    assert _front_matter(path / "model_card.md")["secops"]["evals"]["suites"]["logs"]["ppl"] == 2.1
    with pytest.raises(ExportError, match="already exists"):
        export_run(workspace, "gpt")


def test_export_serves_through_the_inference_loader(workspace: Workspace, log_corpus: Path, tiny: Any) -> None:
    """The server's loader and batched generation take the export as a base model, greedy = our greedy."""
    from secops_ai.inference.generation import generate_batch
    from secops_ai.inference.loader import load_model_and_tokenizer
    from secops_ai.inference.types import GenerationParams

    train(tiny(log_corpus.name, run_id="srv"), workspace, progress=False)
    path = export_run(workspace, "srv").path
    model, tok = load_model_and_tokenizer(path)
    prompts = ["Jan  5 08:0", "10."]
    texts = generate_batch(model, tok, prompts, GenerationParams(max_tokens=12, temperature=0.0))
    assert [len(t) for t in texts] == [12, 12]
    ours = load_model(workspace, "srv")
    ids = torch.tensor([ours.tokenizer.encode(prompts[0])])
    assert ours.tokenizer.decode(ours.model.generate(ids, 12, temperature=0)[0, ids.shape[1]:].tolist()) == texts[0]


def test_experiment_runs_export_native_weights_and_say_so(workspace: Workspace, log_corpus: Path,
                                                          tiny: Any) -> None:
    train(tiny(log_corpus.name, run_id="rope", model={"rope": True, "swiglu": True}), workspace, progress=False)
    result = export_run(workspace, "rope")
    assert not result.hf_compatible
    path = result.path
    assert not (path / "config.json").exists() and (path / "nanogpt.pt").is_file()
    card = (path / "model_card.md").read_text()
    assert "Not GPT-2 compatible" in card and "rope" in card and "swiglu" in card
    assert _front_matter(path / "model_card.md")["library_name"] == "secops-ai"
    loaded = load_model(workspace, "rope")  # score/sample still load it
    assert loaded.model.config.rope and loaded.source == path


def test_a_failed_export_registers_nothing(workspace: Workspace, log_corpus: Path, tiny: Any) -> None:
    train(tiny(log_corpus.name, run_id="r", max_iters=4), workspace, progress=False)
    with pytest.raises(ExportError, match="differs from the checkpoint"):
        export_run(workspace, "r", tolerance=-1.0)  # the logit check cannot pass
    models = workspace.models / "nanogpt"
    assert not models.exists() or os.listdir(models) == []
    with pytest.raises(ExportError, match="no training run"):
        export_run(workspace, "missing")
    assert export_run(workspace, "r").path.is_dir()  # and the run can still be exported


def test_bpe_run_exports_the_base_tokenizer(workspace: Workspace, smollm2_tokenizer_dir: Path, tiny: Any,
                                            key: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from secops_ai.training.pretrain.corpus import CorpusSpec, build_corpus

    corpus = build_corpus(workspace.nanogpt_data, CorpusSpec(name="bpe", tokenizer="bpe", synthetic_lines=400),
                          key=key, bpe_tokenizer_dir=smollm2_tokenizer_dir)
    train(tiny(corpus.name, run_id="bpe", max_iters=4, model={"n_embd": 16}), workspace, progress=False)
    path = export_run(workspace, "bpe").path
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == 49152 and tok.eos_token == AutoTokenizer.from_pretrained(smollm2_tokenizer_dir).eos_token
    hf = AutoModelForCausalLM.from_pretrained(path)
    assert hf.config.eos_token_id == tok.eos_token_id
    ids = tok(attack_lines()[0], return_tensors="pt").input_ids[:, :32]
    ours = load_model(workspace, "bpe").model
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids)[0], atol=1e-5)
