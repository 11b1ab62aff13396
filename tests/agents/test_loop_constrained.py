"""JSON-schema constrained decoding with a real (tiny, random) model: every answer is schema-valid."""

from __future__ import annotations

import json

import pytest

from secops_ai.agents.actions import Action, Critique, Plan, action_schema, critique_schema, plan_schema
from secops_ai.agents.tools.base import ToolRegistry
from secops_ai.agents.tools.default_tools import default_registry
from secops_ai.inference.backend import LocalBackend
from secops_ai.inference.constrained import (
    ConstrainedDecodingError,
    chat_json,
    close_json,
    complete_json,
    validate_json,
)
from secops_ai.inference.types import GenerationParams

MESSAGES = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "Scan the repo."}]


@pytest.fixture(scope="module")
def tiny_backend(tiny_llama_dir):
    return LocalBackend.load(tiny_llama_dir)


def test_random_model_always_emits_valid_actions_even_when_cut_short(tiny_backend) -> None:
    registry = default_registry()
    schema = action_schema(registry.schemas())
    for seed, max_tokens in [(0, 6), (1, 16)]:  # sampling from random weights: anything may come out
        reply = complete_json(tiny_backend, MESSAGES, schema, GenerationParams(max_tokens=max_tokens, temperature=1.0,
                                                                               seed=seed))
        assert reply.completion_tokens <= max_tokens
        action = Action.model_validate_json(reply.text)
        assert action.tool in [*registry.names(), "finish"]
        validate_json(reply.text, schema)
    for schema, model in [(plan_schema(), Plan), (critique_schema(), Critique)]:
        model.model_validate_json(chat_json(tiny_backend, MESSAGES, schema, GenerationParams(max_tokens=10)))


def test_truncated_answers_are_closed_under_the_schema() -> None:
    schema = action_schema(ToolRegistry(default_registry().list()).schemas())
    for partial in ['', '{"thought": "x', '{"thought": "a | b ~ é", "tool": "run_sc',
                    '{"thought": "", "tool": "propose_patch", "args": {"diff": "--- a/x\\n    indented']:
        text, closed = close_json(partial, schema)
        assert closed and text.startswith(partial) and validate_json(text, schema)
    assert close_json('{"score": 1, "critique": "", "revise": false}', critique_schema()) == (
        '{"score": 1, "critique": "", "revise": false}', False)


def test_answers_that_break_the_schema_are_rejected_with_the_reason() -> None:
    schema = critique_schema()
    with pytest.raises(ConstrainedDecodingError, match="not JSON"):
        validate_json("score: 1", schema)
    with pytest.raises(ConstrainedDecodingError, match="does not match the schema"):
        validate_json(json.dumps({"score": "high", "critique": "", "revise": False}), schema)
    with pytest.raises(ConstrainedDecodingError, match="does not match the schema at char 11"):  # "}" too early
        validate_json(json.dumps({"score": 1}), schema)


def test_a_stop_request_cuts_local_decoding_short_and_still_returns_valid_json(tiny_backend) -> None:
    import time

    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    started = time.monotonic()
    reply = complete_json(tiny_backend, MESSAGES, schema, GenerationParams(max_tokens=4000, temperature=1.0, seed=0),
                          stop=lambda: time.monotonic() - started > 1.0)  # a cancel after one second
    assert reply.truncated and reply.completion_tokens < 4000
    assert isinstance(json.loads(reply.text)["text"], str)
    deadline_reply = complete_json(tiny_backend, MESSAGES, schema, GenerationParams(max_tokens=4000, seed=0),
                                   deadline=time.monotonic() + 1.0)
    assert deadline_reply.truncated and deadline_reply.completion_tokens < 4000


def test_a_cut_off_string_with_a_raw_newline_closes_into_strict_json() -> None:
    """The schema parser lets a raw newline into a string; the closed answer escapes it (strict json.loads)."""
    from secops_ai.inference.constrained import close_json

    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    text, closed = close_json('\r\n {"text":"members Physical „\n   ', schema)
    assert closed and json.loads(text) == {"text": "members Physical „\n   "}
