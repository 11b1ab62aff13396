"""Turn a dataset version from the store into what a trainer consumes.

SFT examples are tokenized here, not by TRL: the conversation is rendered with the tokenizer's own chat
template (:func:`secops_ai.inference.chat_template.apply_chat_template` renders prompts the same way at serving
time) and the loss mask covers exactly the assistant turns. SmolLM2's template has no ``{% generation %}``
markers, so TRL's ``assistant_only_loss`` cannot be used; the mask comes from character offsets of each
assistant turn instead, which works for any prefix-preserving template.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Message = dict[str, str]


class DatasetFormatError(ValueError):
    """A record cannot be used for the configured stage; the message names the dataset and record."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the model card and the run record say about the training data."""

    ref: str              # "provider/name@N" as resolved by the store
    records: int
    files: dict[str, str]  # file name -> sha256, from the manifest
    manifest_sha256: str | None = None


STAGE_KINDS = {"sft": {"chat", "prompt_completion", "text"}, "dpo": {"preference"}, "orpo": {"preference"}}


def resolve_dataset_ref(store: Any, spec: str) -> str:
    """``provider/name@N`` as is; ``name@N`` is looked up across providers and must be unambiguous."""
    if "/" in spec:
        return spec
    name, _, version = spec.partition("@")
    providers = sorted({m.provider for m in store.list() if m.name == name})
    if len(providers) != 1:
        found = f"found under {', '.join(providers)}" if providers else "no provider has it"
        raise DatasetFormatError(f"dataset: {spec!r} is ambiguous or unknown ({found}); write 'provider/{spec}'")
    return f"{providers[0]}/{name}@{version}"


def load_dataset_version(workspace: Any, spec: str, *, stage: str) -> tuple[list[dict], DatasetInfo]:
    """Read a dataset version's records after checking them against their manifest hashes."""
    from secops_ai.data.store import MANIFEST_FILE, DatasetStore

    store = DatasetStore(workspace)
    ref = resolve_dataset_ref(store, spec)
    dataset = store.get(ref)
    problems = store.verify(ref)
    if problems:
        raise DatasetFormatError(f"dataset {ref} fails verification, refusing to train on it: {'; '.join(problems)}")
    kind = str(getattr(dataset.manifest.kind, "value", dataset.manifest.kind))
    if kind not in STAGE_KINDS[stage]:
        raise DatasetFormatError(f"dataset: {ref} holds {kind} records; stage {stage} needs "
                                 f"{' or '.join(sorted(STAGE_KINDS[stage]))} records")
    records = list(dataset.iter_records())
    files = {name: digest.sha256 for name, digest in dataset.manifest.files.items()}
    manifest_sha = hashlib.sha256((dataset.path / MANIFEST_FILE).read_bytes()).hexdigest()
    return records, DatasetInfo(ref=dataset.ref, records=len(records), files=files, manifest_sha256=manifest_sha)


# ---------------------------------------------------------------------------------------------------- SFT


def to_messages(record: dict, *, where: str) -> list[Message] | None:
    """A conversation for SFT, or ``None`` for a plain-text record (``text``)."""
    if "messages" in record:
        msgs = record["messages"]
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
            raise DatasetFormatError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
        return [{"role": m["role"], "content": m.get("content") or ""} for m in msgs]
    if "prompt" in record and "completion" in record:
        # String prompt/completion pairs are served through the chat endpoint, so they are trained as one
        # user turn and one assistant turn rendered with the same template.
        prompt, completion = record["prompt"], record["completion"]
        prompt_msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
        completion_msgs = (completion if isinstance(completion, list)
                           else [{"role": "assistant", "content": str(completion)}])
        return [*prompt_msgs, *completion_msgs]
    if "text" in record:
        return None
    raise DatasetFormatError(
        f"{where}: an SFT record needs 'messages', 'prompt'+'completion' or 'text' (has {sorted(record)})")


def render(tokenizer: Any, messages: list[Message], *, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def tokenize_sft(tokenizer: Any, record: dict, *, train_on_prompt: bool, where: str) -> dict[str, list[int]]:
    """``input_ids`` and ``assistant_masks`` (1 where the loss applies) for one record."""
    messages = to_messages(record, where=where)
    if messages is None:
        text = str(record["text"])
        if tokenizer.eos_token and not text.endswith(tokenizer.eos_token):
            text += tokenizer.eos_token
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        return {"input_ids": ids, "assistant_masks": [1] * len(ids)}
    if not any(m["role"] == "assistant" for m in messages):
        raise DatasetFormatError(f"{where}: the conversation has no assistant turn to learn from")
    full = render(tokenizer, messages, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:i], generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise DatasetFormatError(
                f"{where}: the chat template does not render conversations prefix-consistently, so assistant "
                "tokens cannot be located; set train_on_prompt: true to train on every token")
        spans.append((len(prefix), len(upto)))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    mask = []
    for start, end in enc["offset_mapping"]:
        inside = any(s <= start and end <= e and end > start for s, e in spans)
        mask.append(1 if (inside or train_on_prompt) else 0)
    return {"input_ids": list(enc["input_ids"]), "assistant_masks": mask}


def build_sft_dataset(tokenizer: Any, records: Iterable[dict], *, train_on_prompt: bool, cutoff_len: int,
                      dataset_ref: str):
    """A ``datasets.Dataset`` of tokenized examples (input_ids, assistant_masks) ready for SFTTrainer."""
    from datasets import Dataset

    rows: dict[str, list] = {"input_ids": [], "assistant_masks": []}
    for i, record in enumerate(records):
        out = tokenize_sft(tokenizer, record, train_on_prompt=train_on_prompt, where=f"{dataset_ref} record {i + 1}")
        ids, mask = out["input_ids"][:cutoff_len], out["assistant_masks"][:cutoff_len]
        if not any(mask):
            continue  # truncation removed every assistant token: nothing to learn from this one
        rows["input_ids"].append(ids)
        rows["assistant_masks"].append(mask)
    if not rows["input_ids"]:
        raise DatasetFormatError(f"{dataset_ref}: no usable SFT examples (empty, or cutoff_len={cutoff_len} "
                                 "truncates every assistant turn away)")
    return Dataset.from_dict(rows)


# ---------------------------------------------------------------------------------------------- preference


def to_preference(record: dict, *, where: str) -> dict[str, list[Message]]:
    """A conversational prompt/chosen/rejected triple (TRL renders it with the tokenizer's template)."""
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in record]
    if missing:
        raise DatasetFormatError(f"{where}: a preference record needs prompt, chosen and rejected "
                                 f"(missing {', '.join(missing)})")

    def conv(value: Any, role: str) -> list[Message]:
        if isinstance(value, list):
            return [{"role": m["role"], "content": m.get("content") or ""} for m in value]
        return [{"role": role, "content": str(value)}]

    return {"prompt": conv(record["prompt"], "user"), "chosen": conv(record["chosen"], "assistant"),
            "rejected": conv(record["rejected"], "assistant")}


def build_preference_dataset(records: Iterable[dict], *, dataset_ref: str):
    from datasets import Dataset

    rows = [to_preference(r, where=f"{dataset_ref} record {i + 1}") for i, r in enumerate(records)]
    if not rows:
        raise DatasetFormatError(f"{dataset_ref}: no preference records")
    return Dataset.from_list(rows)
