"""LLaMA-Factory export (exact dataset_info.json fields) and offline Hugging Face datasets loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from secops_ai.data.export import export_llamafactory, to_hf_dataset
from secops_ai.data.store import DatasetError, DatasetStore

OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "system_tag": "system"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_llamafactory_sharegpt_and_ranking_entries(starter_store: DatasetStore, tmp_path: Path) -> None:
    sft_file = export_llamafactory(starter_store, "starter/security-sft@1", tmp_path)
    dpo_file = export_llamafactory(starter_store, "starter/security-dpo@1", tmp_path)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    sft, dpo = info["starter_security_sft_v1"], info["starter_security_dpo_v1"]
    assert sft["file_name"] == sft_file.name and sft["formatting"] == "sharegpt"
    assert sft["columns"] == {"messages": "messages"} and sft["tags"] == OPENAI_TAGS
    assert dpo["ranking"] is True and dpo["formatting"] == "sharegpt"
    assert dpo["columns"] == {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}
    rows = _lines(dpo_file)
    assert len(rows) == starter_store.get("starter/security-dpo@1").manifest.record_count
    first = rows[0]
    assert set(first) == {"messages", "chosen", "rejected"}
    assert [m["role"] for m in first["messages"]] == ["system", "user"]  # system first, then an odd user turn
    assert first["chosen"]["role"] == first["rejected"]["role"] == "assistant"
    assert set(_lines(sft_file)[0]) == {"messages"}  # metadata is not exported
    # named as docs/datasets.md says, and readable by the tools and users it is exported for (not 0600)
    assert sft_file.name == "starter_security_sft_v1.jsonl"
    old_umask = os.umask(0o022)
    try:
        again = export_llamafactory(starter_store, "starter/security-sft@1", tmp_path / "again")
    finally:
        os.umask(old_umask)
    assert again.stat().st_mode & 0o777 == 0o644
    assert (again.parent / "dataset_info.json").stat().st_mode & 0o777 == 0o644


def test_llamafactory_alpaca_and_string_ranking(store: DatasetStore, starter_store: DatasetStore,
                                                tmp_path: Path) -> None:
    path = export_llamafactory(starter_store, "starter/security-sft@1", tmp_path, style="alpaca", entry="sft_alpaca")
    row = _lines(path)[0]
    assert set(row) == {"instruction", "input", "output", "system"} and row["instruction"].startswith("Triage")
    store.create("acme", "pref", "preference", [{"prompt": "q", "chosen": "good", "rejected": "bad"}])
    store.create("acme", "corpus", "text", [{"text": "Nov 25 host sshd[1]: hello"}])
    export_llamafactory(store, "acme/pref@1", tmp_path)
    export_llamafactory(store, "acme/corpus@1", tmp_path)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["sft_alpaca"]["columns"] == {"prompt": "instruction", "query": "input", "response": "output",
                                             "system": "system", "history": "history"}
    assert info["acme_pref_v1"] == {**info["acme_pref_v1"], "ranking": True,
                                    "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                                "rejected": "rejected"}}
    assert _lines(tmp_path / "acme_pref_v1.jsonl") == [{"instruction": "q", "input": "", "chosen": "good",
                                                        "rejected": "bad"}]
    assert info["acme_corpus_v1"]["columns"] == {"prompt": "text"}
    assert set(info) >= {"sft_alpaca", "acme_pref_v1", "acme_corpus_v1"}  # earlier entries are kept


def test_importer_output_is_not_exported_as_training_data(starter_store: DatasetStore, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="generate a training dataset"):
        export_llamafactory(starter_store, "starter/sample-findings@1", tmp_path)


def test_hf_datasets_loads_stored_versions_offline(starter_store: DatasetStore, tmp_path: Path) -> None:
    sft = to_hf_dataset("starter/security-sft@1", starter_store, cache_dir=tmp_path)
    assert sft.num_rows == starter_store.get("starter/security-sft@1").manifest.record_count
    assert sft.column_names == ["messages", "metadata"]
    assert sft[0]["messages"][1]["role"] == "user"
    dpo = to_hf_dataset("starter/security-dpo@1", starter_store, drop_metadata=True, cache_dir=tmp_path)
    assert dpo.column_names == ["prompt", "chosen", "rejected"]
