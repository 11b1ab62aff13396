"""The llama.cpp engine (issue 17): `secops-ai serve` with SECOPS_ENGINE=llamacpp behind the same OpenAI routes,
auth, limits and error shapes; evals/agents decode through it too; whatever it cannot do falls back, logged.

These tests need the pinned llama-server that `make setup` builds: without it they fail (never skip) and say so.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from openai import OpenAI

from secops_ai.inference.llamacpp_build import server_binary, source_dir
from secops_ai.inference.types import GenerationParams
from tests.conftest import ServerProcess, make_lora_adapter

KEY = "k-llama"
PROMPTS = [[{"role": "user", "content": text}] for text in (
    "Explain SQL injection in one line.", "Is port 23 safe to expose?", "What does CWE-79 describe?")]
GREEDY = GenerationParams(max_tokens=20, temperature=0.0)
ENGINE = {"SECOPS_ENGINE": "llamacpp", "SECOPS_GGUF_QUANT": "f32", "SECOPS_LLAMACPP_THREADS": "2"}


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    if server_binary() is None or source_dir() is None:
        pytest.fail("llama-server is not built: run `make setup` (python -m secops_ai.inference.llamacpp_build)")


@pytest.fixture(scope="module")
def llama_home(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("llama") / "secops-home"
    make_lora_adapter(tiny_llama_dir, home / "models" / "builtin" / "run-a", seed=11)
    return home


@pytest.fixture(scope="module")
def llama_server(llama_home: Path, tiny_llama_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess({"SECOPS_HOME": str(llama_home), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
                          "SECOPS_API_KEYS": KEY, "SECOPS_MAX_NEW_TOKENS": "64", **ENGINE})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(llama_server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{llama_server.base_url}/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture
def run_a_backend(llama_home: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The gate's backend for builtin/run-a on the llama.cpp engine (started on first use); closed after."""
    from secops_ai.config import Settings, get_settings
    from secops_ai.evals.runner import Target, make_backend

    for k, v in ENGINE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SECOPS_LLM_BASE_URL", raising=False)
    get_settings.cache_clear()
    run = llama_home / "models" / "builtin" / "run-a"
    backend = make_backend(Settings(home=llama_home, base_model=str(tiny_llama_dir)),
                           Target("builtin/run-a", run, "adapter", run))
    yield backend
    backend.close()
    get_settings.cache_clear()


def _flat(log: str) -> str:
    return " ".join(log.split())  # the console log wraps long lines


def _chat(client: OpenAI, model: str, conv: list[dict[str, str]], **kw) -> str:
    return client.chat.completions.create(model=model, messages=conv, max_tokens=20, temperature=0,
                                          **kw).choices[0].message.content


def _llama_children(server: ServerProcess) -> list[psutil.Process]:
    return [p for p in psutil.Process(server.proc.pid).children(recursive=True) if p.name() == "llama-server"]


def test_served_by_a_llama_server_child_with_the_adapter_as_gguf(llama_server: ServerProcess,
                                                                 llama_home: Path) -> None:
    children = _llama_children(llama_server)
    assert len(children) == 1
    cmd = children[0].cmdline()
    assert "127.0.0.1" in cmd and "--lora-init-without-apply" in cmd
    gguf = llama_home / "models" / "builtin" / "run-a" / "adapter-f32.gguf"
    assert str(gguf) in cmd and gguf.stat().st_size > 0  # converted by llama.cpp's converter, beside the adapter


@pytest.fixture(scope="module")
def served_texts(client: OpenAI, tiny_llama_dir: Path) -> dict[str, list[str]]:
    return {model: [_chat(client, model, conv) for conv in PROMPTS] for model in (tiny_llama_dir.name, "builtin/run-a")}


def test_same_auth_and_error_shapes(llama_server: ServerProcess) -> None:
    url = f"{llama_server.base_url}/v1/chat/completions"
    body = {"messages": PROMPTS[0], "max_tokens": 4}
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    bad = httpx.post(url, json={**body, "model": "nobody/none"}, headers={"Authorization": f"Bearer {KEY}"},
                     timeout=30)
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "model_not_found"
    over = httpx.post(url, json={**body, "max_tokens": 65}, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert over.status_code == 400 and over.json()["error"]["param"] == "max_tokens"


def test_adapter_applied_per_request_and_greedy_repeatable(client: OpenAI, served_texts: dict[str, list[str]],
                                                           tiny_llama_dir: Path) -> None:
    base, adapted = served_texts[tiny_llama_dir.name], served_texts["builtin/run-a"]
    assert all(base) and base != adapted  # the LoRA really changes the output, per request
    # interleaved requests for base and adapter do not leak the LoRA into each other
    assert _chat(client, tiny_llama_dir.name, PROMPTS[0]) == base[0]
    assert _chat(client, "builtin/run-a", PROMPTS[0]) == adapted[0]


def test_a_request_after_an_idle_pause_is_served(client: OpenAI, served_texts: dict[str, list[str]],
                                                 llama_server: ServerProcess) -> None:
    """llama-server drops a keep-alive connection after 5 idle seconds: the next request must not fail on it."""
    import time

    assert _chat(client, "builtin/run-a", PROMPTS[0]) == served_texts["builtin/run-a"][0]
    time.sleep(6)
    assert _chat(client, "builtin/run-a", PROMPTS[1]) == served_texts["builtin/run-a"][1]
    assert "retrying it once" not in _flat(llama_server.log_so_far())  # a fresh connection, not a failed try


def test_stream_stop_length_seed(client: OpenAI, served_texts: dict[str, list[str]], tiny_llama_dir: Path) -> None:
    model = "builtin/run-a"  # the tiny base only says newlines; its adapter says words
    full = served_texts[model][1]
    stream = client.chat.completions.create(model=model, messages=PROMPTS[1], max_tokens=20, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == full
    assert chunks[-1].usage.completion_tokens <= 20
    # stop: cut before the first occurrence, finish_reason "stop"
    word = full[len(full) // 2:len(full) // 2 + 3]
    cut = client.chat.completions.create(model=model, messages=PROMPTS[1], max_tokens=20, temperature=0, stop=[word])
    assert cut.choices[0].message.content == full[:full.index(word)]
    assert cut.choices[0].finish_reason == "stop"
    # length: exactly max_tokens tokens
    short = client.chat.completions.create(model=model, messages=PROMPTS[1], max_tokens=3, temperature=0)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    # n + seed: a seeded sampled request repeats; choices get seed+i, so they differ from each other
    sampled = [client.chat.completions.create(model=model, messages=PROMPTS[2], max_tokens=16, temperature=1.0,
                                              n=2, seed=7) for _ in range(2)]
    texts = [[c.message.content for c in r.choices] for r in sampled]
    assert texts[0] == texts[1] and len(texts[0]) == 2 and texts[0][0] != texts[0][1]


def test_logprobs_fall_back_to_transformers_logged(llama_server: ServerProcess, client: OpenAI) -> None:
    resp = client.completions.create(model="default", prompt="port 22 is", max_tokens=1, echo=True, logprobs=1,
                                     temperature=0)
    lp = resp.choices[0].logprobs
    assert lp.token_logprobs[0] is None and all(v <= 0 for v in lp.token_logprobs[1:])
    # the logged reason is checked once the server has stopped (its stdout log is flushed then): see the last test


def test_gate_backend_decodes_what_v1_serves(llama_home: Path, tiny_llama_dir: Path,
                                             served_texts: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """One path: the eval gate's in-process backend runs on the same llama.cpp engine, same GGUF, same LoRA."""
    from secops_ai.config import Settings, get_settings
    from secops_ai.evals.runner import Target, make_backend
    from secops_ai.inference.llamacpp_engine import LlamaCppEngine

    for k, v in ENGINE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SECOPS_LLM_BASE_URL", raising=False)
    get_settings.cache_clear()
    settings = Settings(home=llama_home, base_model=str(tiny_llama_dir))
    run = llama_home / "models" / "builtin" / "run-a"
    for target, model in ((Target("builtin/run-a", run, "adapter", run), "builtin/run-a"),
                          (Target("base", tiny_llama_dir, "base", tiny_llama_dir), tiny_llama_dir.name)):
        backend = make_backend(settings, target)
        try:
            assert isinstance(backend.engine_client.engine, LlamaCppEngine)
            assert backend.chat(PROMPTS, GREEDY) == served_texts[model]
        finally:
            backend.close()
    get_settings.cache_clear()


def test_unstartable_llama_server_falls_back_with_a_warning(llama_home: Path, tiny_llama_dir: Path,
                                                            tmp_path: Path) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
    fake.chmod(0o755)
    proc = ServerProcess({"SECOPS_HOME": str(llama_home), "SECOPS_BASE_MODEL": str(tiny_llama_dir), **ENGINE,
                          "SECOPS_LLAMACPP_SERVER": str(fake)})
    try:
        reply = httpx.post(f"{proc.base_url}/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=60)
        assert reply.status_code == 200
    finally:
        log = proc.output()
    log = _flat(log)
    assert "llama.cpp did not start" in log and "broken build" in log and "using the transformers engine" in log


def test_engine_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from secops_ai.config import Settings
    from secops_ai.inference.engines import choose_engine

    assert choose_engine(Settings(engine="auto"), "cpu")[0] == "llamacpp"
    assert choose_engine(Settings(engine="auto"), "cuda")[0] == "transformers"
    assert choose_engine(Settings(engine="transformers"), "cpu")[0] == "transformers"
    monkeypatch.setenv("SECOPS_LLAMACPP_CACHE", str(tmp_path))  # nothing built there
    monkeypatch.delenv("SECOPS_LLAMACPP_SERVER", raising=False)
    kind, why = choose_engine(Settings(engine="llamacpp"), "cpu")
    assert kind == "transformers" and "make setup" in why


def test_build_step_reuses_an_existing_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from secops_ai.inference import llamacpp_build

    binary, src = server_binary(), source_dir()
    monkeypatch.setenv("SECOPS_LLAMACPP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SECOPS_LLAMACPP_SERVER", str(binary))
    monkeypatch.setenv("SECOPS_LLAMACPP_SOURCE", str(src))
    assert llamacpp_build.main() == 0
    copied = tmp_path / "cache" / "bin" / "llama-server"
    assert copied.is_file() and os.access(copied, os.X_OK) and copied.stat().st_size == binary.stat().st_size


def test_an_adapter_trained_after_start_is_served_by_llama_cpp(llama_server: ServerProcess, llama_home: Path,
                                                               client: OpenAI, served_texts: dict[str, list[str]],
                                                               tiny_llama_dir: Path) -> None:
    make_lora_adapter(tiny_llama_dir, llama_home / "models" / "builtin" / "run-late", seed=12)
    late = _chat(client, "builtin/run-late", PROMPTS[0])
    assert late and late != served_texts["builtin/run-a"][0]
    children = _llama_children(llama_server)  # the old llama-server stopped once idle; the new one has both LoRAs
    assert len(children) == 1
    assert str(llama_home / "models" / "builtin" / "run-late" / "adapter-f32.gguf") in children[0].cmdline()
    assert _chat(client, "builtin/run-a", PROMPTS[0]) == served_texts["builtin/run-a"][0]
    assert "has no GGUF LoRA" not in _flat(llama_server._read_log())


def test_a_killed_llama_server_is_replaced(llama_server: ServerProcess, client: OpenAI,
                                           served_texts: dict[str, list[str]]) -> None:
    old = _llama_children(llama_server)[0]
    old.kill()
    with contextlib.suppress(psutil.Error, ChildProcessError):  # the server may reap it first
        old.wait(timeout=15)
    assert _chat(client, "builtin/run-a", PROMPTS[1]) == served_texts["builtin/run-a"][1]
    new = _llama_children(llama_server)
    assert len(new) == 1 and new[0].pid != old.pid


def test_llama_server_ends_with_the_server(llama_server: ServerProcess) -> None:
    children = _llama_children(llama_server)
    log = llama_server.output()  # stops the server (the last test of the module)
    assert "engine: llama.cpp" in _flat(log)
    assert "logprobs/echo requests run on the transformers engine" in _flat(log)
    psutil.wait_procs(children, timeout=15)
    assert not any(c.is_running() for c in children)


def test_agent_json_is_enforced_by_llama_cpp_grammar(tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Constrained decoding for agents runs on llama.cpp itself (json_schema), still always schema-valid."""
    from secops_ai.agents.actions import Action, action_schema
    from secops_ai.agents.tools.default_tools import default_registry
    from secops_ai.config import get_settings
    from secops_ai.inference.backend import LocalBackend
    from secops_ai.inference.constrained import complete_json, validate_json
    from secops_ai.inference.llamacpp_engine import LlamaCppEngine

    for k, v in ENGINE.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    backend = LocalBackend.load(tiny_llama_dir)
    schema = action_schema(default_registry().schemas())
    messages = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Scan the repo."}]
    try:
        assert isinstance(backend.engine_client.engine, LlamaCppEngine)
        with caplog.at_level("WARNING"):
            for seed, max_tokens in [(0, 8), (1, 48)]:  # random weights, sampled: anything may come out
                reply = complete_json(backend, messages, schema,
                                      GenerationParams(max_tokens=max_tokens, temperature=1.0, seed=seed))
                assert reply.completion_tokens <= max_tokens
                Action.model_validate_json(reply.text)
                validate_json(reply.text, schema)
        assert "token mask" not in caplog.text  # no fallback to the transformers engine
    finally:
        backend.close()
        get_settings.cache_clear()


def test_a_failed_build_warns_and_leaves_transformers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from secops_ai.config import Settings
    from secops_ai.inference import llamacpp_build
    from secops_ai.inference.engines import choose_engine

    monkeypatch.setenv("SECOPS_LLAMACPP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SECOPS_LLAMACPP_SOURCE", str(source_dir()))  # no download: the build itself fails
    monkeypatch.delenv("SECOPS_LLAMACPP_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cmake, ninja or compiler
    assert llamacpp_build.main() == 1
    err = capsys.readouterr().err
    assert "WARNING: llama.cpp was not built" in err and "cmake" in err and "transformers engine" in err
    assert choose_engine(Settings(engine="auto"), "cpu")[0] == "transformers"


@pytest.mark.parametrize("submitted_from", ["thread", "event loop"])
def test_a_llama_server_killed_mid_request_never_leaves_a_caller_waiting(run_a_backend: Any,
                                                                         submitted_from: str) -> None:
    """SIGKILL the child while rows stream: each row ends (an error, or a retry on a fresh child) in bounded
    time, the dead child is reaped (no zombie), and the next request runs on its replacement. Rows from a
    worker thread (evals, agents) stream on engine threads; rows from an event loop (the API) as its tasks."""
    import asyncio
    import signal
    import threading
    import time

    from secops_ai.inference.engine import GenRequest
    from secops_ai.inference.llamacpp_engine import LlamaCppEngine

    backend = run_a_backend
    holder: dict[str, LlamaCppEngine] = {}  # started from a thread that then ends, as an agent run or a
    starter = threading.Thread(target=lambda: holder.setdefault("e", backend.engine_client.engine))
    starter.start()  # to_thread call may: the child must outlive that thread (PR_SET_PDEATHSIG is per thread)
    starter.join()
    engine = holder["e"]
    assert isinstance(engine, LlamaCppEngine)
    killed = engine.server.proc
    time.sleep(1)
    assert killed.poll() is None, f"llama-server died with the thread that started it: {killed.returncode}"
    ids = engine.tokenizer.encode("Explain SQL injection in one line.")
    ends: list[tuple[str, object]] = []
    finished = [threading.Event() for _ in range(4)]

    def emitter(i: int):
        def emit(kind: str, payload: object) -> None:
            if kind == "delta" and i == 0 and killed.poll() is None:
                os.kill(killed.pid, signal.SIGKILL)  # mid-stream: row 0 has emitted text already
            elif kind in ("done", "error"):
                ends.append((kind, payload))
                finished[i].set()
        return emit

    params = GenerationParams(max_tokens=400, temperature=1.0, seed=5)
    rows = [GenRequest(list(ids), params, emitter(i)) for i in range(4)]
    if submitted_from == "thread":
        engine.submit_many(rows)
        ended = all(f.wait(60) for f in finished)
    else:
        async def on_a_loop() -> bool:
            engine.submit_many(rows, loop=asyncio.get_running_loop())
            try:
                return await asyncio.to_thread(lambda: all(f.wait(60) for f in finished))
            finally:
                await engine.close_loop()
        ended = asyncio.run(on_a_loop())
    assert ended, f"rows still waiting after the child died: {ends}"
    assert killed.poll() == -signal.SIGKILL  # reaped, not left a zombie
    for kind, payload in ends:  # a failed row says why, in words a client can show
        assert kind == "done" or ("generation failed" in str(payload) and "llama-server" in str(payload)), payload
    assert backend.chat([PROMPTS[1]], GREEDY)[0]  # the replacement child serves the next request
    assert engine.server.proc is not killed and engine.server.proc.poll() is None


def test_api_rows_stream_the_same_text_in_bursts(run_a_backend: Any) -> None:
    """Rows submitted from an event loop (the API) hand text on in bursts at most every stream interval (fewer
    wakeups of the server per token); the text and its end are exactly what per-token streaming gives."""
    import asyncio

    from secops_ai.inference.engine import GenRequest
    from secops_ai.inference.llamacpp_engine import LlamaCppEngine

    backend = run_a_backend
    client = backend.engine_client
    engine = client.engine
    assert isinstance(engine, LlamaCppEngine)
    ids = client.encode_chat(PROMPTS[1])

    async def stream(interval: float) -> tuple[list[str], dict]:
        engine.stream_interval = interval
        loop = asyncio.get_running_loop()
        deltas: list[str] = []
        end: dict = {}
        ended = asyncio.Event()

        def emit(kind: str, payload: object) -> None:
            if kind == "delta":
                deltas.append(str(payload))
            else:
                end.update(kind=kind, payload=payload)
                loop.call_soon_threadsafe(ended.set)

        engine.submit_many([GenRequest(list(ids), GenerationParams(max_tokens=48, temperature=0.0), emit,
                                       adapter=client.adapter)], loop=loop)
        await asyncio.wait_for(ended.wait(), 60)
        return deltas, end

    async def both() -> tuple[tuple[list[str], dict], tuple[list[str], dict]]:
        try:
            return await stream(0.0), await stream(0.5)
        finally:
            await engine.close_loop()

    (per_token, end0), (bursts, end1) = asyncio.run(both())
    assert end0["kind"] == end1["kind"] == "done"
    assert end0["payload"]["token_ids"] == end1["payload"]["token_ids"]
    assert "".join(bursts) == "".join(per_token) and "".join(bursts).strip()
    tokens = len(end1["payload"]["token_ids"])
    assert tokens >= 10 and len(bursts) <= 3  # 48 tiny-model tokens take well under a second


def test_evolve_generations_on_llama_cpp_are_reproducible(llama_home: Path, tiny_llama_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Evolve's generator on llama.cpp (issue 19: same config, seeds and model => byte-identical preference
    data): sampled rows, several per prompt, give the same text on every call, although llama-server batches
    whatever arrives together and a row's logits depend on its batch. They also match a fresh generator (a
    resumed run starts a new llama-server) and do not depend on the calls made before."""
    from secops_ai.alignment.generate import EngineGenerator, Request, seed_for
    from secops_ai.config import Settings, get_settings

    for k, v in ENGINE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SECOPS_LLM_BASE_URL", raising=False)
    get_settings.cache_clear()
    settings = Settings(home=llama_home, base_model=str(tiny_llama_dir))
    convs = [[{"role": "user", "content": f"Question {i}: how do I audit service {i} for weak credentials?"}]
             for i in range(6)]
    reqs = [Request(c, GenerationParams(max_tokens=24, temperature=1.0, top_p=0.95, seed=seed_for(7, i, k)))
            for i, c in enumerate(convs) for k in range(4)]

    def run(gen: EngineGenerator, rows: list[Request]) -> list[str]:
        return gen.generate(rows)

    gen = EngineGenerator(settings, "builtin/run-a", chunk=8)
    try:
        assert gen.service.engine.kind == "llamacpp"
        first = run(gen, reqs)
        assert len(set(first)) > len(convs), "sampling gave no variety: the test would prove nothing"
        assert run(gen, reqs) == first
        assert run(gen, reqs[8:]) == first[8:]  # nor on the prompts that came before
    finally:
        gen.close()
    fresh = EngineGenerator(settings, "builtin/run-a", chunk=8)
    try:
        assert run(fresh, reqs) == first
    finally:
        fresh.close()
        get_settings.cache_clear()


def test_gate_replies_do_not_depend_on_the_rows_sent_with_them(run_a_backend: Any) -> None:
    """A gate verdict must not change between two runs of the same model: llama-server batches whatever arrives
    together and a row's logits depend on its batch, so the gate's backend sends rows one at a time. Sampled
    rows (the most sensitive to the logits' last bits): the same text alone, in a subset, and in the full call."""
    convs = [[{"role": "user", "content": f"Question {i}: how do I audit service {i} for weak credentials?"}]
             for i in range(8)]
    params = GenerationParams(max_tokens=24, temperature=1.0, top_p=0.95, seed=5)
    assert run_a_backend.engine_client.reproducible
    full = run_a_backend.chat(convs, params)
    assert len(set(full)) > 1, "no variety: the test would prove nothing"
    assert run_a_backend.chat(convs[3:], params) == full[3:]
    assert [run_a_backend.chat([c], params)[0] for c in convs[:2]] == full[:2]
