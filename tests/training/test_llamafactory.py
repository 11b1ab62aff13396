"""provider: llamafactory for real: LLaMA-Factory (its own venv, `make setup`) trains a LoRA on the tiny Llama on
the CPU, and the run is registered, gated and served like a builtin one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from secops_ai.config import Workspace, get_settings
from secops_ai.registry import Registry
from secops_ai.training import train
from secops_ai.training.output import EVALS_START
from secops_ai.training.providers.llamafactory import find_cli
from secops_ai.training.runs import work_root
from tests.training.conftest import SFT_RECORDS

pytestmark = pytest.mark.slow

def test_llamafactory_run_is_registered_gated_and_served(workspace: Workspace, sft_dataset: str, tiny_config,
                                                          tiny_llama_dir: Path, start_server,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from transformers import AutoTokenizer

    from secops_ai.evals.runner import run_gate

    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))  # the base the run's adapter is served on
    # the engine choice has its own tests; this one is about the provider, on the transformers engine
    monkeypatch.setenv("SECOPS_ENGINE", "transformers")
    get_settings.cache_clear()
    settings = get_settings()
    if find_cli(settings) is None:
        pytest.skip("llamafactory-cli is not installed: `make setup` installs it in .venv-llamafactory")

    result = train(tiny_config(sft_dataset, provider="llamafactory"), settings, progress=False)

    # -- the run folder: LLaMA-Factory's adapter next to our card, config and metrics, none of its pickles
    run_dir = workspace.models / "llamafactory" / result.run_id
    assert result.run_name == f"llamafactory/{result.run_id}" and result.run_dir == run_dir
    files = {p.name for p in run_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "model_card.md", "run.json", "metrics.jsonl",
            "loss.png", "config.yaml", "tokenizer.json"} <= files
    assert not {f for f in files if f.startswith(("training_args", "trainer_", "checkpoint-"))}
    assert json.loads((run_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_llama_dir)
    assert result.metrics["global_step"] == 4 and result.metrics["final_loss"] < result.metrics["first_loss"]
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2, 3, 4]
    card = (run_dir / "model_card.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "peft" and front["secops"]["run"] == result.run_name
    versions = front["secops"]["versions"]  # LLaMA-Factory's own venv trained it, and the card says with what
    assert versions["llamafactory"] and versions["transformers"] and versions["secops_ai"]

    # -- it trained on the tokenizer's own chat template (the one the server renders with): LLaMA-Factory
    # logs its first packed training row, which holds some of the conversations rendered exactly that way
    log = (work_root(settings) / result.run_id / "llamafactory.log").read_text()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    rendered = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in SFT_RECORDS if "messages" in r]
    assert any(text in log for text in rendered), log[-3000:]

    # -- registered, and gated with the quick gate like any run (the verdict lands in the registry and card)
    registry = Registry(settings)
    record = registry.get(result.run_name)
    assert (record.provider, record.kind, record.dataset) == ("llamafactory", "adapter", sft_dataset)
    report = run_gate(settings, result.run_name, "quick", compare_base=False)
    gate = registry.gate_result(result.run_name)
    assert gate is not None and gate["passed"] is report.verdict.passed
    card = (run_dir / "model_card.md").read_text()
    assert EVALS_START in card and "Not evaluated yet" not in card and "Gate `quick`" in card

    # -- served as the default adapter through SECOPS_ADAPTER: the server scores a training conversation as
    # the adapter does when loaded with peft here, and more likely than the base does (what it learned)
    server = start_server({"SECOPS_HOME": str(workspace.root), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
                           "SECOPS_ADAPTER": result.run_name, "SECOPS_ENGINE": "transformers"})
    models = {m["id"]: m for m in httpx.get(f"{server.base_url}/v1/models", timeout=30).json()["data"]}
    assert models["default"]["resolves_to"] == result.run_name

    def served(model: str) -> list[float]:
        resp = httpx.post(f"{server.base_url}/v1/completions", timeout=120, json={
            "model": model, "prompt": rendered[0], "max_tokens": 0, "echo": True, "logprobs": 0})
        assert resp.status_code == 200, resp.text
        if model == "default":
            assert resp.json()["model"] == result.run_name
        return [lp for lp in resp.json()["choices"][0]["logprobs"]["token_logprobs"] if lp is not None]

    tuned, base = served("default"), served("base")
    local_tuned, local_base = _local_logprobs(tiny_llama_dir, run_dir, rendered[0])
    assert len(tuned) == len(local_tuned) == len(base)
    off = sum(abs(a - b) for a, b in zip(tuned, local_tuned, strict=True)) / len(tuned)
    adapter_effect = sum(abs(a - b) for a, b in zip(local_tuned, local_base, strict=True)) / len(tuned)
    assert off < adapter_effect / 4, (off, adapter_effect)
    assert sum(tuned) > sum(base)


def _local_logprobs(base_dir: Path, adapter_dir: Path, text: str) -> tuple[list[float], list[float]]:
    """Log-probabilities of ``text``'s tokens (after the first) with the adapter applied by peft, and without."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(base_dir))(text)["input_ids"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir)), str(adapter_dir)).eval()

    def score() -> list[float]:
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        return logp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()

    tuned = score()
    with model.disable_adapter():
        base = score()
    return tuned, base
