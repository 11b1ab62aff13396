"""`secops-ai serve` (llama.cpp engine) against plain `llama-server` on the same GGUF, measured in one run.

Both servers run the bundled SmolLM2-135M-Instruct Q4_1 GGUF with the same threads and 8 slots; the plain one is
started as a user would (`llama-server -m <gguf> -t T -np 8`), ours with SECOPS_ENGINE=llamacpp (its
`llama-server` is found or built the way `make setup` does: secops_ai.inference.llamacpp_build). The client is
bench/serving.py's closed loop (N clients, each sending its next streamed request as soon as the last ends),
128 new tokens, greedy, 1 then 8 streams. Every conversation carries the system prompt explicitly, so both
servers decode the same tokens (ours would otherwise add it; llama-server would not). Phases alternate between
the servers and repeat (median of --repeats) so a change of load on a shared box hits both alike.

Targets (issue 17): ours / plain >= 0.9x at 1 stream and at 8 streams.

Run: ``.venv/bin/python bench/llamacpp_serving.py [--seconds 20] [--repeats 3] [--threads 2]``
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
sys.path.insert(0, str(ROOT))

from bench.serving import PROMPTS  # noqa: E402  (the same prompts as the serving bench)


def wait_ready(url: str, proc: subprocess.Popen, what: str) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{what} did not become ready")


def stream_once(client: OpenAI, model: str, system: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    """(ttft seconds, completion tokens) of one streamed chat request."""
    start, ttft, tokens = time.perf_counter(), None, 0
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
        max_tokens=max_tokens, temperature=0, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - start
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return ttft or 0.0, tokens


def closed_loop(client: OpenAI, model: str, system: str, streams: int, seconds: float, max_tokens: int
                ) -> tuple[float, float]:
    """(aggregate tokens/s, median ttft) of ``streams`` clients sending requests back to back."""
    deadline = time.perf_counter() + seconds

    def worker(w: int) -> list[tuple[float, int]]:
        done, i = [], w
        while time.perf_counter() < deadline:
            done.append(stream_once(client, model, system, PROMPTS[i % len(PROMPTS)], max_tokens))
            i += streams
        return done

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(streams) as pool:
        results = [r for rs in pool.map(worker, range(streams)) for r in rs]
    return sum(r[1] for r in results) / (time.perf_counter() - start), statistics.median(r[0] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="closed-loop duration per phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    from secops_ai.config import Workspace
    from secops_ai.config.settings import DEFAULT_SYSTEM_PROMPT
    from secops_ai.inference.llamacpp_build import build
    from secops_ai.inference.loader import bundled_gguf_path, prepare_base_model
    from tests.conftest import free_port

    binary = build()  # finds the cached build (or builds it), as make setup does
    gguf = bundled_gguf_path()
    home = Path(tempfile.mkdtemp(prefix="secops-bench-llama-"))
    prepare_base_model(Workspace(home))

    plain_port, ours_port = free_port(), free_port()
    plain = subprocess.Popen([str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(plain_port),
                              "-t", str(args.threads), "-np", str(args.streams), "--no-webui"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "SECOPS_HOME": str(home), "SECOPS_PORT": str(ours_port), "SECOPS_LOG_LEVEL": "WARNING",
           "SECOPS_ENGINE": "llamacpp", "SECOPS_GGUF_QUANT": "q4_1", "SECOPS_LLAMACPP_THREADS": str(args.threads),
           "SECOPS_MAX_BATCH_SIZE": str(args.streams), "HF_HUB_OFFLINE": "1"}
    ours = subprocess.Popen([sys.executable, "-m", "secops_ai.cli.main", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        wait_ready(f"http://127.0.0.1:{plain_port}/health", plain, "llama-server")
        wait_ready(f"http://127.0.0.1:{ours_port}/readyz", ours, "secops-ai serve")
        clients = {"llama-server": (OpenAI(base_url=f"http://127.0.0.1:{plain_port}/v1", api_key="x",
                                           max_retries=0, timeout=600), gguf.name),
                   "secops-ai serve": (OpenAI(base_url=f"http://127.0.0.1:{ours_port}/v1", api_key="x",
                                              max_retries=0, timeout=600), "default")}
        for client, model in clients.values():
            stream_once(client, model, DEFAULT_SYSTEM_PROMPT, "warm up", 8)
        load_before = os.getloadavg()
        for r in range(args.repeats):
            order = list(clients) if r % 2 == 0 else list(reversed(clients))
            for streams in (1, args.streams):
                for name in order:
                    client, model = clients[name]
                    figures.setdefault((name, streams), []).append(
                        closed_loop(client, model, DEFAULT_SYSTEM_PROMPT, streams, args.seconds, args.tokens))
        load_after = os.getloadavg()
    finally:
        for proc in (ours, plain):
            proc.terminate()
            proc.wait(timeout=30)

    def med(name: str, streams: int, k: int) -> float:
        return statistics.median(f[k] for f in figures[(name, streams)])

    print(f"\nllama.cpp serving bench: {gguf.name}, {args.tokens} new tokens, greedy, -t {args.threads}, "
          f"-np {args.streams}, median of {args.repeats} x {args.seconds:.0f} s per phase; load average "
          f"{load_before[0]:.2f} before / {load_after[0]:.2f} after (1 min), cpu x{os.cpu_count()}")
    for streams in (1, args.streams):
        p, o = med("llama-server", streams, 0), med("secops-ai serve", streams, 0)
        pt, ot = med("llama-server", streams, 1), med("secops-ai serve", streams, 1)
        print(f"  {streams} stream{'s' if streams > 1 else ' '}: llama-server {p:6.1f} tok/s (ttft {pt * 1000:4.0f} ms)"
              f" | secops-ai serve {o:6.1f} tok/s (ttft {ot * 1000:4.0f} ms) | ratio {o / p:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
