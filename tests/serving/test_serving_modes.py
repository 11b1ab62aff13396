"""Adapter selection by environment, auth, queue limits, readiness, remote forwarding, CLI entry points."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn
from openai import OpenAI

from secops_ai.config import Settings
from secops_ai.inference.types import GenerationParams
from tests.conftest import ServerProcess, free_port

HELLO = [{"role": "user", "content": "Summarise CVE triage in one line."}]


@pytest.fixture(scope="module")
def guarded_server(served_home: Path, tiny_llama_dir: Path) -> Iterator[ServerProcess]:
    """SECOPS_ADAPTER set, API keys required, a one-request queue and one row per batch."""
    proc = ServerProcess({"SECOPS_HOME": str(served_home), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
                          "SECOPS_ADAPTER": "builtin/run-good", "SECOPS_API_KEYS": "key-one, key-two",
                          "SECOPS_MAX_QUEUE": "1", "SECOPS_MAX_BATCH_SIZE": "1"})
    yield proc
    proc.stop()


def test_env_adapter_is_the_default_model(guarded_server: ServerProcess, client: OpenAI) -> None:
    guarded = OpenAI(base_url=f"{guarded_server.base_url}/v1", api_key="key-two", max_retries=0)
    via_env = guarded.chat.completions.create(model="default", messages=HELLO, max_tokens=12, temperature=0)
    explicit = client.chat.completions.create(model="builtin/run-good", messages=HELLO, max_tokens=12, temperature=0)
    assert via_env.model == "builtin/run-good"
    assert via_env.choices[0].message.content == explicit.choices[0].message.content


def test_api_keys_guard_v1_but_not_health(guarded_server: ServerProcess) -> None:
    url = guarded_server.base_url
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    resp = httpx.get(f"{url}/v1/models")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    ok = OpenAI(base_url=f"{url}/v1", api_key="key-one", max_retries=0).models.list()
    assert ok.data


def test_full_queue_answers_429(guarded_server: ServerProcess) -> None:
    def one(_: int) -> int:
        return httpx.post(f"{guarded_server.base_url}/v1/chat/completions", timeout=120,
                          headers={"Authorization": "Bearer key-one"},
                          json={"model": "default", "messages": HELLO, "max_tokens": 300, "temperature": 0}
                          ).status_code

    with cf.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(one, range(6)))
    assert 200 in codes
    assert 429 in codes
    assert set(codes) <= {200, 429}


@pytest.mark.parametrize("spec", ["missing/run-x", "builtin/run-broken", "other/run-mismatch"])
def test_unusable_adapter_falls_back_to_base_with_warning(spec: str, served_home: Path, tiny_llama_dir: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    from secops_ai.inference.service import ModelService

    settings = Settings(home=served_home, base_model=str(tiny_llama_dir), adapter=spec)
    service = ModelService(settings)
    with caplog.at_level(logging.WARNING):
        service.load_sync()
    try:
        assert service.ready.is_set(), service.load_error
        assert service.default_adapter is None
        assert any(spec.split("/")[1] in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
        reply = service.backend().chat([HELLO], GenerationParams(max_tokens=4))
        assert len(reply) == 1
    finally:
        service.engine.stop()


def test_not_ready_answers_503(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from secops_ai.api.app import create_app

    settings = Settings(home=tmp_path, base_model=str(tiny_llama_dir))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, load_model=False), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 503
        with pytest.raises(openai.InternalServerError) as exc:
            OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0).chat.completions.create(
                model="default", messages=HELLO)
        assert exc.value.status_code == 503
        assert exc.value.body["code"] == "model_not_ready"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_remote_engine_forwards_every_route(server: ServerProcess, client: OpenAI, start_server,
                                            tmp_path: Path) -> None:
    front = start_server({"SECOPS_LLM_BASE_URL": f"{server.base_url}/v1", "SECOPS_HOME": str(tmp_path)})
    remote = OpenAI(base_url=f"{front.base_url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in remote.models.list().data] == [m.id for m in client.models.list().data]
    direct = client.chat.completions.create(model="builtin/run-good", messages=HELLO, max_tokens=10, temperature=0)
    forwarded = remote.chat.completions.create(model="builtin/run-good", messages=HELLO, max_tokens=10,
                                               temperature=0)
    assert forwarded.choices[0].message.content == direct.choices[0].message.content
    streamed = remote.chat.completions.create(model="builtin/run-good", messages=HELLO, max_tokens=10,
                                              temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        direct.choices[0].message.content
    assert len(remote.embeddings.create(model="default", input="xss").data[0].embedding) == 384
    with pytest.raises(openai.NotFoundError):
        remote.chat.completions.create(model="nope/none", messages=HELLO)


def test_missing_model_fails_fast_naming_path_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = subprocess.run([sys.executable, "-m", "secops_ai.cli.main", "serve"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "SECOPS_HOME": str(tmp_path / "home"),
                                              "SECOPS_BASE_MODEL": str(missing), "SECOPS_PORT": str(free_port())})
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1 and "error: " in result.stderr
    assert str(missing) in out
    assert "secops-ai base prepare" in out


def test_terminal_chat_streams_from_a_server(server: ServerProcess) -> None:
    result = subprocess.run([sys.executable, "-m", "secops_ai.cli.main", "chat", "--url", server.base_url,
                             "--max-tokens", "8", "--temperature", "0"], input="what is XSS?\n/exit\n",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "assistant>" in result.stdout
    answer = result.stdout.split("assistant>", 1)[1]
    assert answer.strip(), "the reply was empty"


def test_terminal_chat_runs_locally_without_a_server(tiny_llama_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SECOPS_HOME": str(tmp_path), "SECOPS_BASE_MODEL": str(tiny_llama_dir)}
    env.pop("SECOPS_LLM_BASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "secops_ai.cli.main", "chat", "--max-tokens", "6"],
                            input="hello\n/exit\n", capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    assert f"local model {tiny_llama_dir.name}" in result.stdout
    assert "assistant>" in result.stdout
