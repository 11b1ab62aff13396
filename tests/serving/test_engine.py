"""The batching engine in-process: failures end only their own step's rows, admission is all-or-nothing,
cancelled rows leave at the next step, and the engine is the one decode path behind every backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from secops_ai.inference.backend import LocalBackend
from secops_ai.inference.engine import BatchEngine, GenRequest, QueueFullError
from secops_ai.inference.loader import load_model_and_tokenizer
from secops_ai.inference.types import GenerationParams


class Row:
    """Collects one row's events; ``wait`` fails the test instead of hanging."""

    def __init__(self) -> None:
        self.text = ""
        self.end: tuple[str, Any] | None = None
        self.event = threading.Event()

    def emit(self, kind: str, payload: Any) -> None:
        if kind == "delta":
            self.text += payload
        else:
            assert self.end is None, "a row ended twice"
            self.end = (kind, payload)
            self.event.set()

    def wait(self, timeout: float = 30.0) -> tuple[str, Any]:
        assert self.event.wait(timeout), "the row never ended (engine hang)"
        assert self.end is not None
        return self.end


@pytest.fixture(scope="module")
def engine(tiny_llama_dir: Path):
    model, tok = load_model_and_tokenizer(tiny_llama_dir)
    eng = BatchEngine(model, tok, max_batch_size=4, max_queue=6)
    eng.start()
    yield eng
    eng.stop()


def _req(engine: BatchEngine, text: str, row: Row, **params: Any) -> GenRequest:
    ids = engine.tokenizer(text)["input_ids"]
    return GenRequest(ids, GenerationParams(**{"max_tokens": 40, "temperature": 0.0, **params}), row.emit)


def test_a_failing_step_ends_its_rows_and_the_engine_keeps_serving(engine: BatchEngine) -> None:
    calls = {"n": 0}

    def hostile(_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 3:  # fail mid-decode, with a healthy row in the same step
            raise RuntimeError("boom from a hostile logits processor")
        return logits

    bad, healthy, later = Row(), Row(), Row()
    bad_req = _req(engine, "alert tcp any any", bad, max_tokens=200)
    bad_req.logits_processor = hostile
    engine.submit_many([bad_req, _req(engine, "GET /admin HTTP/1.1", healthy, max_tokens=200)])
    assert bad.wait()[0] == "error" and "boom" in bad.wait()[1]
    assert healthy.wait()[0] == "error"  # same step: ended promptly, never left hanging
    engine.submit(_req(engine, "Failed password for root", later, max_tokens=8))
    kind, info = later.wait()
    assert kind == "done" and info["completion_tokens"] > 0 and later.text


def test_bad_requests_are_refused_before_the_engine(engine: BatchEngine) -> None:
    row = Row()
    for ids, params in (([], {}), ([10**9], {}), ([-1], {}), ([1, 2], {"seed": 2**70})):
        with pytest.raises(ValueError):
            engine.submit(GenRequest(ids, GenerationParams(**params), row.emit))
    assert engine.queue_depth == 0


def test_admission_is_all_or_nothing_and_cancelled_rows_leave(engine: BatchEngine) -> None:
    running = [Row() for _ in range(6)]
    reqs = [_req(engine, f"finding {i}", r, max_tokens=400) for i, r in enumerate(running)]
    engine.submit_many(reqs)  # 4 decode, 2 wait
    deadline = time.monotonic() + 10
    while engine.queue_depth != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    rejected = [Row() for _ in range(6)]
    with pytest.raises(QueueFullError):
        engine.submit_many([_req(engine, "x", r) for r in rejected])
    assert engine.queue_depth <= 2  # none of the rejected request's rows was queued
    for req in reqs:
        req.cancelled.set()
    for r in running:
        kind, info = r.wait()
        assert kind == "done" and info["finish_reason"] == "cancelled" and info["completion_tokens"] < 400
    assert all(r.end is None for r in rejected)


def test_local_backend_and_generate_batch_decode_on_the_engine(tiny_llama_dir: Path) -> None:
    from secops_ai.inference.generation import generate_batch

    model, tok = load_model_and_tokenizer(tiny_llama_dir)
    backend = LocalBackend(model, tok)
    convs = [[{"role": "user", "content": f"triage finding {i}"}] for i in range(3)]
    params = GenerationParams(max_tokens=12)
    via_backend = backend.chat(convs, params)
    from secops_ai.inference.chat_template import apply_chat_template

    via_batch = generate_batch(model, tok, [apply_chat_template(tok, c) for c in convs], params)
    assert via_backend == via_batch
    # The engine behind both is greedy = plain transformers greedy (no batching artefacts).
    ids = tok(apply_chat_template(tok, convs[0]), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
    assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == via_backend[0]
    backend.close()
