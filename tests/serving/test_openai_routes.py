"""The OpenAI-compatible routes, driven by the official `openai` client against a real server."""

from __future__ import annotations

import base64
import concurrent.futures as cf

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from tests.conftest import ServerProcess

HELLO = [{"role": "user", "content": "Explain SQL injection in one line."}]


def test_models_lists_base_and_every_usable_adapter(client: OpenAI, tiny_llama_dir) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == tiny_llama_dir.name
    assert "builtin/run-good" in ids
    # The corrupt adapter and the one made for another base are not offered.
    assert "builtin/run-broken" not in ids
    assert "other/run-mismatch" not in ids


def test_chat_completion_matches_its_stream(client: OpenAI) -> None:
    full = client.chat.completions.create(model="default", messages=HELLO, max_tokens=24, temperature=0)
    choice = full.choices[0]
    assert full.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert full.usage.completion_tokens > 0
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="default", messages=HELLO, max_tokens=24, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [choice.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_stream_ends_with_done_marker(server: ServerProcess) -> None:
    body = {"model": "default", "messages": HELLO, "max_tokens": 5, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=60) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_sampling_controls_n_seed_stop_and_max_tokens(client: OpenAI) -> None:
    kwargs = {"model": "default", "messages": HELLO, "max_tokens": 12, "temperature": 1.0}
    a = client.chat.completions.create(seed=7, n=2, **kwargs)
    b = client.chat.completions.create(seed=7, n=2, **kwargs)
    assert [c.index for c in a.choices] == [0, 1]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]  # seeded
    assert all(c.finish_reason == "length" or c.message.content for c in a.choices)
    short = client.chat.completions.create(model="default", messages=HELLO, max_tokens=3, temperature=0)
    # the cap is exact: cut by it = exactly 3 tokens and "length"; fewer only when the model ended its turn
    cut = short.choices[0].finish_reason == "length"
    assert (short.usage.completion_tokens == 3) if cut else (short.choices[0].finish_reason == "stop"
                                                               and short.usage.completion_tokens < 3)
    greedy = client.chat.completions.create(model="default", messages=HELLO, max_tokens=24, temperature=0)
    text = greedy.choices[0].message.content
    if len(text) > 4:  # stop on a piece of the greedy answer: the answer must end right before it
        stop = text[3:5]
        cut = client.chat.completions.create(model="default", messages=HELLO, max_tokens=24, temperature=0, stop=[stop])
        assert cut.choices[0].message.content == text[: text.find(stop)]
        assert cut.choices[0].finish_reason == "stop"


def test_text_completions_with_prompt_list_and_echo(client: OpenAI) -> None:
    resp = client.completions.create(model="default", prompt=["alert tcp any", "GET /admin"], max_tokens=6,
                                     temperature=0, echo=True)
    assert resp.object == "text_completion"
    assert [c.index for c in resp.choices] == [0, 1]
    assert resp.choices[0].text.startswith("alert tcp any")
    assert resp.choices[1].text.startswith("GET /admin")
    streamed = client.completions.create(model="default", prompt="alert tcp any", max_tokens=6, temperature=0,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == resp.choices[0].text[len("alert tcp any"):]


def test_embeddings_float_and_base64(client: OpenAI, server: ServerProcess) -> None:
    texts = ["SQL injection in the login form", "SQLi vulnerability in user login", "a recipe for apple pie"]
    resp = client.embeddings.create(model="default", input=texts)  # the client asks for base64 by default
    vectors = np.array([d.embedding for d in resp.data])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert resp.usage.prompt_tokens > 0
    raw = httpx.post(f"{server.base_url}/v1/embeddings", timeout=60,
                     json={"input": texts[0], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, vectors[0], atol=1e-5)


def test_request_model_field_picks_the_adapter(client: OpenAI, tiny_llama_dir) -> None:
    kwargs = {"messages": HELLO, "max_tokens": 16, "temperature": 0}
    base = client.chat.completions.create(model=tiny_llama_dir.name, **kwargs)
    tuned = client.chat.completions.create(model="builtin/run-good", **kwargs)
    assert base.model == tiny_llama_dir.name
    assert tuned.model == "builtin/run-good"
    assert tuned.choices[0].message.content != base.choices[0].message.content
    again = client.chat.completions.create(model=tiny_llama_dir.name, **kwargs)  # base unaffected by the adapter
    assert again.choices[0].message.content == base.choices[0].message.content


def test_errors_use_openai_shape_and_status(client: OpenAI, server: ServerProcess) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope/none", messages=HELLO, max_tokens=2)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="default", messages=HELLO, temperature=5)
    assert "temperature" in bad.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="default", messages=[], max_tokens=2)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="default", messages=HELLO, max_tokens=100_000)
    assert too_long.value.body["param"] == "max_tokens"
    resp = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=30,
                      json={"model": "default", "messages": [{"role": "user", "content": "x" * 70_000}]})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"
    resp = httpx.post(f"{server.base_url}/v1/chat/completions", content=b"{not json", timeout=30,
                      headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "error" in resp.json()


def test_concurrent_streams_share_decode_steps(server: ServerProcess, client: OpenAI) -> None:
    def one(i: int) -> str:
        stream = client.chat.completions.create(model="default", max_tokens=48, temperature=0, stream=True,
                                                messages=[{"role": "user", "content": f"finding {i}"}])
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    sequential = [one(i) for i in range(4)]
    with cf.ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(one, range(4)))
    assert concurrent == sequential  # batching never changes greedy output
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    rows = _histogram(metrics, "secops_batch_rows")
    assert rows["count"] > rows["le_1"], "no decode step ever held more than one sequence"


def test_stream_starts_before_answer_exists_and_disconnect_frees_row(server: ServerProcess) -> None:
    body = {"model": "default", "messages": HELLO, "max_tokens": 500, "stream": True, "temperature": 0}
    before = _counter(httpx.get(f"{server.base_url}/metrics", timeout=10).text, "secops_completion_tokens_total")
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=60) as resp:
        for line in resp.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # first token arrived: leave before the answer is complete
    for _ in range(600):  # generous: a loaded 2-core box may take seconds per step
        text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        after = _counter(text, "secops_completion_tokens_total")
        if after > before:
            break
        import time

        time.sleep(0.1)
    assert 0 < after - before < 500


def test_metrics_expose_requests_tokens_ttft_and_queue(server: ServerProcess, client: OpenAI) -> None:
    client.chat.completions.create(model="default", messages=HELLO, max_tokens=4)
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    for name in ("secops_requests_total", "secops_request_latency_seconds_bucket", "secops_prompt_tokens_total",
                 "secops_completion_tokens_total", "secops_time_to_first_token_seconds_bucket",
                 "secops_queue_depth"):
        assert name in text, name
    assert 'route="/v1/chat/completions",status="200"' in text


def test_request_metrics_label_streams_probes_and_templated_paths(server: ServerProcess) -> None:
    """Streamed answers are counted once, a probed URL lands in one "unmatched" label, a path with an id is
    labelled by its template (one series per route, not per id)."""
    def requests(route: str, status: str) -> float:
        text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("secops_requests_total{") and f'route="{route}",status="{status}"' in line)

    streamed = requests("/v1/chat/completions", "200")
    body = {"model": "default", "messages": HELLO, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        list(resp.iter_lines())
    assert requests("/v1/chat/completions", "200") == streamed + 1
    probes = requests("unmatched", "404")
    for probe in ("/wp-admin", "/.env", "/v1/../etc/passwd"):
        assert httpx.get(f"{server.base_url}{probe}", timeout=10).status_code == 404
    assert requests("unmatched", "404") == probes + 3
    assert httpx.get(f"{server.base_url}/agents/runs/no-such-run", timeout=10).status_code == 404
    assert requests("/agents/runs/{run_id}", "404") >= 1
    assert "no-such-run" not in httpx.get(f"{server.base_url}/metrics", timeout=10).text


def _counter(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _histogram(text: str, name: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_count"):
            values["count"] = float(line.rsplit(" ", 1)[1])
        if line.startswith(f'{name}_bucket{{le="1.0"}}'):
            values["le_1"] = float(line.rsplit(" ", 1)[1])
    return values


def test_completion_logprobs_score_the_prompt_like_lm_eval(client: OpenAI, tiny_llama_dir) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = "Failed password for root from"
    scored = client.completions.create(model=tiny_llama_dir.name, prompt=prompt, max_tokens=0, echo=True,
                                       logprobs=1)
    lp = scored.choices[0].logprobs
    assert scored.choices[0].text == prompt
    assert lp.token_logprobs[0] is None and len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset)

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).gather(1, ids[0, 1:, None])[:, 0]
    assert lp.token_logprobs[1:] == pytest.approx(expected.tolist(), abs=1e-3)

    greedy = client.completions.create(model=tiny_llama_dir.name, prompt=prompt, max_tokens=3, temperature=0,
                                       logprobs=2)
    glp = greedy.choices[0].logprobs
    for token, top in zip(glp.tokens, glp.top_logprobs, strict=True):
        assert max(top, key=top.get) == token  # greedy picks the most likely token each step
