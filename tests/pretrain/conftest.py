"""Fixtures for pretraining tests: tiny corpora and tiny configs that train in about a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secops_ai.config import Workspace, get_settings
from secops_ai.training.pretrain.config import PretrainConfig, validate_config
from secops_ai.training.pretrain.corpus import CorpusSpec, build_corpus

KEY = "test-obfuscation-key"


def tiny_config(corpus: str, **overrides: Any) -> PretrainConfig:
    """A 2-layer, 32-wide GPT on 32-token windows: a few dozen iterations take about a second."""
    data: dict[str, Any] = {
        "corpus": corpus,
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.0},
        "batch_size": 8,
        "max_iters": 20,
        "lr_decay_iters": 20,
        "warmup_iters": 4,
        "learning_rate": 3e-3,
        "eval_interval": 10,
        "eval_iters": 2,
        "log_interval": 1,
        "device": "cpu",
    }
    for key, value in overrides.items():
        if key == "model":
            data["model"] = {**data["model"], **value}
        else:
            data[key] = value
    return validate_config(data, "tiny test config")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and the CI machine's two cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def key() -> str:
    """The pseudonymisation key the test corpora are built with."""
    return KEY


@pytest.fixture
def tiny() -> Any:
    """``tiny(corpus, **overrides)`` → a tiny :class:`PretrainConfig` (see :func:`tiny_config`)."""
    return tiny_config


@pytest.fixture
def log_corpus(workspace: Workspace) -> Path:
    """A pseudonymised char-level corpus of 1,500 synthetic log lines in the test workspace."""
    return build_corpus(workspace.nanogpt_data, CorpusSpec(name="logs", synthetic_lines=1500, seed=3), key=KEY)


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One SECOPS_HOME shared by a module's tests (for a model trained once and used by several tests)."""
    home = tmp_path_factory.mktemp("pretrain-home") / "secops-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SECOPS_HOME", str(home))
        for var in ("SECOPS_ADAPTER", "SECOPS_LLM_BASE_URL", "SECOPS_API_KEYS", "SECOPS_BASE_MODEL", "DATABASE_URL"):
            mp.delenv(var, raising=False)
        get_settings.cache_clear()
        yield Workspace(home).ensure()
    get_settings.cache_clear()
