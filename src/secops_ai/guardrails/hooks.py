"""Guardrails on ``/v1/chat/completions``: hooks on the serving layer's chat path (inference/serving.py).

:func:`install` registers, independently of any other hook:

- ``before`` (first in the list, so a refusal is decided before any model work, self-correction included):
  resolves the request's model, picks the policy profile for it, screens the request. ``refuse`` answers
  with the helpful refusal as a normal ``chat.completion`` (``finish_reason: "stop"``); ``caution`` adds
  the caution note to the system message; tool messages get injection markers. A policy that needs the
  classifier while it is not loaded answers 503 ``guardrails_unavailable``: never unscreened.
- ``after`` (last): each choice's answer goes through the output checks (after any self-correction):
  ``redact`` rewrites the content, ``block`` replaces it with a short notice and sets ``finish_reason:
  "content_filter"``.
- ``stream`` (last): the same checks on the growing text; a ``block`` finding ends that choice's stream
  with ``finish_reason: "content_filter"``.

The decision and its reasons ride in ``response["secops"]["guardrails"]`` (on the last chunk of each
choice when streaming), which OpenAI clients ignore; every decision is counted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from secops_ai.guardrails.screen import Guardrails, GuardrailsUnavailable, InputVerdict, ModelGuard, OutputVerdict
from secops_ai.inference.protocol import OpenAIError
from secops_ai.inference.serving import ChatContext, OpenAIServing, translate

EXTRA_KEY = "guardrails"
EXTENSION = "guardrails"  # response["secops"][EXTENSION]


def install(serving: OpenAIServing, guardrails: Guardrails,
            production: Callable[[], str | None] | None = None) -> None:
    """Register the guardrails hooks (the input screen first, the output screens last)."""
    if production is not None:
        guardrails.production = production
    hooks = _Hooks(guardrails)
    serving.chat_hooks.before.insert(0, hooks.before_chat)
    serving.chat_hooks.after.append(hooks.after_chat)
    serving.chat_hooks.stream.append(hooks.stream_chat)


def _trace(stage: str, report: dict[str, Any]) -> None:
    """A span event on the request's span (a no-op while tracing is off)."""
    from secops_ai.observability.tracing import add_event

    inp = report.get("input") or {}
    actions = sorted({o["action"] for o in report.get("output") or []})
    add_event(f"secops.guardrails.{stage}", {
        "secops.guardrails.decision": report["decision"], "secops.guardrails.policy": report["policy"],
        "secops.guardrails.score": inp.get("score"), "secops.guardrails.reasons": list(inp.get("reasons") or []),
        "secops.guardrails.output_actions": actions or None})


def _extend(obj: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    secops = obj.get("secops") if isinstance(obj.get("secops"), dict) else {}
    obj["secops"] = {**secops, EXTENSION: report}
    return obj


class _Hooks:
    def __init__(self, guardrails: Guardrails) -> None:
        self.g = guardrails
        self._prod_cache: tuple[float, str | None] = (0.0, None)

    def production(self) -> str | None:
        """The production adapter's name, re-read from the registry at most every 5 s."""
        at, name = self._prod_cache
        if time.monotonic() - at > 5:
            try:
                name = self.g.production()
            except Exception:
                name = None
            self._prod_cache = (time.monotonic(), name)
        return name

    def names(self, requested: str, adapter: str | None, public_id: str) -> list[str | None]:
        """Names the policy may map this request's model under, most specific first."""
        bare = requested.split("+", 1)[0]
        aliases: list[str | None] = [bare, adapter, public_id]
        if adapter is None:
            aliases.append("base")
        elif adapter == self.production():
            aliases.append("production")
        return aliases

    async def before_chat(self, ctx: ChatContext) -> None:
        if self.g.policy is None:
            return
        body = ctx.body
        service = ctx.serving.service
        try:
            adapter = await asyncio.to_thread(service.resolve, body.model.split("+", 1)[0])
        except Exception as exc:
            raise translate(exc) from exc
        guard = self.g.for_model(self.names(body.model, adapter, service.public_id(adapter)))
        if not guard.enabled:
            return
        messages = [m.as_template_message() for m in body.messages]
        try:
            verdict = await asyncio.to_thread(guard.screen_input, messages)
        except GuardrailsUnavailable as exc:
            raise OpenAIError(503, f"Guardrails are not ready, so requests are not served unscreened: {exc}",
                              code="guardrails_unavailable", headers={"Retry-After": "5"}) from exc
        ctx.extra[EXTRA_KEY] = (guard, verdict)
        _trace("input", guard.report(verdict))
        if verdict.decision == "refuse":
            created = int(time.time())
            ctx.response = _extend({
                "id": f"chatcmpl-guardrails-{created}-{id(ctx) & 0xffffff:x}", "object": "chat.completion",
                "created": created, "model": service.public_id(adapter),
                "choices": [{"index": i, "message": {"role": "assistant", "content": verdict.refusal},
                             "finish_reason": "stop", "logprobs": None} for i in range(body.n)],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}, guard.report(verdict))
            return
        if verdict.messages != messages:
            cls = type(body.messages[0])
            ctx.body = body.model_copy(update={"messages": [cls.model_validate(m) for m in verdict.messages]})

    async def after_chat(self, ctx: ChatContext, response: dict[str, Any]) -> dict[str, Any]:
        state: tuple[ModelGuard, InputVerdict] | None = ctx.extra.get(EXTRA_KEY)
        if state is None:
            return response
        guard, verdict = state
        outputs: list[OutputVerdict] = []
        for choice in response.get("choices", []):
            message = choice.get("message") or {}
            out = await asyncio.to_thread(guard.screen_output, message.get("content") or "")
            outputs.append(out)
            message["content"] = out.text
            if out.blocked:
                choice["finish_reason"] = "content_filter"
        report = guard.report(verdict, outputs)
        _trace("output", report)
        return _extend(response, report)

    def stream_chat(self, ctx: ChatContext, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        state = ctx.extra.get(EXTRA_KEY)
        if state is None:
            return chunks
        guard, verdict = state
        if verdict.decision == "refuse":
            return _tag_finish(chunks, guard.report(verdict))
        return _screened_stream(chunks, guard, verdict, ctx.body.n)


async def _tag_finish(chunks: AsyncIterator[dict[str, Any]], report: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    async for chunk in chunks:
        if any(c.get("finish_reason") for c in chunk.get("choices", [])):
            _extend(chunk, report)
        yield chunk


async def _screened_stream(chunks: AsyncIterator[dict[str, Any]], guard: ModelGuard, verdict: InputVerdict,
                           n: int) -> AsyncIterator[dict[str, Any]]:
    streams: dict[int, Any] = {}
    done: set[int] = set()
    head: dict[str, Any] = {}
    async for chunk in chunks:
        if "error" in chunk or not chunk.get("choices"):
            yield chunk
            continue
        head = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
        for c in chunk["choices"]:
            i = c.get("index", 0)
            if i in done:
                continue  # this choice was stopped; its remaining tokens are dropped
            s = streams.setdefault(i, guard.stream())
            delta = dict(c.get("delta") or {})
            text = s.feed(delta.get("content") or "") if "content" in delta else None
            if s.stopped:
                done.add(i)
                _, out = s.close()
                yield _extend({**head, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                                    "finish_reason": "content_filter"}]},
                              guard.report(verdict, [out]))
                continue
            if c.get("finish_reason"):
                tail, out = s.close()
                done.add(i)
                if text or tail:
                    yield {**head, "choices": [{"index": i, "delta": {**delta, "content": (text or "") + tail},
                                                "logprobs": None, "finish_reason": None}]}
                finish = "content_filter" if out.blocked else c["finish_reason"]
                yield _extend({**head, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                                    "finish_reason": finish}]}, guard.report(verdict, [out]))
                continue
            if text is not None:
                delta["content"] = text
                if not text and "role" not in delta:
                    continue  # held back for now (a line being checked)
            yield {**head, "choices": [{**c, "delta": delta}]}
        if sum(st.stopped for st in streams.values()) == n:
            return  # every choice was stopped: leaving ends generation (the rows are cancelled)


# -- /v1/completions (no hook point in the serving layer: the route calls this instead) ----------------------
async def guarded_completions(serving: OpenAIServing, guardrails: Guardrails, body: Any, disconnected: Any) -> Any:
    """``serving.completions`` with the model's guardrails: a refused prompt is a 400
    ``content_policy_violation`` (the legacy endpoint has no message to put a refusal in), answers go through
    the output checks (``block``: text replaced, ``finish_reason: "content_filter"``, logprobs dropped)."""
    hooks = _Hooks(guardrails)
    service = serving.service
    try:
        adapter = await asyncio.to_thread(service.resolve, body.model)
    except Exception as exc:
        raise translate(exc) from exc
    guard = guardrails.for_model(hooks.names(body.model, adapter, service.public_id(adapter)))
    if not guard.enabled:
        return await serving.completions(body, disconnected)
    prompts = [p if isinstance(p, str) else service.tokenizer.decode(p) for p in body.prompts]
    try:
        verdicts = [await asyncio.to_thread(guard.screen_prompt, p) for p in prompts]
    except GuardrailsUnavailable as exc:
        raise OpenAIError(503, f"Guardrails are not ready, so requests are not served unscreened: {exc}",
                          code="guardrails_unavailable", headers={"Retry-After": "5"}) from exc
    refused = [i for i, v in enumerate(verdicts) if v.decision == "refuse"]
    if refused:
        v = verdicts[refused[0]]
        raise OpenAIError(400, f"prompt {refused[0]} was refused by this server's guardrails "
                               f"({'; '.join(v.reasons)}). {v.refusal}", param="prompt",
                          code="content_policy_violation")
    verdict = verdicts[0]
    result = await serving.completions(body, disconnected)
    if isinstance(result, dict):
        outputs = []
        for choice in result.get("choices", []):
            out = await asyncio.to_thread(guard.screen_output, choice.get("text") or "")
            outputs.append(out)
            choice["text"] = out.text
            if out.action in ("block", "redact"):
                choice["logprobs"] = None  # the tokens would show what was removed
            if out.blocked:
                choice["finish_reason"] = "content_filter"
        return _extend(result, guard.report(verdict, outputs))
    return _screened_text_sse(result, guard, verdict)


async def _screened_text_sse(payloads: AsyncIterator[str], guard: ModelGuard,
                             verdict: InputVerdict) -> AsyncIterator[str]:
    """The output checks on a completions SSE stream (JSON payload strings, then ``[DONE]``)."""
    import json

    streams: dict[int, Any] = {}
    stopped: set[int] = set()
    async for payload in payloads:
        try:
            chunk = json.loads(payload)
        except ValueError:
            yield payload  # "[DONE]"
            continue
        if not isinstance(chunk, dict) or not chunk.get("choices"):
            yield payload
            continue
        out_choices = []
        for c in chunk["choices"]:
            i = c.get("index", 0)
            if i in stopped:
                continue
            s = streams.setdefault(i, guard.stream())
            text = s.feed(c.get("text") or "")
            if s.stopped:
                stopped.add(i)
                _, out = s.close()
                out_choices.append({**c, "text": "", "finish_reason": "content_filter"})
                chunk = _extend(chunk, guard.report(verdict, [out]))
                continue
            if c.get("finish_reason"):
                tail, out = s.close()
                text += tail
                c = {**c, "finish_reason": "content_filter" if out.blocked else c["finish_reason"]}
                chunk = _extend(chunk, guard.report(verdict, [out]))
            out_choices.append({**c, "text": text})
        if out_choices:
            yield json.dumps({**chunk, "choices": out_choices}, separators=(",", ":"), ensure_ascii=False)
