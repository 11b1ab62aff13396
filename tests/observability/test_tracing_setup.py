"""Tracing is off unless the standard OTEL_* variables ask for it; JSON logs carry the trace ids."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from secops_ai.observability import tracing
from secops_ai.observability.logging import JsonFormatter
from tests.conftest import free_port


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_only_the_standard_variables_turn_tracing_on(monkeypatch, env: dict[str, str], on: bool) -> None:
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.tracing_requested() is on


def test_unset_means_no_sdk_and_no_recording() -> None:
    """A fresh process with no OTEL_* variables builds the app without installing any tracer provider."""
    code = (
        "from opentelemetry import trace\n"
        "from secops_ai.api.app import create_app\n"
        "from secops_ai.observability import tracing\n"
        "create_app(load_model=False)\n"
        "with tracing.genai_span('chat', 'm') as span:\n"
        "    assert not span.is_recording()\n"
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
        "assert tracing.current_ids() == (None, None)\n"
        "print('off')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("off"), out.stderr


def test_json_formatter_carries_the_current_span_ids() -> None:
    tracer = TracerProvider().get_tracer("t")
    record = logging.LogRecord("secops_ai.x", logging.WARNING, __file__, 1, "queue %s full", ("q",), None)
    outside = json.loads(JsonFormatter().format(record))
    assert outside["trace_id"] is None and outside["message"] == "queue q full" and outside["level"] == "WARNING"
    with tracer.start_as_current_span("s") as span:
        inside = json.loads(JsonFormatter().format(record))
    ctx = span.get_span_context()
    assert inside["trace_id"] == f"{ctx.trace_id:032x}" and inside["span_id"] == f"{ctx.span_id:016x}"
    assert inside["logger"] == "secops_ai.x" and inside["ts"].endswith("+00:00")


def test_server_logs_are_json_lines_when_asked(tmp_path: Path, tiny_llama_dir: Path) -> None:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "SECOPS_LOG_FORMAT": "json",
           "SECOPS_HOME": str(tmp_path), "SECOPS_BASE_MODEL": str(tiny_llama_dir), "SECOPS_PORT": str(port),
           "SECOPS_HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "secops_ai.cli.main", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message", "trace_id", "span_id"} <= set(e) for e in entries)
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # uvicorn's lines too, not plain text
    assert any("/v1/models" in e["message"] for e in entries)  # the access log
