"""Exports: LLaMA-Factory (``dataset_info.json`` + data file) and Hugging Face ``datasets`` (offline).

LLaMA-Factory formats (field names from its ``data/README.md``):

* chat                → ``formatting: sharegpt`` in the OpenAI layout (``messages`` with ``role``/``content``
                        tags), or ``alpaca`` (instruction/input/output/system/history) on request
* prompt_completion   → ``alpaca`` (string prompts) or ``sharegpt`` (conversational)
* preference          → ``ranking: true``: ``alpaca`` (instruction/input/chosen/rejected) for string records,
                        ``sharegpt`` (``messages`` + ``chosen``/``rejected`` message objects) for conversations
* text, log           → pre-training: ``columns: {"prompt": "text"}``
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from secops_ai.config.atomic import atomic_write_text
from secops_ai.data.schemas import DatasetKind
from secops_ai.data.store import Dataset, DatasetError, DatasetStore

Style = Literal["auto", "sharegpt", "alpaca"]

_OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                "observation_tag": "tool", "system_tag": "system"}


def _split_system(messages: list[dict[str, str]]) -> tuple[str | None, list[dict[str, str]]]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return None, messages


def _alpaca_from_messages(messages: list[dict[str, str]], where: str) -> dict[str, Any]:
    """A conversation ending in an assistant turn → alpaca instruction/output with earlier turns as history."""
    system, rest = _split_system(messages)
    turns = [m for m in rest if m["role"] in ("user", "assistant")]
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or turns[-2]["role"] != "user":
        raise DatasetError(f"{where}: alpaca needs a conversation ending in a user turn then an assistant turn")
    history = []
    pending: str | None = None
    for m in turns[:-2]:
        if m["role"] == "user":
            pending = m["content"]
        elif pending is not None:
            history.append([pending, m["content"]])
            pending = None
    out: dict[str, Any] = {"instruction": turns[-2]["content"], "input": "", "output": turns[-1]["content"]}
    if system:
        out["system"] = system
    if history:
        out["history"] = history
    return out


def _rows(ds: Dataset, style: str) -> Iterator[dict[str, Any]]:
    kind = ds.manifest.kind
    for n, rec in enumerate(ds.iter_records(), start=1):
        where = f"{ds.ref} record {n}"
        if kind == DatasetKind.chat:
            if style == "alpaca":
                yield _alpaca_from_messages(rec["messages"], where)
            else:
                yield {"messages": rec["messages"]}
        elif kind == DatasetKind.prompt_completion:
            p, c = rec["prompt"], rec["completion"]
            if isinstance(p, str):
                yield {"instruction": p, "input": "", "output": c}
            elif style == "alpaca":
                yield _alpaca_from_messages(p + c, where)
            else:
                yield {"messages": p + c}
        elif kind == DatasetKind.preference:
            p, ch, rj = rec["prompt"], rec["chosen"], rec["rejected"]
            if isinstance(p, str):
                yield {"instruction": p, "input": "", "chosen": ch, "rejected": rj}
            else:
                if len(ch) != 1 or len(rj) != 1:
                    raise DatasetError(f"{where}: LLaMA-Factory ranking needs exactly one chosen and one rejected "
                                       "message")
                yield {"messages": p, "chosen": ch[0], "rejected": rj[0]}
        elif kind in (DatasetKind.text, DatasetKind.log):
            yield {"text": rec["text"]}
        else:
            raise DatasetError(f"{ds.ref} is a '{kind.value}' dataset (importer output); generate a training "
                               "dataset from it first (secops-ai data generate ...)")


def _entry(ds: Dataset, style: str, file_name: str, sha1: str, conversational: bool) -> dict[str, Any]:
    kind = ds.manifest.kind
    if kind in (DatasetKind.text, DatasetKind.log):
        return {"file_name": file_name, "file_sha1": sha1, "columns": {"prompt": "text"}}
    if kind == DatasetKind.preference:
        if conversational:
            return {"file_name": file_name, "file_sha1": sha1, "formatting": "sharegpt", "ranking": True,
                    "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"},
                    "tags": dict(_OPENAI_TAGS)}
        return {"file_name": file_name, "file_sha1": sha1, "ranking": True,
                "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}}
    if style == "alpaca" or not conversational:
        return {"file_name": file_name, "file_sha1": sha1, "formatting": "alpaca",
                "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                            "history": "history"}}
    return {"file_name": file_name, "file_sha1": sha1, "formatting": "sharegpt", "columns": {"messages": "messages"},
            "tags": dict(_OPENAI_TAGS)}


def entry_name(ds: Dataset) -> str:
    """The key a dataset gets in ``dataset_info.json``: ``<provider>_<name>_v<N>``."""
    m = ds.manifest
    return f"{m.provider}_{m.name}_v{m.version}".replace("-", "_").replace(".", "_")


def export_llamafactory(store: DatasetStore, ref: str, out_dir: Path | str, *, style: Style = "auto",
                        entry: str | None = None) -> Path:
    """Write ``<entry>.jsonl`` and add/replace its entry in ``out_dir/dataset_info.json``; return the data file.

    Other entries already in ``dataset_info.json`` are kept, so several datasets can share one LLaMA-Factory
    ``dataset_dir``. Both files are written atomically.
    """
    ds = store.get(ref)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = entry or entry_name(ds)
    data_path = out / f"{name}.jsonl"
    first = ds.head(1)
    conversational = bool(first) and not isinstance(first[0].get("prompt", first[0].get("messages")), str)
    fd, tmp = tempfile.mkstemp(prefix=f".{data_path.name}.", suffix=".tmp", dir=out)
    sha1 = hashlib.sha1()
    try:
        with os.fdopen(fd, "wb") as fh:
            for row in _rows(ds, style):
                line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
                sha1.update(line)
                fh.write(line)
        os.chmod(tmp, _public_mode())  # mkstemp makes 0600; an export is for other tools and users to read
        os.replace(tmp, data_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    info_path = out / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{info_path}: not valid JSON ({exc.msg}, line {exc.lineno}); not overwriting it") from None
    info[name] = _entry(ds, style, data_path.name, sha1.hexdigest(), conversational)
    atomic_write_text(info_path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    os.chmod(info_path, _public_mode())
    return data_path


def _public_mode() -> int:
    """0644 minus the process umask: what a plain ``open(..., "w")`` would have created."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o644 & ~umask


def to_hf_dataset(ref: str | Dataset, store: DatasetStore | None = None, *, drop_metadata: bool = False,
                  cache_dir: Path | str | None = None):  # -> datasets.Dataset
    """Load a stored version with Hugging Face ``datasets`` (offline, from the local ``records.jsonl``).

    ``drop_metadata=True`` removes the ``metadata`` column (TRL trainers only need the format's columns).
    """
    from datasets import load_dataset

    if isinstance(ref, Dataset):
        ds = ref
    else:
        from secops_ai.data.store import default_store

        ds = (store or default_store()).get(ref)
    cache = Path(cache_dir) if cache_dir else ds.path.parents[2] / ".cache" / "hf-datasets"
    hf = load_dataset("json", data_files=str(ds.records_path), split="train", cache_dir=str(cache))
    if drop_metadata and "metadata" in hf.column_names:
        hf = hf.remove_columns("metadata")
    return hf
