"""Self-correction through a real server (tiny random model) with the openai client: the request extension,
the '+verified' model suffix, the streamed last chunk and the 400s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import BadRequestError, OpenAI

from tests.conftest import ServerProcess

QUESTION = [{"role": "user", "content": "What is CWE-79?"}]
XSS = "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("selfcorrect") / "secops-home"
    proc = ServerProcess({"SECOPS_HOME": str(home), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
                          "SECOPS_MAX_NEW_TOKENS": "64"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def _ext(obj) -> dict:
    return (obj.model_extra or {})["secops"]["self_correction"]


def test_default_is_unchanged(client: OpenAI) -> None:
    r = client.chat.completions.create(model="default", messages=QUESTION, max_tokens=8, temperature=0)
    assert "secops" not in (r.model_extra or {})


def test_verified_via_extra_body(client: OpenAI) -> None:
    r = client.chat.completions.create(model="default", messages=QUESTION, max_tokens=24, temperature=0,
                                       extra_body={"secops": {"self_correct": "verified"}})
    ext = _ext(r)
    content = r.choices[0].message.content
    # a random model's draft is gibberish: the final answer states the catalog's title, cited
    assert XSS in content and "[CWE-79]" in content
    assert ext["mode"] == "verified" and ext["draft"] != content
    assert {"draft", "claims", "evidence", "checks", "revisions", "verification"} <= set(ext)
    assert any(e["ref"] == "CWE-79" and e["title"] == XSS for e in ext["evidence"])
    assert ext["model_calls"] == 2  # the draft and one evidence-grounded regeneration


def test_model_suffix_selects_the_mode(client: OpenAI) -> None:
    base = client.models.list().data[0].id
    r = client.chat.completions.create(model=f"{base}+intrinsic", messages=QUESTION, max_tokens=16, temperature=0)
    ext = _ext(r)
    assert ext["mode"] == "intrinsic" and ext["critique"] is not None
    assert r.model == f"{base}+intrinsic"
    assert r.choices[0].message.content == (ext["draft"] if ext["revisions"][0]["action"] == "keep_draft"
                                            else ext["revisions"][0]["after"])


def test_streaming_sends_the_final_answer_and_the_extension_last(client: OpenAI) -> None:
    stream = client.chat.completions.create(model="default+verified", messages=QUESTION, max_tokens=24,
                                            temperature=0, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 3  # sent piece by piece
    last = chunks[-1]
    assert last.choices[0].finish_reason is not None
    ext = _ext(last)
    assert ext["mode"] == "verified" and XSS in text and "[CWE-79]" in text
    assert all("secops" not in (c.model_extra or {}) for c in chunks[:-1])


@pytest.mark.parametrize("bad", [{"self_correct": "always"}, {"self_correct": 1}])
def test_bad_values_are_400(client: OpenAI, bad: dict) -> None:
    with pytest.raises(BadRequestError) as err:
        client.chat.completions.create(model="default", messages=QUESTION, max_tokens=4, extra_body={"secops": bad})
    body = err.value.response.json()
    assert body["error"]["param"] == "secops.self_correct" and body["error"]["type"] == "invalid_request_error"


def test_conflicting_suffix_and_extension_and_n_are_400(server: ServerProcess) -> None:
    url = f"{server.base_url}/v1/chat/completions"
    r = httpx.post(url, json={"model": "default+verified", "messages": QUESTION, "max_tokens": 4,
                              "secops": {"self_correct": "intrinsic"}}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "secops.self_correct"
    r = httpx.post(url, json={"model": "default+verified", "messages": QUESTION, "max_tokens": 4, "n": 2}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"
    r = httpx.post(url, json={"model": "default", "messages": QUESTION, "secops": "verified"}, timeout=60)
    assert r.status_code == 400
    r = httpx.post(url, json={"model": "nope+verified", "messages": QUESTION, "max_tokens": 4}, timeout=60)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
