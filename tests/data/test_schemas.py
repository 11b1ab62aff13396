"""Record kinds follow TRL's dataset formats; anything else is rejected with the offending field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from secops_ai.data.schemas import (
    TRAINING_KINDS,
    ChatRecord,
    DatasetKind,
    PreferenceRecord,
    PromptCompletionRecord,
    TextRecord,
    record_model,
)


def test_trl_formats_accept_standard_and_conversational_records() -> None:
    ChatRecord.model_validate({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                            {"role": "assistant", "content": "a"}]})
    PromptCompletionRecord.model_validate({"prompt": "q", "completion": "a"})
    PromptCompletionRecord.model_validate({"prompt": [{"role": "user", "content": "q"}],
                                           "completion": [{"role": "assistant", "content": "a"}]})
    PreferenceRecord.model_validate({"prompt": "q", "chosen": "good", "rejected": "bad"})
    PreferenceRecord.model_validate({"prompt": [{"role": "user", "content": "q"}],
                                     "chosen": [{"role": "assistant", "content": "good"}],
                                     "rejected": [{"role": "assistant", "content": "bad"}]})
    TextRecord.model_validate({"text": "a log line"})
    assert {k.value for k in TRAINING_KINDS} == {"chat", "prompt_completion", "preference", "text"}
    assert DatasetKind("preference").is_training and not DatasetKind("finding").is_training


@pytest.mark.parametrize(
    ("kind", "record", "field"),
    [
        ("chat", {"messages": []}, "messages"),
        ("chat", {"messages": [{"role": "user", "content": "only a question"}]}, "messages"),
        ("chat", {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ("chat", {"mesages": [{"role": "user", "content": "typo"}]}, "messages"),
        ("prompt_completion", {"prompt": "q", "completion": [{"role": "assistant", "content": "a"}]}, ""),
        ("preference", {"prompt": "q", "chosen": "same", "rejected": "same"}, ""),
        ("preference", {"prompt": "q", "chosen": "good"}, "rejected"),
        ("text", {"text": ""}, "text"),
    ],
)
def test_invalid_records_name_the_field(kind: str, record: dict, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        record_model(kind).model_validate(record)
    locs = [".".join(map(str, e["loc"])) for e in exc.value.errors()]
    assert any(loc.startswith(field) for loc in locs), locs
