"""Traces reach a real OTLP receiver: Arize Phoenix, started on 127.0.0.1 from its own venv (make setup).

One chat, one agent run with a tool call (over the API) and one evaluation (through the CLI) are traced
with nothing but the standard OTEL_* variables; the test reads back what Phoenix stored and checks span
names, parent/child links and GenAI attributes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
PHOENIX = REPO / ".venv-phoenix" / "bin" / "phoenix"


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PHOENIX.exists():
        pytest.skip(f"Arize Phoenix is not installed at {PHOENIX} (`make setup` installs it)")
    work = tmp_path_factory.mktemp("phoenix")
    port, grpc = free_port(), free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(work), "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_TELEMETRY_ENABLED": "false"}
    with open(work / "phoenix.log", "w") as log:
        proc = subprocess.Popen([str(PHOENIX), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (work / "phoenix.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise TimeoutError("Phoenix did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _otel_env(phoenix: str, service: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": phoenix, "OTEL_SERVICE_NAME": service, "OTEL_BSP_SCHEDULE_DELAY": "200"}


def _spans(phoenix: str, want: int, *, timeout: float = 60.0) -> list[dict]:
    deadline, spans = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        resp = httpx.get(f"{phoenix}/v1/projects/default/spans", params={"limit": 1000})
        spans = resp.json()["data"] if resp.status_code == 200 else []
        if len(spans) >= want:
            return spans
        time.sleep(0.5)
    return spans


def test_chat_agent_and_eval_traces_arrive_linked(phoenix: str, tmp_path: Path, tiny_llama_dir: Path,
                                                   start_server) -> None:
    repo = tmp_path / "roots" / "repo"
    repo.mkdir(parents=True)
    (repo / "app.py").write_text("import subprocess\nsubprocess.call('ls', shell=True)\n")
    home = tmp_path / "home"
    server = start_server({"SECOPS_HOME": str(home), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
                           "SECOPS_AGENT_WORKSPACE_ROOTS": str(tmp_path / "roots"),
                           **_otel_env(phoenix, "secops-test")})
    chat = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60, json={
        "model": "default", "messages": [{"role": "user", "content": "What is CWE-79?"}], "max_tokens": 5})
    assert chat.status_code == 200, chat.text
    started = httpx.post(f"{server.base_url}/agents/runs", timeout=60, json={
        "task": "scan", "workspace": str(repo), "model": "scripted",
        "script": {"actions": [{"tool": "run_scanner", "args": {"scanner": "bandit"}}], "delay_s": 0}})
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    deadline = time.monotonic() + 120
    while not httpx.get(f"{server.base_url}/agents/runs/{run_id}").json()["finished_at"]:
        assert time.monotonic() < deadline, "agent run did not finish"
        time.sleep(0.3)
    server.stop()  # flushes the exporter

    gate = REPO / "tests" / "evals" / "gate-test.yaml"
    env = {**os.environ, "SECOPS_HOME": str(home), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
           **_otel_env(phoenix, "secops-eval")}
    evaluated = subprocess.run([sys.executable, "-m", "secops_ai.cli.main", "eval", "run", "base", "--gate",
                                str(gate), "--no-base", "--no-cache", "--no-record", "--json"],
                               env=env, capture_output=True, text=True, timeout=600)
    assert evaluated.returncode in (0, 1), evaluated.stderr[-3000:]  # 1: the tiny model fails the gate

    spans = _spans(phoenix, want=8)
    by_id = {s["context"]["span_id"]: s for s in spans}
    names = [s["name"] for s in spans]

    def parent(span: dict) -> dict | None:
        return by_id.get(span["parent_id"]) if span["parent_id"] else None

    # chat: a GenAI client span under the HTTP server span of the route, with usage and finish reasons
    chat_span = next(s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat"
                     and str(s["attributes"].get("gen_ai.response.id", "")).startswith("chatcmpl"))
    attrs = chat_span["attributes"]
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"]
    assert attrs["gen_ai.usage.input_tokens"] > 0 and 0 < attrs["gen_ai.usage.output_tokens"] <= 5
    assert attrs["gen_ai.response.finish_reasons"] in (["stop"], ["length"])
    assert attrs["gen_ai.request.max_tokens"] == 5 and "gen_ai.response.time_to_first_chunk" in attrs
    http = parent(chat_span)
    assert http is not None and "/v1/chat/completions" in http["name"], names
    assert chat_span["context"]["trace_id"] == http["context"]["trace_id"]
    # no content without the opt-in: the question's text is nowhere in the span
    assert "CWE-79" not in json.dumps(chat_span)

    # agent: invoke_agent inside the POST's trace, execute_tool as its child with the tool's facts
    agent = next(s for s in spans if s["name"].startswith("invoke_agent"))
    assert agent["attributes"]["gen_ai.agent.id"] == run_id
    assert agent["attributes"]["secops.agent.outcome"] in ("succeeded", "failed", "budget_exhausted")
    post = parent(agent)
    assert post is not None and "/agents/runs" in post["name"], "the run continues the request's trace"
    calls = [s for s in spans if parent(s) is agent and s["attributes"].get("gen_ai.operation.name") == "chat"]
    assert calls and all("secops.agent.purpose" in s["attributes"] for s in calls), "model calls beneath the run"
    tool = next(s for s in spans if s["name"] == "execute_tool run_scanner")
    assert parent(tool) is agent
    assert tool["attributes"]["gen_ai.tool.name"] == "run_scanner"
    assert tool["attributes"]["gen_ai.tool.call.id"].startswith("call_")
    assert tool["attributes"]["secops.tool.approval"] == "not_needed" and tool["attributes"]["secops.tool.ok"]
    # the trajectory's events carry the same trace id, so a JSONL line joins its trace
    lines = [json.loads(x) for x in (home / "storage" / "agent_runs" / f"{run_id}.jsonl").read_text().splitlines()]
    assert {e.get("trace_id") for e in lines} == {agent["context"]["trace_id"]}

    # eval: one evaluate span with a child per suite carrying the scores
    evaluate = next(s for s in spans if s["name"] == "evaluate base" or s["name"].startswith("evaluate "))
    suites = [s for s in spans if s["name"].startswith("eval ") and parent(s) is evaluate]
    assert {s["attributes"]["secops.eval.suite"] for s in suites} >= {"toxicity", "policy", "hallucination"}
    policy = next(s for s in suites if s["attributes"]["secops.eval.suite"] == "policy")
    assert 0.0 <= policy["attributes"]["secops.eval.harmful_refusal_rate"] <= 1.0
    assert isinstance(policy["attributes"]["secops.eval.passed"], bool)
