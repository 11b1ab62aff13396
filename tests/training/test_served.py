"""End to end: fine-tune the real bundled SmolLM2 briefly, promote it, and chat with it through the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry
from secops_ai.training import RunConfig, train

QA = [
    ("Which CWE is SQL injection?", "SQL injection is CWE-89."),
    ("Which CWE is path traversal?", "Path traversal is CWE-22."),
]


def repeated_ngram(text: str, n: int = 4) -> int:
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return max((grams.count(g) for g in set(grams)), default=0)


@pytest.mark.slow
def test_tuned_smollm2_answers_in_the_served_template(workspace: Workspace, bundled_base_dir: Path,
                                                      start_server) -> None:
    import httpx

    from secops_ai.data.store import DatasetStore

    ref = DatasetStore(workspace).create("test", "cwe-qa", "chat", [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in QA]).ref
    settings = Settings(home=workspace.root)
    config = RunConfig.from_dict(dict(
        model_name_or_path=str(bundled_base_dir), dataset=ref, lora_rank=8, lora_target="q_proj,k_proj,v_proj,o_proj",
        learning_rate=3e-3, max_steps=6, per_device_train_batch_size=2, cutoff_len=128, seed=1,
        lr_scheduler_type="constant"))
    result = train(config, settings, progress=False)
    assert result.metrics["final_loss"] < result.metrics["first_loss"]
    Registry(settings).promote(result.run_name, force=True, reason="end-to-end test")

    server = start_server({"SECOPS_HOME": str(workspace.root), "SECOPS_BASE_MODEL": str(bundled_base_dir),
                           "SECOPS_ADAPTER": "production"})
    resp = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=120, json={
        "model": "production", "max_tokens": 48, "temperature": 0,
        "messages": [{"role": "user", "content": "Which CWE is SQL injection?"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == result.run_name  # the registry's production adapter answered
    choice = resp.json()["choices"][0]
    answer = choice["message"]["content"]
    # It ends its turn the way the template does (stop, not the token limit), leaks no template markup,
    # does not loop, and says what it was taught.
    assert choice["finish_reason"] == "stop", answer
    assert "<|im_start|>" not in answer and "<|im_end|>" not in answer and "assistant\n" not in answer
    assert repeated_ngram(answer) <= 2, answer
    assert "CWE-89" in answer, answer
    models = httpx.get(f"{server.base_url}/v1/models", timeout=30).json()["data"]
    assert result.run_name in {m["id"] for m in models}
