"""The real bundled SmolLM2-135M-Instruct behind the real server (slow: loads 135M parameters)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openai import OpenAI

TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def _max_ngram_repeats(text: str, n: int = 4) -> int:
    words = re.findall(r"\w+", text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return max((grams.count(g) for g in set(grams)), default=0)


@pytest.mark.slow
def test_bundled_model_answers_and_stops_at_end_of_turn(bundled_base_dir: Path, tmp_path: Path, start_server) -> None:
    # SECOPS_BASE_MODEL left at its default: the bundled model, found under models/base/ in this workspace.
    home = tmp_path / "home"
    (home / "models" / "base").mkdir(parents=True)
    (home / "models" / "base" / bundled_base_dir.name).symlink_to(bundled_base_dir)
    server = start_server({"SECOPS_HOME": str(home)}, timeout=300)
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300)
    assert client.models.list().data[0].id == "smollm2-135m-instruct"
    resp = client.chat.completions.create(
        model="default", temperature=0, max_tokens=200,
        messages=[{"role": "user", "content": "In one sentence, what is a firewall?"}])
    text = resp.choices[0].message.content
    assert text.strip(), "empty answer"
    assert resp.choices[0].finish_reason == "stop", f"no end of turn within 200 tokens: {text!r}"
    assert not any(tok in text for tok in TEMPLATE_TOKENS), text
    assert _max_ngram_repeats(text) <= 2, f"runaway repetition: {text!r}"
    assert "firewall" in text.lower()
