"""JSON-schema constrained decoding: the model can only emit text that parses under the schema.

Local transformers models decode under lm-format-enforcer's character-level JSON-schema parser (a logits
processor masks every token that would leave the schema). If the token cap cuts the answer short, the
shortest valid closing is appended character by character from the same parser, so :func:`chat_json`
always returns schema-valid JSON. Remote OpenAI-compatible models get the schema as a forced tool call
(``tools`` + ``tool_choice``); backends with their own ``chat_json`` (the scripted test model) are asked
directly. Every path validates the result before returning it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from secops_ai.inference.types import ChatBackend, GenerationParams, Message

log = logging.getLogger(__name__)

# Characters tried first when closing a truncated answer: end strings, objects and arrays as soon as allowed.
_CLOSING_ORDER = '"}],:0'
_MAX_CLOSING_CHARS = 4000


class ConstrainedDecodingError(ValueError):
    """The model's answer could not be made to match the schema (``text``: the answer, when there was one)."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text


@dataclass
class JsonReply:
    """Schema-valid JSON text and what producing it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool = False  # the token cap was hit and the closing was completed from the schema


def chat_json(backend: ChatBackend | Any, messages: list[Message], schema: dict[str, Any],
              params: GenerationParams | None = None) -> str:
    """The model's answer to ``messages`` as a JSON string that matches ``schema``."""
    return complete_json(backend, messages, schema, params).text


def complete_json(backend: ChatBackend | Any, messages: list[Message], schema: dict[str, Any],
                  params: GenerationParams | None = None, *, name: str = "respond",
                  deadline: float | None = None, check: bool = True,
                  stop: Callable[[], bool] | None = None) -> JsonReply:
    """Like :func:`chat_json`, with token counts.

    ``name`` is the function a remote model is asked to call. ``deadline`` (``time.monotonic()``) stops local
    decoding early, and so does ``stop()`` returning true (a cancelled run); the answer is then closed under
    the schema like a truncated one. ``check=False`` skips
    the schema check of answers that were not decoded under the constraint, for callers that validate them
    with stricter pydantic models anyway (the agent loop); locally decoded answers are valid by construction.
    """
    params = params or GenerationParams()
    if hasattr(backend, "chat_json"):  # scripted / custom backends decide themselves
        text = backend.chat_json(messages, schema, params)
        reply = JsonReply(text, estimate_tokens(backend, _joined(messages)), estimate_tokens(backend, text))
    elif hasattr(backend, "model") and hasattr(backend, "tokenizer"):
        reply = _local_json(backend, messages, schema, params, deadline, stop)
    elif hasattr(backend, "post_chat"):
        reply = _remote_json(backend, messages, schema, params, name)
    else:  # any other ChatBackend: ask for JSON and check it
        text = backend.chat([messages], params)[0]
        reply = JsonReply(_extract_json(text), estimate_tokens(backend, _joined(messages)),
                          estimate_tokens(backend, text))
    if not check:
        try:
            json.loads(reply.text)
        except json.JSONDecodeError as exc:
            raise ConstrainedDecodingError(f"not JSON: {exc.msg} at char {exc.pos}", reply.text) from None
        return reply
    try:
        validate_json(reply.text, schema)
    except ConstrainedDecodingError as exc:
        raise ConstrainedDecodingError(str(exc), reply.text) from None
    return reply


def validate_json(text: str, schema: dict[str, Any]) -> Any:
    """Parse ``text`` and check it against ``schema`` with the same parser that constrains decoding."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConstrainedDecodingError(f"not JSON: {exc.msg} at char {exc.pos}: {text[:200]!r}") from exc
    canonical = json.dumps(value, ensure_ascii=False)
    parser = _parser(schema, ordered=False, text=canonical)
    for i, ch in enumerate(canonical):
        if ch not in parser.get_allowed_characters():
            raise ConstrainedDecodingError(f"does not match the schema at char {i} of {canonical[:200]!r}")
        parser = parser.add_character(ch)
    if not parser.can_end():
        raise ConstrainedDecodingError(f"incomplete for the schema: {canonical[:200]!r}")
    return value


def estimate_tokens(backend: Any, text: str) -> int:
    """Token count with the backend's tokenizer when it has one, else ~4 characters a token."""
    tok = getattr(backend, "tokenizer", None)
    if tok is not None:
        return len(tok(text, add_special_tokens=False)["input_ids"])
    return max(1, math.ceil(len(text) / 4)) if text else 0


# ----------------------------------------------------------------------------------------------- local
def _parser(schema: dict[str, Any], *, ordered: bool = True, text: str = "") -> Any:
    """A JSON-schema parser; ``ordered=False`` checks rather than decodes (any field order, long arrays, any
    indentation, and every character of ``text`` allowed inside strings: the default alphabet lacks '|', '~'
    and non-ASCII)."""
    from lmformatenforcer import JsonSchemaParser

    config = _config()
    if not ordered:
        config.force_json_field_order = False
        config.max_consecutive_whitespaces = 1 << 20
        config.max_json_array_length = 1 << 20
        config.alphabet = config.alphabet + "".join(sorted(set(text) - set(config.alphabet)))
    return JsonSchemaParser(schema, config=config)


def _config(alphabet: str | None = None) -> Any:
    from lmformatenforcer import CharacterLevelParserConfig

    # Bounded runs of spaces (a small model otherwise pads with whitespace until the cap; the parser counts
    # them inside strings too, so leave room for a diff's indentation) and fields in schema order, so a
    # thought comes before the tool it justifies.
    cfg = CharacterLevelParserConfig(max_consecutive_whitespaces=16, force_json_field_order=True)
    if alphabet is not None:
        cfg.alphabet = alphabet
    return cfg


_TOKENIZER_DATA: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_TOKENIZER_LOCK = threading.Lock()


def tokenizer_data(tokenizer: Any) -> Any:
    """lm-format-enforcer's per-tokenizer prefix tree (built once per tokenizer; a few seconds for 49k tokens).

    Built here rather than with ``lmformatenforcer.integrations.transformers``, whose imports predate
    transformers 5.
    """
    from lmformatenforcer import TokenEnforcerTokenizerData

    with _TOKENIZER_LOCK:
        data = _TOKENIZER_DATA.get(tokenizer)
        if data is not None:
            return data
        special = set(tokenizer.all_special_ids)
        token_0 = tokenizer.encode("0", add_special_tokens=False)[-1]
        regular = []
        for idx in range(len(tokenizer)):
            if idx in special:
                continue
            after_0 = tokenizer.decode([token_0, idx])[1:]
            alone = tokenizer.decode([idx])
            regular.append((idx, after_0, len(after_0) > len(alone)))

        def decode(tokens: list[int]) -> str:
            return tokenizer.decode(tokens).rstrip("\ufffd")

        data = TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, len(tokenizer))
        _TOKENIZER_DATA[tokenizer] = data
        return data


def _local_json(backend: Any, messages: list[Message], schema: dict[str, Any], params: GenerationParams,
                deadline: float | None = None, stop: Callable[[], bool] | None = None) -> JsonReply:
    """Decode on the same batching engine as ``/v1``, with this row's logits masked to the schema (a per-row
    logits processor), so constrained agent calls batch with everything else."""
    import torch
    from lmformatenforcer import TokenEnforcer

    client = _engine_client(backend)
    tok = client.tokenizer
    data = tokenizer_data(tok)
    enforcer = TokenEnforcer(data, _parser(schema))
    enforcer.root_parser.config = _config(data.tokenizer_alphabet)  # TokenEnforcer resets it to defaults
    prompt_ids = client.encode_chat(messages)

    def mask(ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        allowed = enforcer.get_allowed_tokens(ids).allowed_tokens
        masked = torch.full_like(logits, float("-inf"))
        masked[allowed] = logits[allowed]
        return masked

    def late() -> bool:
        return (deadline is not None and time.monotonic() >= deadline) or (stop is not None and stop())

    # no stop strings: the schema decides where the answer ends
    row = None
    if getattr(client.engine, "kind", None) == "llamacpp":  # llama.cpp enforces the schema as a grammar itself
        try:
            row = client.generate([prompt_ids], replace(params, stop=[]), should_stop=late, json_schema=schema)[0]
        except RuntimeError as exc:  # e.g. a schema feature its grammar converter lacks
            log.warning("llama.cpp could not decode under this schema (%s); using the transformers token mask", exc)
    if row is None:
        row = client.generate([prompt_ids], replace(params, stop=[]), processors=[mask], should_stop=late)[0]
    text, closed = close_json(row.text, schema)
    closed = closed or row.finish != "stop"
    return JsonReply(text.strip(), len(prompt_ids), len(row.token_ids), truncated=closed)


def _engine_client(backend: Any) -> Any:
    """The engine client behind a local backend (a bare model + tokenizer gets an engine of its own)."""
    from secops_ai.inference.backend import LocalBackend
    from secops_ai.inference.engine import EngineBackend

    if isinstance(backend, EngineBackend):
        return backend
    if isinstance(backend, LocalBackend):
        return backend.engine_client
    local = LocalBackend(backend.model, backend.tokenizer, name=getattr(backend, "name", "local"))
    backend._secops_local = local  # keep its engine alive as long as the caller's backend
    return local.engine_client


def close_json(text: str, schema: dict[str, Any]) -> tuple[str, bool]:
    """Return ``text`` completed into schema-valid JSON (and whether anything had to be appended).

    Feeds the partial answer through the schema parser, then greedily appends the allowed character that
    closes soonest (quotes, braces, brackets first; otherwise the first allowed non-space character).
    """
    parser = _parser(schema, ordered=False, text=text)
    kept = []
    for ch in text:
        if ch not in parser.get_allowed_characters():
            break  # decoding under the constraint never gets here; a stray tail is dropped
        parser = parser.add_character(ch)
        kept.append(ch)
    text = "".join(kept)
    if parser.can_end() and _loads_ok(text):
        return _strict(text), False
    extra = []  # e.g. a bare number prefix, or a cut-off string: keep closing
    for _ in range(_MAX_CLOSING_CHARS):
        if parser.can_end() and _loads_ok(text + "".join(extra)):
            return _strict(text + "".join(extra)), True
        allowed = parser.get_allowed_characters()
        ch = next((c for c in _CLOSING_ORDER if c in allowed), None)
        if ch is None:
            ch = next((c for c in sorted(allowed) if not c.isspace()), None)
        if ch is None:
            break
        parser = parser.add_character(ch)
        extra.append(ch)
    raise ConstrainedDecodingError(f"could not close a truncated answer under the schema: {text[:200]!r}")


def _loads_ok(text: str) -> bool:
    # strict=False: the schema parser lets raw control characters (a newline) into strings; _strict escapes them
    try:
        json.loads(text, strict=False)
        return True
    except json.JSONDecodeError:
        return False


def _strict(text: str) -> str:
    """``text`` as strict JSON: unchanged when it already is, else re-serialised with control characters escaped."""
    try:
        json.loads(text)
        return text
    except json.JSONDecodeError:
        return json.dumps(json.loads(text, strict=False), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------- remote
def _remote_json(backend: Any, messages: list[Message], schema: dict[str, Any], params: GenerationParams,
                 name: str) -> JsonReply:
    """Ask a remote OpenAI-compatible model to call one function whose parameters are ``schema``."""
    body: dict[str, Any] = {
        "model": backend.model, "messages": messages, "max_tokens": params.max_tokens,
        "temperature": params.temperature, "top_p": params.top_p,
        "tools": [{"type": "function", "function": {"name": name, "description": "Answer with these arguments.",
                                                     "parameters": _object_schema(schema)}}],
        "tool_choice": {"type": "function", "function": {"name": name}},
    }
    if params.seed is not None:
        body["seed"] = params.seed
    data = backend.post_chat(body)
    message = data["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    try:
        if calls:
            raw = calls[0]["function"]["arguments"]
            value = json.loads(raw) if isinstance(raw, str) else raw
        else:  # servers without tool support: take JSON from the content
            value = json.loads(_extract_json(message.get("content") or ""))
    except json.JSONDecodeError as exc:
        raise ConstrainedDecodingError(f"the remote model's arguments are not JSON: {exc.msg}") from None
    if schema.get("type") != "object" and isinstance(value, dict) and set(value) == {"value"}:
        value = value["value"]  # unwrap _object_schema's wrapper
    text = json.dumps(value, ensure_ascii=False)
    usage = data.get("usage") or {}
    return JsonReply(text, int(usage.get("prompt_tokens") or estimate_tokens(backend, _joined(messages))),
                     int(usage.get("completion_tokens") or estimate_tokens(backend, text)))


def _object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Function parameters must be an object; wrap a top-level union in ``{"value": ...}``."""
    if schema.get("type") == "object":
        return schema
    return {"type": "object", "properties": {"value": schema}, "required": ["value"]}


def _extract_json(text: str) -> str:
    """The first balanced JSON object in ``text`` (models sometimes wrap it in prose or code fences)."""
    start = text.find("{")
    if start == -1:
        raise ConstrainedDecodingError(f"no JSON object in the model's answer: {text[:200]!r}")
    decoder = json.JSONDecoder()
    try:
        value, _ = decoder.raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise ConstrainedDecodingError(f"invalid JSON in the model's answer: {exc.msg}: {text[:200]!r}") from exc
    return json.dumps(value, ensure_ascii=False)


def _joined(messages: list[Message]) -> str:
    return "\n".join(m.get("content", "") for m in messages)
