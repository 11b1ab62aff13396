"""Debian's real Prometheus scrapes `secops-ai serve` with the shipped infra/prometheus.yml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def test_shipped_scrape_config_scrapes_the_server(tmp_path: Path, tiny_llama_dir: Path, start_server) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's `prometheus` is not installed (`make setup` installs it)")
    server = start_server({"SECOPS_HOME": str(tmp_path / "home"), "SECOPS_BASE_MODEL": str(tiny_llama_dir)})
    chat = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60, json={
        "model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert chat.status_code == 200, chat.text

    # The shipped file, changed only where a test must: the server's port and a fast scrape interval.
    config = yaml.safe_load((REPO / "infra" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{server.port}"]
    config["global"]["scrape_interval"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        api = f"http://127.0.0.1:{port}/api/v1"
        deadline, samples = time.monotonic() + 60, []
        while time.monotonic() < deadline and not samples:
            time.sleep(1)
            try:
                resp = httpx.get(f"{api}/query", params={
                    "query": 'secops_requests_total{job="secops-ai",route="/v1/chat/completions",status="200"}'})
            except httpx.HTTPError:
                continue
            samples = resp.json().get("data", {}).get("result", []) if resp.status_code == 200 else []
        assert samples, "Prometheus never scraped the chat request counter"
        assert float(samples[0]["value"][1]) >= 1
        targets = httpx.get(f"{api}/targets").json()["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"]
        tokens = httpx.get(f"{api}/query", params={"query": "secops_completion_tokens_total"}).json()
        assert tokens["data"]["result"], "token counters are exported too"
        # Every series the shipped Grafana dashboard plots is one this server exports.
        dashboard = json.loads((REPO / "infra" / "grafana" / "secops-serving-dashboard.json").read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        exported = httpx.get(f"{server.base_url}/metrics").text
        for name in {m for e in exprs for m in re.findall(r"secops_[a-z_]+", e)}:
            assert re.search(rf"^{name}[{{ ]", exported, re.M), f"dashboard plots {name}, which /metrics lacks"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
