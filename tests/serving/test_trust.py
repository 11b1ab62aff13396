"""Attacks on the serving API (issue 10): hangs, abandoned work, non-JSON errors, open docs, path probes.

Each test is a reproducer written from the attack's description, against a real `secops-ai serve`.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, make_lora_adapter

KEY = "trust-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "Explain SQL injection in one line."}]


@pytest.fixture(scope="module")
def trust_home(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("trust") / "secops-home"
    make_lora_adapter(tiny_llama_dir, home / "models" / "builtin" / "run-good", seed=3)
    # A hostile adapter: NaN weights make every logit NaN, so sampling raises inside the engine's step.
    nan = make_lora_adapter(tiny_llama_dir, home / "models" / "hostile" / "run-nan", seed=4)
    from safetensors.torch import load_file, save_file

    weights = load_file(nan / "adapter_model.safetensors")
    save_file({k: v.fill_(float("nan")) if "lora_B" in k else v for k, v in weights.items()},
              nan / "adapter_model.safetensors")
    return home


@pytest.fixture(scope="module")
def trust(trust_home: Path, tiny_llama_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess({"SECOPS_HOME": str(trust_home), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
                          "SECOPS_API_KEYS": KEY, "SECOPS_MAX_QUEUE": "6", "SECOPS_MAX_BATCH_SIZE": "4",
                          "SECOPS_MAX_NEW_TOKENS": "512"})
    yield proc
    proc.stop()


def _post(server: ServerProcess, path: str, body: dict | bytes, *, timeout: float = 60) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(f"{server.base_url}{path}", content=body, timeout=timeout,
                          headers={**AUTH, "content-type": "application/json"})
    return httpx.post(f"{server.base_url}{path}", json=body, headers=AUTH, timeout=timeout)


def _assert_openai_error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def _metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
BAD_BODIES = [
    (COMPLETIONS, {"prompt": ""}),
    (COMPLETIONS, {"prompt": "", "max_tokens": 0, "echo": True}),
    (COMPLETIONS, {"prompt": []}),
    (COMPLETIONS, {"prompt": [[]]}),
    (COMPLETIONS, {"prompt": [10**9]}),
    (COMPLETIONS, {"prompt": [-1, 5]}),
    (COMPLETIONS, {"prompt": "hi", "seed": 2**64}),
    (COMPLETIONS, {"prompt": "hi", "seed": 2**70}),
    (CHAT, {"messages": HELLO, "seed": 2**64}),
    (CHAT, {"messages": HELLO, "seed": -1}),
    (CHAT, b'{"messages": [{"role": "user", "content": "a\\ud800b"}]}'),
    (COMPLETIONS, b'{"prompt": "a\\ud800b"}'),
    (COMPLETIONS, b'{"prompt": "ok", "stop": ["\\udfff"]}'),
    ("/v1/embeddings", b'{"input": "a\\ud800b"}'),
    ("/v1/embeddings", b'{"input": ["fine", "a\\udc00"]}'),
]


@pytest.mark.parametrize(("path", "body"), BAD_BODIES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(BAD_BODIES)])
def test_hostile_inputs_get_a_400_in_openai_shape(trust: ServerProcess, path: str, body: dict | bytes) -> None:
    _assert_openai_error(_post(trust, path, body, timeout=30), 400)


def test_the_engine_still_serves_after_hostile_inputs(trust: ServerProcess) -> None:
    for path, body in BAD_BODIES:
        _post(trust, path, body, timeout=30)
    resp = _post(trust, CHAT, {"messages": HELLO, "max_tokens": 8, "temperature": 0}, timeout=30)
    assert resp.status_code == 200 and resp.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_non_ascii_bearer_token_is_401_not_500(trust: ServerProcess) -> None:
    for token in ("ключ", "trust-kéy", "\u00ff" * 40):
        resp = httpx.get(f"{trust.base_url}/v1/models", timeout=10,
                         headers={"Authorization": f"Bearer {token}".encode()})
        assert _assert_openai_error(resp, 401)["code"] == "invalid_api_key"


def test_docs_and_schema_need_the_key_and_the_ui_sends_it(trust: ServerProcess) -> None:
    for path in ("/openapi.json", "/docs", "/redoc"):
        _assert_openai_error(httpx.get(f"{trust.base_url}{path}", timeout=10), 401)
        assert httpx.get(f"{trust.base_url}{path}", headers=AUTH, timeout=10).status_code == 200
    spec = httpx.get(f"{trust.base_url}/openapi.json", headers=AUTH, timeout=10).json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "401", "404", "429", "503"} <= set(chat) and "text/event-stream" in chat["200"]["content"]
    # /ui/ is open by design (static files, no data); every call it makes carries the key the user typed.
    assert httpx.get(f"{trust.base_url}/ui/", timeout=10).status_code == 200
    js = httpx.get(f"{trust.base_url}/ui/app.js", timeout=10).text
    calls = re.findall(r"fetch\(([^;]*)", js)
    assert calls and all("headers" in call for call in calls), calls
    assert "new WebSocket" not in js or "!apiKey()" in js  # the WebSocket (no headers) only without a key


def test_a_failure_inside_a_step_fails_its_rows_promptly_and_others_finish(trust: ServerProcess) -> None:
    def hostile() -> httpx.Response:  # NaN logits: torch.multinomial raises inside the decode step
        return _post(trust, CHAT, {"model": "hostile/run-nan", "messages": HELLO, "max_tokens": 50,
                                   "temperature": 1.0, "n": 2}, timeout=240)

    def healthy() -> str:
        body = {"messages": HELLO, "max_tokens": 24, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{trust.base_url}{CHAT}", json=body, headers=AUTH, timeout=240) as resp:
            assert resp.status_code == 200
            lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        return "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in lines[:-1] if json.loads(line[6:])["choices"])

    started = time.monotonic()
    with cf.ThreadPoolExecutor(4) as pool:
        bad = [pool.submit(hostile) for _ in range(2)]
        good = [pool.submit(healthy) for _ in range(2)]
        for fut in bad:
            error = _assert_openai_error(fut.result(timeout=300), 500)
            assert error["code"] == "generation_failed" and error["type"] == "server_error"
        texts = [fut.result(timeout=300) for fut in good]
    assert time.monotonic() - started < 300  # a hang never ends; generous for a loaded 2-core box
    assert texts[0] == texts[1] and texts[0]
    # and the engine still serves the hostile adapter's greedy rows and everyone else afterwards
    after = _post(trust, CHAT, {"messages": HELLO, "max_tokens": 4, "temperature": 0}, timeout=120)
    assert after.status_code == 200


def test_a_rejected_request_decodes_nothing(trust: ServerProcess) -> None:
    before = _metric(trust, "secops_completion_tokens_total")
    with cf.ThreadPoolExecutor(1) as pool:
        # 6 rows: 4 decode at once, 2 wait in the queue (SECOPS_MAX_QUEUE=6)
        first = pool.submit(_post, trust, COMPLETIONS, {"prompt": ["alert tcp"] * 3, "n": 2, "max_tokens": 60,
                                                        "temperature": 0}, timeout=300)
        deadline = time.monotonic() + 60
        while (depth := _metric(trust, "secops_queue_depth")) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert depth >= 1, "the first request's rows never queued"
        rejected = _post(trust, COMPLETIONS, {"prompt": ["GET /admin"] * 3, "n": 2, "max_tokens": 8}, timeout=300)
        assert _assert_openai_error(rejected, 429)["code"] == "queue_full"
        done = first.result(timeout=300)
    assert done.status_code == 200
    # every token decoded since belongs to the admitted request: the rejected one queued no row
    assert _metric(trust, "secops_completion_tokens_total") - before == done.json()["usage"]["completion_tokens"]
    too_many = _post(trust, COMPLETIONS, {"prompt": ["a"] * 4, "n": 2, "max_tokens": 4}, timeout=30)
    assert _assert_openai_error(too_many, 400)["param"] == "n"  # 8 rows can never fit a queue of 6


def test_a_non_streaming_client_that_leaves_frees_its_rows(trust: ServerProcess) -> None:
    prompts, spent = _metric(trust, "secops_prompt_tokens_total"), _metric(trust, "secops_completion_tokens_total")
    body = {"prompt": ["Failed password for root"] * 2, "max_tokens": 500, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        _post(trust, COMPLETIONS, body, timeout=0.4)
    deadline = time.monotonic() + 60  # rows are counted when they end (done or dropped)
    while _metric(trust, "secops_prompt_tokens_total") == prompts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _metric(trust, "secops_prompt_tokens_total") > prompts, "the rows never ended"
    assert _metric(trust, "secops_completion_tokens_total") - spent < 2 * 500, "rows decoded for a client that left"


def test_model_names_never_reveal_host_paths(trust: ServerProcess, trust_home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "run-x"
    shutil.copytree(trust_home / "models" / "builtin" / "run-good", outside)
    probes = [f"../../{tmp_path.name}/outside", str(outside), f"builtin/../../../{outside}", "../../../../etc",
              "/etc/passwd", "builtin/../../..", "..", "~/x", f"{tmp_path}/nope/none", "builtin/run-good/../../.."]
    for name in probes:
        resp = _post(trust, CHAT, {"model": name, "messages": HELLO, "max_tokens": 2}, timeout=30)
        error = _assert_openai_error(resp, 404)
        assert error["code"] == "model_not_found" and error["param"] == "model"
        # the same answer whether or not anything exists there; nothing but the caller's own text quoted
        assert error["message"].replace(name, "<name>") == (
            "The model '<name>' does not exist; GET /v1/models lists the served models.")
        assert str(trust_home) not in resp.text
