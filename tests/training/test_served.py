"""End to end: fine-tune the real bundled SmolLM2 briefly, promote it, and chat with it through the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry
from secops_ai.training import RunConfig, train

# Several phrasings of each fact are trained on; the questions asked at the end are phrasings the model never
# saw, and the untuned base (which answers these with invented acronyms) must not already give the answer:
# the test checks that the adapter learned the facts, not that it replays a training line.
FACTS = {"SQL injection": "CWE-89", "path traversal": "CWE-22"}
TRAIN_PHRASINGS = ["Which CWE is {x}?", "{x} maps to which CWE?", "Name the CWE for {x}.",
                   "Classify {x} with its CWE id."]
HELD_OUT = "What is the CWE identifier for {x}?"


def qa_records() -> list[dict]:
    return [{"messages": [{"role": "user", "content": p.format(x=x)},
                          {"role": "assistant", "content": f"{x[0].upper() + x[1:]} is {cwe}."}]}
            for p in TRAIN_PHRASINGS for x, cwe in FACTS.items()]


def repeated_ngram(text: str, n: int = 4) -> int:
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return max((grams.count(g) for g in set(grams)), default=0)


@pytest.mark.slow
def test_tuned_smollm2_answers_in_the_served_template(workspace: Workspace, bundled_base_dir: Path,
                                                      start_server) -> None:
    import httpx

    from secops_ai.data.store import DatasetStore

    ref = DatasetStore(workspace).create("test", "cwe-qa", "chat", qa_records()).ref
    held_out = {x: HELD_OUT.format(x=x) for x in ("SQL injection", "path traversal")}
    assert not set(held_out.values()) & {m["messages"][0]["content"] for m in qa_records()}
    settings = Settings(home=workspace.root)
    config = RunConfig.from_dict(dict(
        model_name_or_path=str(bundled_base_dir), dataset=ref, lora_rank=8, lora_target="q_proj,k_proj,v_proj,o_proj",
        learning_rate=3e-3, max_steps=10, per_device_train_batch_size=2, cutoff_len=128, seed=1,
        lr_scheduler_type="constant"))
    result = train(config, settings, progress=False)
    assert result.metrics["final_loss"] < result.metrics["first_loss"]
    Registry(settings).promote(result.run_name, force=True, reason="end-to-end test")

    server = start_server({"SECOPS_HOME": str(workspace.root), "SECOPS_BASE_MODEL": str(bundled_base_dir),
                           "SECOPS_ADAPTER": "production"})

    def ask(model: str, question: str) -> dict:
        resp = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=120, json={
            "model": model, "max_tokens": 48, "temperature": 0, "messages": [{"role": "user", "content": question}]})
        assert resp.status_code == 200, resp.text
        return resp.json()

    for topic, question in held_out.items():
        body = ask("production", question)
        assert body["model"] == result.run_name  # the registry's production adapter answered
        choice = body["choices"][0]
        answer = choice["message"]["content"]
        # It ends its turn the way the template does (stop, not the token limit), leaks no template markup,
        # does not loop, and gives the fact it learned for a question it was never trained on.
        assert choice["finish_reason"] == "stop", answer
        assert "<|im_start|>" not in answer and "<|im_end|>" not in answer and "assistant\n" not in answer
        assert repeated_ngram(answer) <= 2, answer
        assert FACTS[topic] in answer, (question, answer)
        base_answer = ask("base", question)["choices"][0]["message"]["content"]
        assert FACTS[topic] not in base_answer, ("the base already knew it; the check proves nothing", base_answer)
    models = {m["id"]: m for m in httpx.get(f"{server.base_url}/v1/models", timeout=30).json()["data"]}
    assert result.run_name in models
    # the aliases a client may name, with what they resolve to (issue 15.3)
    assert models["production"]["resolves_to"] == result.run_name
    assert models["default"]["resolves_to"] == result.run_name  # SECOPS_ADAPTER=production
