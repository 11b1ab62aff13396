"""The OpenAI protocol layer in-process (inference/serving.py): lm-eval-harness' loglikelihood requests and the
chat hooks guardrails and self-correction use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

import pytest
import torch

from secops_ai.config import Settings
from secops_ai.inference.protocol import ChatCompletionRequest, CompletionRequest, OpenAIError
from secops_ai.inference.service import ModelService
from secops_ai.inference.serving import ChatContext, OpenAIServing


def _serving(home: Path, base: Path) -> Iterator[OpenAIServing]:
    settings = Settings(home=home, base_model=str(base), max_new_tokens=64)
    service = ModelService(settings)
    service.load_sync()
    assert service.ready.is_set(), service.load_error
    yield OpenAIServing(service, settings)
    assert service.engine is not None
    service.engine.stop()


@pytest.fixture(scope="module")
def eos_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A tiny Llama whose greedy next token is always end-of-sequence (lm-eval's failing case), with distinct
    logprobs for every other token."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target = tmp_path_factory.mktemp("eos") / "eos-llama"
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    cfg = LlamaConfig.from_pretrained(tiny_llama_dir)
    cfg.tie_word_embeddings, cfg.mlp_bias = False, True
    torch.manual_seed(11)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.model.layers[-1].mlp.down_proj.bias.zero_()[0] = 100.0  # the residual stream points along dim 0
        model.model.norm.weight.zero_()[0] = 1.0
        model.lm_head.weight.normal_(0, 0.05)[tok.eos_token_id, 0] = 1.0
    model.save_pretrained(target)
    tok.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def tiny_serving(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Iterator[OpenAIServing]:
    yield from _serving(tmp_path_factory.mktemp("home"), tiny_llama_dir)


@pytest.fixture(scope="module")
def eos_serving(tmp_path_factory: pytest.TempPathFactory, eos_llama_dir: Path) -> Iterator[OpenAIServing]:
    yield from _serving(tmp_path_factory.mktemp("home"), eos_llama_dir)


# -- lm-evaluation-harness 0.4.13 `local-completions`, reproduced from lm_eval/models/api_models.py and
# openai_completions.py: _encode_pair, batch_loglikelihood_requests, create_message, _create_payload and
# parse_logprobs (batch_size=1, max_length=2048).
def _encode_pair(tok: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok(context + continuation, add_special_tokens=False, return_attention_mask=False).input_ids
    ctx = tok(context, add_special_tokens=False, return_attention_mask=False).input_ids
    return ctx, whole[len(ctx):]


def _lm_eval_payload(tok: Any, inp: list[int], tokenized_requests: bool) -> dict[str, Any]:
    messages: Any = [inp]
    if not tokenized_requests:
        messages = tok.batch_decode(messages)[0]  # batch_size 1 sends one string
    return {"model": "default", "prompt": messages, "temperature": 0, "max_tokens": 1, "logprobs": 1,
            "seed": 1234, "echo": True}


def _lm_eval_parse(out: dict[str, Any], ctxlens: list[int]) -> list[tuple[float, bool]]:
    res = []
    for choice, ctxlen in zip(sorted(out["choices"], key=itemgetter("index")), ctxlens, strict=False):
        assert ctxlen > 0
        logprobs = sum(choice["logprobs"]["token_logprobs"][ctxlen:-1])
        tokens_logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
        top_logprobs = choice["logprobs"]["top_logprobs"][ctxlen:-1]
        is_greedy = True
        for t, top in zip(tokens_logprobs, top_logprobs, strict=False):
            if t != max(top.values()):
                is_greedy = False
                break
        res.append((logprobs, is_greedy))
    return res


TASK = [  # a small local multiple-choice task: (context, [choices])
    ("Port 22 is used by", [" SSH", " HTTP", " DNS"]),
    ("The CWE for SQL injection is CWE-", ["89", "79", "22"]),
    ("Failed password for root from 10.0.0.5 means a", [" brute force attempt", " successful login"]),
    ("Q: Which tool scans ports?\nA:", [" nmap", " grep"]),
]


@pytest.mark.parametrize("which", ["tiny", "eos"])
@pytest.mark.parametrize("tokenized_requests", [True, False])
def test_lm_eval_local_completions_loglikelihoods_match_transformers(
        which: str, tokenized_requests: bool, request: pytest.FixtureRequest) -> None:
    serving: OpenAIServing = request.getfixturevalue(f"{which}_serving")
    tok, model = serving.service.tokenizer, serving.service.model
    got, want = [], []
    for context, choices in TASK:
        for cont in choices:
            ctx, cont_ids = _encode_pair(tok, context, cont)
            inp = (ctx + cont_ids)[-2048:]
            body = CompletionRequest.model_validate(_lm_eval_payload(tok, inp, tokenized_requests))
            out = asyncio.run(serving.completions(body))
            json.dumps(out)  # the response is plain JSON
            (ll, greedy), = _lm_eval_parse(out, [len(ctx)])
            with torch.inference_mode():
                logits = model(torch.tensor([inp])).logits[0].float()
            logp = torch.log_softmax(logits, -1)
            expected = sum(float(logp[p - 1, inp[p]]) for p in range(len(ctx), len(inp)))
            is_greedy = all(int(logp[p - 1].argmax()) == inp[p] for p in range(len(ctx), len(inp)))
            got.append((ll, greedy))
            want.append((expected, is_greedy))
            logprobs = out["choices"][0]["logprobs"]
            assert len(logprobs["tokens"]) == len(inp) + 1  # every prompt token, then the one generated
            if which == "eos":  # the generated token is end-of-sequence, returned with its logprob
                assert logprobs["token_logprobs"][-1] == pytest.approx(float(logp[-1, tok.eos_token_id]), abs=1e-4)
    assert [g for g, _ in got] == pytest.approx([w for w, _ in want], abs=1e-4)
    assert [g for _, g in got] == [w for _, w in want]


def test_token_id_prompts_echo_their_text(tiny_serving: OpenAIServing) -> None:
    tok = tiny_serving.service.tokenizer
    ids = tok("alert tcp any any")["input_ids"]
    as_ids = asyncio.run(tiny_serving.completions(CompletionRequest(prompt=[ids, ids[:2]], max_tokens=4,
                                                                     temperature=0, echo=True)))
    as_text = asyncio.run(tiny_serving.completions(CompletionRequest(prompt="alert tcp any any", max_tokens=4,
                                                                      temperature=0, echo=True)))
    assert as_ids["choices"][0]["text"] == as_text["choices"][0]["text"]
    assert as_ids["choices"][1]["text"].startswith(tok.decode(ids[:2]))
    assert as_ids["usage"]["prompt_tokens"] == len(ids) + 2


# -- chat hooks -----------------------------------------------------------------------------------------
HELLO = [{"role": "user", "content": "Explain SQL injection in one line."}]


def _stream(serving: OpenAIServing, body: ChatCompletionRequest) -> list[Any]:
    async def run() -> list[Any]:
        stream = await serving.chat(body)
        return [item if item == "[DONE]" else json.loads(item) async for item in stream]
    return asyncio.run(run())


def test_chat_hooks_screen_rewrite_and_post_process(tiny_serving: OpenAIServing) -> None:
    seen: list[str] = []

    async def screen(ctx: ChatContext) -> None:
        text = ctx.body.messages[-1].text()
        seen.append(text)
        if "forbidden" in text:
            raise OpenAIError(400, "refused by policy", code="content_policy")
        if "canned" in text:
            ctx.response = {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "guard",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "I can't help."},
                                         "finish_reason": "stop"}]}
        if ctx.body.model.endswith("+intrinsic"):
            ctx.body = ctx.body.model_copy(update={"model": ctx.body.model.removesuffix("+intrinsic")})
            ctx.extra["mode"] = "intrinsic"

    async def after(ctx: ChatContext, response: dict[str, Any]) -> dict[str, Any]:
        response["secops"] = {"mode": ctx.extra.get("mode", "off")}
        return response

    def shout(ctx: ChatContext, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async def wrapped() -> AsyncIterator[dict[str, Any]]:
            async for chunk in chunks:
                for choice in chunk.get("choices", []):
                    if choice["delta"].get("content"):
                        choice["delta"]["content"] = choice["delta"]["content"].upper()
                yield chunk
        return wrapped()

    hooks = tiny_serving.chat_hooks
    hooks.before.append(screen)
    hooks.after.append(after)
    hooks.stream.append(shout)
    try:
        def req(content: str, **kw: Any) -> ChatCompletionRequest:
            return ChatCompletionRequest(messages=[{"role": "user", "content": content}], max_tokens=8,
                                         temperature=0, **kw)

        with pytest.raises(OpenAIError) as refused:
            asyncio.run(tiny_serving.chat(req("something forbidden")))
        assert refused.value.status == 400 and refused.value.code == "content_policy"
        plain = asyncio.run(tiny_serving.chat(req("hello", model="default+intrinsic")))
        assert plain["secops"] == {"mode": "intrinsic"} and plain["choices"][0]["message"]["content"]
        canned = asyncio.run(tiny_serving.chat(req("canned please")))
        assert canned["choices"][0]["message"]["content"] == "I can't help." and "secops" not in canned
        events = _stream(tiny_serving, req("canned", stream=True))
        assert events[-1] == "[DONE]"
        assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "I CAN'T HELP."
        events = _stream(tiny_serving, req("hello", stream=True))
        streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
        assert streamed == plain["choices"][0]["message"]["content"].upper()
        assert seen == ["something forbidden", "hello", "canned please", "canned", "hello"]
    finally:
        hooks.before.clear()
        hooks.after.clear()
        hooks.stream.clear()
