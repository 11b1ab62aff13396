"""GGUF files written by llama.cpp's own converters (issue 17): adapters beside their peft files with their hash
in the model card, and `secops-ai models export-gguf` files that the built llama-server loads and runs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from secops_ai.cli.main import app
from secops_ai.config import Workspace
from secops_ai.inference.gguf import adapter_gguf, sha256
from secops_ai.inference.llamacpp_build import server_binary, source_dir
from secops_ai.registry import model_card
from tests.conftest import make_lora_adapter


@pytest.fixture(autouse=True)
def _built() -> None:
    if server_binary() is None or source_dir() is None:
        pytest.fail("llama-server is not built: run `make setup` (python -m secops_ai.inference.llamacpp_build)")


def _adapter_run(workspace: Workspace, base: Path, run: str, seed: int) -> Path:
    path = make_lora_adapter(base, workspace.models / "builtin" / run, seed=seed)
    (path / "run.json").write_text(json.dumps({"kind": "adapter", "base_model_path": str(base)}))
    return path


def test_adapter_gguf_sits_beside_the_adapter_with_its_hash_in_the_card(workspace: Workspace,
                                                                         tiny_llama_dir: Path) -> None:
    path = _adapter_run(workspace, tiny_llama_dir, "run-card", seed=21)
    model_card.write_card(path, {"license": "apache-2.0", "tags": ["lora"]}, "# builtin/run-card\n")
    assert CliRunner().invoke(app, ["models", "list"]).exit_code == 0  # any command wires the card hook
    gguf = adapter_gguf(path, tiny_llama_dir)
    assert gguf.parent == path and gguf.read_bytes()[:4] == b"GGUF"
    front, body = model_card.read_card(path)
    assert front["gguf"]["file"] == gguf.name and front["gguf"]["sha256"] == sha256(gguf)
    assert front["tags"] == ["lora"] and body == "# builtin/run-card\n"  # the rest of the card kept
    before = gguf.stat().st_mtime_ns
    assert adapter_gguf(path, tiny_llama_dir) == gguf and gguf.stat().st_mtime_ns == before  # converted once


def _complete(binary: Path, gguf: Path, prompt: list[int]) -> list[int]:
    from secops_ai.inference.llamacpp_engine import LlamaServer

    server = LlamaServer(binary, gguf, threads=2, parallel=1, ctx_per_slot=256)
    server.start(timeout=60)
    try:
        reply = httpx.post(f"{server.url}/completion", json={"prompt": prompt, "n_predict": 6, "temperature": 0,
                                                              "return_tokens": True, "ignore_eos": True}, timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.json()["tokens"]
    finally:
        server.stop()


def test_export_gguf_of_an_adapter_loads_in_llama_server(workspace: Workspace, tiny_llama_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))
    _adapter_run(workspace, tiny_llama_dir, "run-export", seed=22)
    runner = CliRunner()
    merged, base = tmp_path / "merged.gguf", tmp_path / "base.gguf"
    result = runner.invoke(app, ["models", "export-gguf", "builtin/run-export", "--out", str(merged), "--quant", "f32"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["models", "export-gguf", "base", "--out", str(base), "--quant", "f32"]).exit_code == 0
    assert merged.read_bytes()[:4] == b"GGUF" and sha256(merged) != sha256(base)  # the adapter is in the weights
    prompt = [1, 504, 3458, 314, 253]
    merged_tokens, base_tokens = _complete(server_binary(), merged, prompt), _complete(server_binary(), base, prompt)
    assert len(merged_tokens) == 6 and len(base_tokens) == 6 and merged_tokens != base_tokens
    # refusing to overwrite, and unknown models, are one clear CLI line
    again = runner.invoke(app, ["models", "export-gguf", "base", "--out", str(base)])
    assert again.exit_code != 0 and "already exists" in again.output
    missing = runner.invoke(app, ["models", "export-gguf", "builtin/nope", "--out", str(tmp_path / "x.gguf")])
    assert missing.exit_code != 0 and "builtin/nope" in missing.output
