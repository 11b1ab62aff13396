"""Servers shared by the serving tests: real `secops-ai serve` processes on 127.0.0.1 free ports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import ServerProcess, build_tiny_llama, make_lora_adapter


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path, smollm2_tokenizer_dir: Path) -> Path:
    """A workspace with a good adapter, a corrupt one and one made for another base model."""
    home = tmp_path_factory.mktemp("served") / "secops-home"
    models = home / "models"
    make_lora_adapter(tiny_llama_dir, models / "builtin" / "run-good", seed=3)
    broken = models / "builtin" / "run-broken"
    make_lora_adapter(tiny_llama_dir, broken, seed=4)
    (broken / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    other_base = build_tiny_llama(home.parent / "other-base", smollm2_tokenizer_dir, seed=5)
    cfg = json.loads((other_base / "config.json").read_text())
    cfg["hidden_size"], cfg["intermediate_size"] = 32, 64
    (other_base / "config.json").write_text(json.dumps(cfg))
    # Rebuild weights for the changed shape so the adapter really is for another architecture.
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(5)
    LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
                     ).save_pretrained(other_base)
    make_lora_adapter(other_base, models / "other" / "run-mismatch", seed=6)
    return home


@pytest.fixture(scope="module")
def server(served_home: Path, tiny_llama_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess({"SECOPS_HOME": str(served_home), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
                          "SECOPS_MAX_REQUEST_BYTES": "65536", "SECOPS_MAX_NEW_TOKENS": "512"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
