"""Self-correction on ``/v1/chat/completions``: hooks on the serving layer's chat path.

Registered by the app (:func:`install`) on :attr:`OpenAIServing.chat_hooks
<secops_ai.inference.serving.OpenAIServing>`:

- ``before``: reads the mode from ``extra_body={"secops": {"self_correct": ...}}`` or a ``+intrinsic`` /
  ``+verified`` suffix on the model id (stripped before the model is resolved); anything else is a 400.
- ``after`` (JSON answers): the generated answer is the draft; the corrector's final answer replaces
  ``message.content`` and the trace goes in ``secops.self_correction``.
- ``stream``: the draft's chunks are held back (a role chunk goes out at once), then the final answer is sent
  token by token and the last chunk (the one with ``finish_reason``) carries ``secops.self_correction``.

Extra passes (critique, revision, evidence-grounded regeneration) run on the same engine through
``serving.generate_chat``; the corrector itself runs in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from secops_ai.alignment.selfcorrect.backend import split_model_suffix
from secops_ai.alignment.selfcorrect.corrector import correct_batch
from secops_ai.alignment.selfcorrect.trace import MODES, Correction
from secops_ai.inference.protocol import OpenAIError
from secops_ai.inference.serving import ChatContext, OpenAIServing
from secops_ai.inference.types import GenerationParams, Message

log = logging.getLogger(__name__)

EXTRA_KEY = "self_correct"  # ctx.extra key shared by this module's hooks
EXTENSION = "self_correction"  # response["secops"][EXTENSION]


def install(serving: OpenAIServing) -> None:
    """Register the self-correction hooks (register output screens after these, so they see the final answer)."""
    serving.chat_hooks.before.append(before_chat)
    serving.chat_hooks.after.append(after_chat)
    serving.chat_hooks.stream.append(stream_chat)


async def before_chat(ctx: ChatContext) -> None:
    if ctx.response is not None:  # an earlier hook (a guardrail refusal) already answered
        return
    body = ctx.body
    ext = body.secops or {}
    raw = ext.get("self_correct")
    if raw is not None and (not isinstance(raw, str) or raw not in MODES):
        raise OpenAIError(400, f"secops.self_correct must be one of {', '.join(MODES)}; got {raw!r}",
                          param="secops.self_correct", code="invalid_value")
    model, suffix = split_model_suffix(body.model)
    if raw is not None and suffix is not None and raw != suffix:
        raise OpenAIError(400, f"the model suffix '+{suffix}' asks for self_correct={suffix} but "
                               f"secops.self_correct is {raw!r}; send one or make them agree",
                          param="secops.self_correct", code="invalid_value")
    if suffix is not None:
        ctx.body = body = body.model_copy(update={"model": model})
    mode = raw or suffix or "off"
    if mode == "off":
        return
    if body.n != 1:
        raise OpenAIError(400, "self-correction answers one choice per request; send n=1",
                          param="n", code="invalid_value")
    ctx.extra[EXTRA_KEY] = {"mode": mode, "suffix": suffix}


async def after_chat(ctx: ChatContext, response: dict[str, Any]) -> dict[str, Any]:
    state = ctx.extra.get(EXTRA_KEY)
    if not state or not response.get("choices"):
        return response
    choice = response["choices"][0]
    correction = await _correct(ctx, state["mode"], choice["message"].get("content") or "")
    choice["message"]["content"] = correction.final
    _extend(response, correction)
    if state["suffix"]:
        response["model"] = f"{response.get('model')}+{state['suffix']}"
    return response


def stream_chat(ctx: ChatContext, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    state = ctx.extra.get(EXTRA_KEY)
    return _corrected_stream(ctx, chunks, state) if state else chunks


async def _corrected_stream(ctx: ChatContext, chunks: AsyncIterator[dict[str, Any]], state: dict[str, Any]
                            ) -> AsyncIterator[dict[str, Any]]:
    head: dict[str, Any] | None = None
    parts: list[str] = []
    finish = "stop"
    async for chunk in chunks:
        if "error" in chunk:
            yield chunk
            return
        if head is None:
            head = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
            if state["suffix"]:
                head["model"] = f"{head.get('model')}+{state['suffix']}"
            yield {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None, "finish_reason": None}]}
        for c in chunk.get("choices", []):
            parts.append((c.get("delta") or {}).get("content") or "")
            finish = c.get("finish_reason") or finish
    if head is None:
        return
    correction = await _correct(ctx, state["mode"], "".join(parts))
    for piece in _pieces(ctx, correction.final):
        yield {**head, "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                    "finish_reason": None}]}
    last = {**head, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]}
    yield _extend(last, correction)


def _extend(obj: dict[str, Any], correction: Correction) -> dict[str, Any]:
    secops = obj.get("secops") if isinstance(obj.get("secops"), dict) else {}
    obj["secops"] = {**secops, EXTENSION: correction.extension()}
    return obj


def _pieces(ctx: ChatContext, text: str) -> list[str]:
    """``text`` as the model's tokens decode (never splitting a character); whole when that fails."""
    try:
        tok = ctx.serving.service.tokenizer
        ids = tok(text, add_special_tokens=False)["input_ids"]
        pieces, shown = [], ""
        for k in range(1, len(ids) + 1):
            now = tok.decode(ids[:k])
            if now.endswith("\ufffd") and k < len(ids):
                continue
            pieces.append(now[len(shown):])
            shown = now
        if "".join(pieces) == text:
            return [p for p in pieces if p]
    except Exception as exc:  # no tokenizer: one piece is still a valid stream
        log.debug("self-correction: streaming the answer whole (%s)", exc)
    return [text] if text else []


async def _correct(ctx: ChatContext, mode: str, draft: str) -> Correction:
    from secops_ai.observability.tracing import add_event, set_attributes, stage_span

    body = ctx.body
    messages: list[Message] = [m.as_template_message() for m in body.messages]
    params = GenerationParams(max_tokens=body.token_limit or ctx.serving.settings.max_new_tokens,
                              temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                              stop=list(body.stop or []))
    loop = asyncio.get_running_loop()

    def generate(convs: list[list[Message]], max_tokens: int | None) -> list[str]:
        p = params if max_tokens is None else replace(params, max_tokens=min(max_tokens, params.max_tokens))
        futures = [asyncio.run_coroutine_threadsafe(ctx.serving.generate_chat(c, p, body.model), loop) for c in convs]
        return [f.result() for f in futures]

    with stage_span("self_correction", {"secops.self_correct.mode": mode}) as span:
        correction = (await asyncio.to_thread(correct_batch, [messages], generate, mode, drafts=[draft]))[0]
        correction.model_calls += 1  # the draft, generated by the serving layer before this hook
        set_attributes(span, {"secops.self_correct.verification": correction.verification,
                              "secops.self_correct.model_calls": correction.model_calls,
                              "secops.self_correct.revisions": len(correction.revisions)})
        add_event("secops.self_correction", {"mode": mode, "checks": len(correction.checks)},
                  content={"draft": correction.draft, "critique": correction.critique or "",
                           "final": correction.final})
    log.info("self-correction %s: %s, %d model call(s), %d check(s), %d revision(s)", mode,
             correction.verification, correction.model_calls, len(correction.checks), len(correction.revisions))
    return correction
