"""Fixtures for training tests: tiny datasets in the store and a config factory over the tiny Llama."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.config import Workspace

SFT_RECORDS = [
    {"messages": [{"role": "user", "content": "What is SQL injection?"},
                  {"role": "assistant", "content": "Untrusted input changes a SQL query. Use parameters."}]},
    {"messages": [{"role": "system", "content": "You are a security assistant."},
                  {"role": "user", "content": "Name the CWE for XSS."},
                  {"role": "assistant", "content": "CWE-79."}]},
    {"prompt": "Is MD5 safe for passwords?", "completion": "No. Use a slow hash such as argon2 or bcrypt."},
    {"messages": [{"role": "user", "content": "What does CSRF stand for?"},
                  {"role": "assistant", "content": "Cross-site request forgery."},
                  {"role": "user", "content": "How to stop it?"},
                  {"role": "assistant", "content": "Anti-CSRF tokens and SameSite cookies."}]},
    {"messages": [{"role": "user", "content": "Is eval() on user input risky?"},
                  {"role": "assistant", "content": "Yes: it runs arbitrary code (CWE-95)."}]},
    {"messages": [{"role": "user", "content": "What port does SSH use?"},
                  {"role": "assistant", "content": "22."}]},
    {"prompt": "What is a CVE?", "completion": "A public identifier for a known vulnerability."},
    {"messages": [{"role": "user", "content": "Define least privilege."},
                  {"role": "assistant", "content": "Grant only the access a task needs."}]},
]

DPO_RECORDS = [
    {"prompt": "How should passwords be stored?", "chosen": "Hashed with argon2id and a salt.",
     "rejected": "In plain text in the database."},
    {"prompt": "Should I disable TLS verification?", "chosen": "No; fix the certificate chain instead.",
     "rejected": "Yes, set verify=False everywhere."},
    {"prompt": "How to build SQL with user input?", "chosen": "Use parameterized queries.",
     "rejected": "Concatenate the strings."},
    {"prompt": "Is pickle safe for untrusted data?", "chosen": "No, it can execute code; use JSON.",
     "rejected": "Yes, pickle is safe."},
]


@pytest.fixture
def sft_dataset(workspace: Workspace) -> str:
    from secops_ai.data.store import DatasetStore

    return DatasetStore(workspace).create("test", "sec-sft", "chat", [r for r in SFT_RECORDS if "messages" in r]
                                          ).ref


@pytest.fixture
def mixed_sft_dataset(workspace: Workspace) -> str:
    from secops_ai.data.store import DatasetStore

    store = DatasetStore(workspace)
    store.create("test", "sec-pc", "prompt_completion", [r for r in SFT_RECORDS if "prompt" in r])
    return store.create("test", "sec-sft", "chat", [r for r in SFT_RECORDS if "messages" in r]).ref


@pytest.fixture
def dpo_dataset(workspace: Workspace) -> str:
    from secops_ai.data.store import DatasetStore

    return DatasetStore(workspace).create("test", "sec-dpo", "preference", DPO_RECORDS).ref


@pytest.fixture
def tiny_config(tiny_llama_dir: Path):
    """``tiny_config(dataset, **overrides)`` -> a RunConfig over the tiny Llama that trains in seconds."""
    from secops_ai.training.config import RunConfig

    def make(dataset: str, **overrides) -> RunConfig:
        data = dict(model_name_or_path=str(tiny_llama_dir), dataset=dataset, lora_rank=4, max_steps=4,
                    per_device_train_batch_size=2, learning_rate=1e-2, cutoff_len=128, logging_steps=1,
                    save_steps=2, seed=7)
        data.update(overrides)
        return RunConfig.from_dict(data)

    return make
