"""Serving benchmark: the server vs plain ``model.generate``, all figures measured in this one run, both on
the same device and dtype (float32 on CPU, bfloat16 on CUDA, as the loader picks).

1. single-stream decode tokens/s through the server vs plain ``model.generate`` (target: CPU >= 1.0x,
   CUDA >= 1.5x)
2. aggregate tokens/s with N concurrent streams vs 1 stream (target: CPU >= 4x at 8, CUDA >= 20x at 32)
3. p50 / p90 time to first token (streaming)

Run: ``.venv/bin/python bench/serving.py [--tokens 128] [--streams 8] [--seconds 40] [--device cpu|cuda|auto]
[--model <base-model folder>]``. Without ``--model`` the bundled SmolLM2-135M-Instruct is used; a folder
with random-init weights of a real shape stands in for it on a GPU box.

Throughput is measured closed-loop: each of N clients sends its next request as soon as the previous
one ends, for a fixed time, so N streams really are in flight the whole time (answers that end early
don't leave the batch half empty). Token counts come from ``usage``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openai import OpenAI

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Explain how SQL injection works and how parameterised queries prevent it.",
    "Describe the steps to triage a high-severity bandit finding in a Python web app.",
    "What is cross-site scripting and what are three ways to mitigate it?",
    "Explain the difference between authentication and authorisation with examples.",
    "List common causes of path traversal vulnerabilities and their fixes.",
    "How should secrets be stored in a CI pipeline? Give concrete advice.",
    "Explain what a SIEM does and how alerts are tuned to reduce noise.",
    "Describe the principle of least privilege for cloud service accounts.",
]


def start_server(home: Path, port: int, model_dir: Path, device: str) -> subprocess.Popen:
    env = {**os.environ, "SECOPS_HOME": str(home), "SECOPS_PORT": str(port), "SECOPS_LOG_LEVEL": "WARNING",
           "HF_HUB_OFFLINE": "1", "SECOPS_BASE_MODEL": str(model_dir), "SECOPS_DEVICE": device,
           "SECOPS_MAX_BATCH_SIZE": os.environ.get("SECOPS_MAX_BATCH_SIZE", "32"),
           # this bench measures the transformers engine (bench/llamacpp_serving.py measures llama.cpp's)
           "SECOPS_ENGINE": os.environ.get("SECOPS_ENGINE", "transformers")}
    proc = subprocess.Popen([sys.executable, "-m", "secops_ai.cli.main", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not become ready")


def stream_once(client: OpenAI, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """Return (ttft seconds, total seconds, completion tokens) for one streamed request."""
    start = time.perf_counter()
    ttft = None
    tokens = 0
    stream = client.chat.completions.create(model="default", messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - start
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return ttft or 0.0, time.perf_counter() - start, tokens


def closed_loop(client: OpenAI, streams: int, seconds: float, max_tokens: int
                ) -> tuple[float, list[tuple[float, float, int]]]:
    """``streams`` clients each issuing requests back to back for ``seconds``; returns (tokens/s, requests)."""
    deadline = time.perf_counter() + seconds

    def worker(w: int) -> list[tuple[float, float, int]]:
        done, i = [], w
        while time.perf_counter() < deadline:
            done.append(stream_once(client, PROMPTS[i % len(PROMPTS)], max_tokens))
            i += streams
        return done

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(streams) as pool:
        results = [r for rs in pool.map(worker, range(streams)) for r in rs]
    return sum(r[2] for r in results) / (time.perf_counter() - start), results


def plain_generate(model_dir: Path, max_tokens: int, device: str) -> float:
    """tokens/s of ``model.generate`` on the same prompts, greedy, batch 1, in this process."""
    import torch

    from secops_ai.inference.chat_template import apply_chat_template
    from secops_ai.inference.loader import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_dir, device=device)
    total_tokens, total_time = 0, 0.0
    for prompt in PROMPTS[:4]:
        ids = tok(apply_chat_template(tok, [{"role": "user", "content": prompt}]), return_tensors="pt",
                  add_special_tokens=False).to(model.device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
        total_time += time.perf_counter() - start
        total_tokens += out.shape[1] - ids["input_ids"].shape[1]
    del model
    return total_tokens / total_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0, help="closed-loop duration per phase")
    parser.add_argument("--home", type=Path, default=None, help="workspace (default: a temp dir)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto",
                        help="where both the baseline and the server run (auto: cuda when available)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a base-model folder (default: the bundled SmolLM2-135M-Instruct)")
    args = parser.parse_args()

    from secops_ai.config import Workspace
    from secops_ai.inference.loader import pick_device, prepare_base_model

    device = pick_device(args.device)
    home = args.home or Path(tempfile.mkdtemp(prefix="secops-bench-"))
    base_dir = args.model.resolve() if args.model else prepare_base_model(Workspace(home))
    baseline = plain_generate(base_dir, args.tokens, device)

    from tests.conftest import free_port

    port = free_port()
    proc = start_server(home, port, base_dir, device)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=600)
        stream_once(client, "warm up", 8)
        single_tps, singles = closed_loop(client, 1, args.seconds, args.tokens)
        concurrent_tps, results = closed_loop(client, args.streams, args.seconds, args.tokens)
        ttfts = sorted(r[0] for r in singles + results)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    cuda = device.startswith("cuda")
    p50 = statistics.median(ttfts)
    p90 = ttfts[int(0.9 * (len(ttfts) - 1))]
    rows = [
        ("model.generate, 1 stream (baseline)", f"{baseline:.1f} tok/s", ""),
        ("server, 1 stream", f"{single_tps:.1f} tok/s",
         f"{single_tps / baseline:.2f}x baseline (target >= {'1.5' if cuda else '1.0'}x)"),
        (f"server, {args.streams} concurrent streams", f"{concurrent_tps:.1f} tok/s",
         f"{concurrent_tps / single_tps:.2f}x 1 stream (target >= {'20x at 32' if cuda else '4x at 8'})"),
        ("time to first token p50 / p90", f"{p50 * 1000:.0f} / {p90 * 1000:.0f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nServing benchmark: {base_dir.name}, {args.tokens} new tokens, greedy, {device} "
          f"({'bfloat16' if cuda else f'float32, cpu x{os.cpu_count()}'})")
    for name, value, ratio in rows:
        print(f"  {name:<{width}}  {value:>16}  {ratio}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
