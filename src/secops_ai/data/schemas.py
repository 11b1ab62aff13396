"""Record models for every dataset kind.

Training kinds follow TRL's dataset formats exactly, so a stored ``records.jsonl`` loads straight into
``SFTTrainer`` / ``DPOTrainer`` with Hugging Face ``datasets``:

* ``chat``               ``{"messages": [{"role", "content"}, ...]}``
* ``prompt_completion``  ``{"prompt": str | messages, "completion": str | messages}``
* ``preference``         ``{"prompt": str | messages, "chosen": str | messages, "rejected": str | messages}``
* ``text``               ``{"text": str}`` (pretraining / continued pretraining)

Source kinds (``finding``, ``cwe``, ``attack_technique``, ``log``) hold normalised importer output that
generators turn into training kinds. Every record may carry ``metadata`` (task, ids used, source) so that
evals can keep their held-out items out of training data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "TRAINING_KINDS",
    "AttackTechniqueRecord",
    "ChatRecord",
    "CweRecord",
    "DatasetKind",
    "FindingRecord",
    "LogRecord",
    "Message",
    "PreferenceRecord",
    "PromptCompletionRecord",
    "RecordMetadata",
    "TextRecord",
    "ValidationError",
    "record_model",
]


class DatasetKind(StrEnum):
    chat = "chat"
    prompt_completion = "prompt_completion"
    preference = "preference"
    text = "text"
    # normalised importer output (not trained on directly)
    finding = "finding"
    cwe = "cwe"
    attack_technique = "attack_technique"
    log = "log"

    @property
    def is_training(self) -> bool:
        return self in TRAINING_KINDS


TRAINING_KINDS = frozenset({DatasetKind.chat, DatasetKind.prompt_completion, DatasetKind.preference,
                            DatasetKind.text})


class _Record(BaseModel):
    # Unknown top-level fields are an error: a typo ("mesages") must not silently produce empty data.
    model_config = ConfigDict(extra="forbid")


class RecordMetadata(BaseModel):
    """Where a record came from; ``ids`` lists the CWE/ATT&CK/CAPEC/rule ids it was built from."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1)
    ids: list[str] = Field(default_factory=list)
    source: str | None = None
    template: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str


Conversation = list[Message]


def _check_conversation(messages: list[Message], *, need_assistant: bool) -> list[Message]:
    if not messages:
        raise ValueError("must contain at least one message")
    if need_assistant and not any(m.role == "assistant" for m in messages):
        raise ValueError("needs at least one assistant message to train on")
    return messages


class ChatRecord(_Record):
    messages: list[Message]
    metadata: RecordMetadata | None = None

    @field_validator("messages")
    @classmethod
    def _has_assistant(cls, v: list[Message]) -> list[Message]:
        return _check_conversation(v, need_assistant=True)


def _non_empty(value: str | list[Message], field: str) -> str | list[Message]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{field} must not be empty")
    else:
        _check_conversation(value, need_assistant=False)
    return value


class PromptCompletionRecord(_Record):
    prompt: str | list[Message]
    completion: str | list[Message]
    metadata: RecordMetadata | None = None

    @model_validator(mode="after")
    def _same_format(self) -> PromptCompletionRecord:
        _non_empty(self.prompt, "prompt")
        _non_empty(self.completion, "completion")
        if isinstance(self.prompt, str) != isinstance(self.completion, str):
            raise ValueError("prompt and completion must both be strings or both be message lists (TRL)")
        return self


class PreferenceRecord(_Record):
    prompt: str | list[Message]
    chosen: str | list[Message]
    rejected: str | list[Message]
    metadata: RecordMetadata | None = None

    @model_validator(mode="after")
    def _same_format(self) -> PreferenceRecord:
        for name in ("prompt", "chosen", "rejected"):
            _non_empty(getattr(self, name), name)
        if len({isinstance(v, str) for v in (self.prompt, self.chosen, self.rejected)}) != 1:
            raise ValueError("prompt, chosen and rejected must all be strings or all be message lists (TRL)")
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are identical")
        return self


class TextRecord(_Record):
    text: str = Field(min_length=1)
    metadata: RecordMetadata | None = None


class FindingRecord(_Record):
    """One scanner result, normalised from SARIF 2.1 or bandit JSON."""

    tool: str
    tool_version: str | None = None
    rule_id: str
    rule_name: str | None = None
    message: str
    level: Literal["error", "warning", "note", "none"] = "warning"
    severity: Literal["critical", "high", "medium", "low", "info"] = "medium"
    confidence: Literal["high", "medium", "low"] | None = None
    cwe: list[int] = Field(default_factory=list)
    file: str | None = None
    start_line: int | None = None
    end_line: int | None = None
    snippet: str | None = None
    help: str | None = None
    help_uri: str | None = None
    fingerprint: str
    metadata: RecordMetadata | None = None


class CweRecord(_Record):
    id: int
    name: str
    abstraction: str | None = None
    status: str | None = None
    description: str
    extended_description: str | None = None
    mitigations: list[str] = Field(default_factory=list)
    consequences: list[str] = Field(default_factory=list)
    capec: list[int] = Field(default_factory=list)
    parents: list[int] = Field(default_factory=list)
    metadata: RecordMetadata | None = None


class AttackTechniqueRecord(_Record):
    id: str = Field(pattern=r"^T\d{4}(\.\d{3})?$")
    name: str
    description: str
    tactics: list[str] = Field(default_factory=list)
    platforms: list[str] = Field(default_factory=list)
    is_subtechnique: bool = False
    parent: str | None = None
    mitigations: list[dict[str, str]] = Field(default_factory=list)
    url: str | None = None
    metadata: RecordMetadata | None = None


class LogRecord(_Record):
    """One log line: ``text`` is the (pseudonymised) line itself, so a log dataset is also a text corpus."""

    text: str = Field(min_length=1)
    format: Literal["syslog", "combined", "common", "raw"]
    timestamp: str | None = None
    host: str | None = None
    program: str | None = None
    pid: int | None = None
    message: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    metadata: RecordMetadata | None = None


_MODELS: dict[DatasetKind, type[BaseModel]] = {
    DatasetKind.chat: ChatRecord,
    DatasetKind.prompt_completion: PromptCompletionRecord,
    DatasetKind.preference: PreferenceRecord,
    DatasetKind.text: TextRecord,
    DatasetKind.finding: FindingRecord,
    DatasetKind.cwe: CweRecord,
    DatasetKind.attack_technique: AttackTechniqueRecord,
    DatasetKind.log: LogRecord,
}


def record_model(kind: DatasetKind | str) -> type[BaseModel]:
    """The pydantic model that validates records of ``kind``."""
    return _MODELS[DatasetKind(kind)]
