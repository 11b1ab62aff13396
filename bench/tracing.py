"""What tracing costs a request: off (the default) and on, against one decode step, in the same run.

    .venv/bin/python bench/tracing.py            # 200k spans per mode
    .venv/bin/python bench/tracing.py --n 20000  # quicker

Every chat request opens one ``chat`` span and records its usage through the helpers in
``secops_ai.observability.tracing``; an agent tool call opens one ``execute_tool`` span. This measures
that exact work per request:

1. baseline: the same loop with no span at all;
2. off: tracing not configured (no OTEL_* variables): OpenTelemetry's no-op tracer;
3. on: an SDK tracer provider with a batch processor and an in-memory exporter (no network), which is
   the in-process cost a real OTLP exporter adds before its background thread ships the spans.

The reference is one greedy decode step of a 2-layer Llama on this CPU (a real request takes tens to
hundreds of them), so "off" is read as a fraction of the smallest unit of serving work. Target: off adds
no measurable cost (< 1 % of one decode step).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from secops_ai.observability import tracing


def per_request(n: int) -> float:
    """Seconds per request of the span work the serving path does."""
    start = time.perf_counter()
    for i in range(n):
        with tracing.genai_span("chat", "bench-model", attributes={"gen_ai.request.max_tokens": 16}) as span:
            tracing.record_usage(span, response_model="bench-model", finish_reasons=["stop"], input_tokens=i,
                                 output_tokens=16, ttft_s=0.01, response_id="chatcmpl-1")
            tracing.record_content(span, messages=[{"role": "user", "content": "hi"}], output="hello")
    return (time.perf_counter() - start) / n


def baseline(n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        _ = {"gen_ai.request.max_tokens": 16, "input": i}
    return (time.perf_counter() - start) / n


def decode_step_s() -> float:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
    ids = torch.randint(0, 49152, (1, 32))
    with torch.no_grad():
        out = model(ids, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(50):
            t = time.perf_counter()
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()

    assert not tracing.tracing_requested(), "unset OTEL_* variables to measure the default"
    base = min(baseline(args.n) for _ in range(3))
    off = min(per_request(args.n) for _ in range(3))

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=2 * args.n))
    trace.set_tracer_provider(provider)
    on = min(per_request(args.n // 4) for _ in range(3))
    provider.shutdown()
    step = decode_step_s()

    off_extra = max(off - base, 0.0)
    print(f"spans per mode: {args.n:,}; one decode step (2-layer Llama, 1 row): {step * 1e6:,.0f} us")
    print(f"{'mode':<10} {'us/request':>11} {'extra vs no span':>17} {'extra / decode step':>20}")
    print(f"{'no span':<10} {base * 1e6:>11.3f} {'-':>17} {'-':>20}")
    print(f"{'off':<10} {off * 1e6:>11.3f} {off_extra * 1e6:>15.3f}us {off_extra / step:>19.4%}")
    print(f"{'on':<10} {on * 1e6:>11.3f} {(on - base) * 1e6:>15.3f}us {(on - base) / step:>19.4%}")
    verdict = "PASS" if off_extra / step < 0.01 else "FAIL"
    print(f"target: tracing off adds < 1% of one decode step per request -> {verdict}")


if __name__ == "__main__":
    main()
