"""One decode path (issue 18): what the eval gate scores is what /v1 serves, locally and through a remote
engine addressed with or without /v1."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from secops_ai.inference.backend import RemoteBackend
from secops_ai.inference.types import GenerationParams
from tests.conftest import ServerProcess

PROMPTS = [[{"role": "user", "content": text}] for text in (
    "Explain SQL injection in one line.", "Is port 23 safe to expose?", "Triage: Failed password for root",
    "What does CWE-79 describe?")]
GREEDY = GenerationParams(max_tokens=24, temperature=0.0)


def _served(client: OpenAI, model: str) -> list[str]:
    return [client.chat.completions.create(model=model, messages=conv, max_tokens=24, temperature=0)
            .choices[0].message.content for conv in PROMPTS]


def test_the_gates_backend_decodes_what_v1_serves(client: OpenAI, served_home: Path, tiny_llama_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from secops_ai.config import Settings
    from secops_ai.evals.runner import Target, make_backend

    monkeypatch.delenv("SECOPS_LLM_BASE_URL", raising=False)
    settings = Settings(home=served_home, base_model=str(tiny_llama_dir))
    run = served_home / "models" / "builtin" / "run-good"
    backend = make_backend(settings, Target("builtin/run-good", run, "adapter", run))
    try:
        gated = backend.chat(PROMPTS, GREEDY)  # submitted together: batched on the engine
    finally:
        backend.close()
    assert gated == _served(client, "builtin/run-good")
    assert gated != _served(client, tiny_llama_dir.name)  # the adapter really was applied


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_remote_backend_joins_the_url_with_or_without_v1(server: ServerProcess, client: OpenAI, suffix: str) -> None:
    remote = RemoteBackend(server.base_url + suffix, "builtin/run-good", concurrency=4)
    assert remote.chat(PROMPTS[:2], GREEDY) == _served(client, "builtin/run-good")[:2]


def test_remote_backend_sends_a_batch_concurrently(server: ServerProcess) -> None:
    def multi_row_steps() -> float:
        text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        values = {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("secops_batch_rows_")}
        return values["secops_batch_rows_count"] - values['secops_batch_rows_bucket{le="1.0"}']

    before = multi_row_steps()
    remote = RemoteBackend(server.base_url, "default", concurrency=4)
    replies = remote.chat(PROMPTS * 2, GenerationParams(max_tokens=48, temperature=0.0))
    assert len(replies) == 8
    assert multi_row_steps() > before, "the requests never shared a decode step (sent one at a time?)"
