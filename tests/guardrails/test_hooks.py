"""The serving hooks' output side on real chunk streams (the chat.completion.chunk dicts serving produces)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from secops_ai.guardrails.hooks import _screened_stream
from secops_ai.guardrails.policy import parse_policy
from secops_ai.guardrails.screen import Guardrails, InputVerdict

POLICY = 'version: 1\nprofiles: {p: {malicious_code: block, secrets: redact}}\nmodels: {"*": p}\n'
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def _chunks(pieces: list[str], n: int = 1):
    async def gen():
        for i in range(n):
            yield {**HEAD, "choices": [{"index": i, "delta": {"role": "assistant"}, "logprobs": None,
                                        "finish_reason": None}]}
        for p in pieces:
            for i in range(n):
                yield {**HEAD, "choices": [{"index": i, "delta": {"content": p}, "logprobs": None,
                                            "finish_reason": None}]}
        for i in range(n):
            yield {**HEAD, "choices": [{"index": i, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    return gen()


def _run(pieces: list[str], tmp_path: Path, n: int = 1) -> list[dict]:
    g = Guardrails(parse_policy(POLICY, tmp_path / "p.yaml"), tmp_path)
    guard = g.for_model(["m"])

    async def collect():
        return [c async for c in _screened_stream(_chunks(pieces, n), guard, InputVerdict(), n)]
    return asyncio.run(collect())


def _text(chunks: list[dict], i: int = 0) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                   if c.get("choices") and c["choices"][0]["index"] == i)


def test_block_ends_the_stream_with_content_filter(tmp_path: Path) -> None:
    code = ("Sure:\n```c\n", "HANDLE h = OpenProcess(PROCESS_ALL_ACCESS, 0, pid);\n",
            "LPVOID p = VirtualAllocEx(h, 0, n, MEM_COMMIT, PAGE_EXECUTE_READWRITE);\n",
            "WriteProcessMemory(h, p, shellcode, n, 0);\n", "CreateRemoteThread(h, 0, 0, p, 0, 0, 0);\n",
            "```\nThat's it, enjoy the shell.\n")
    chunks = _run(list(code), tmp_path, n=2)
    for i in (0, 1):
        finals = [c for c in chunks if c["choices"][0]["index"] == i and c["choices"][0]["finish_reason"]]
        assert [c["choices"][0]["finish_reason"] for c in finals] == ["content_filter"]
        report = finals[0]["secops"]["guardrails"]
        assert report["decision"] == "blocked" and report["output"][0]["findings"][0]["category"] == "malicious_code"
        assert "CreateRemoteThread" not in _text(chunks, i) and "enjoy the shell" not in _text(chunks, i)


def test_redaction_and_normal_finish(tmp_path: Path) -> None:
    chunks = _run(["Use the key ", "AKIAIOSFODNN7EXAMPLE", " in\n", "the config", "."], tmp_path)
    text = _text(chunks)
    assert text == "Use the key [redacted by guardrails: secrets] in\nthe config."
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}  # the role chunk is never held back
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["secops"]["guardrails"]["decision"] == "redacted"
