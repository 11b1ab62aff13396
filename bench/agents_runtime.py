"""Agent runtime benchmarks: sandbox start-to-exit, and long-term memory query latency + recall at 100k.

    .venv/bin/python bench/agents_runtime.py            # full run (100k memory entries)
    .venv/bin/python bench/agents_runtime.py --n 20000  # quicker

1. Sandbox: wall time of ``Sandbox.run(["true"])`` (bubblewrap namespaces, setpriv, prlimit, output reader),
   against a bare ``subprocess.run(["true"])`` measured in the same run. Target: p50 < 50 ms.
2. Memory: ``VectorStore.search`` p50 over ``--n`` synthetic unit vectors (384-dim, the MiniLM size), HNSW
   vs exact numpy search measured in the same run, and recall@10 of HNSW against exact. Target: p50 < 10 ms.
   The vectors are synthetic (unit vectors in a random 32-dim subspace of R^384 plus noise), so the run
   needs no embedding of 100k texts; embedding one query with MiniLM is timed separately (a memory query
   pays it once).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from secops_ai.agents.sandbox import Sandbox
from secops_ai.knowledge.vectorstore import VectorStore


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench_sandbox(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        sandbox.working_copy(Path(tmp))
        for _ in range(3):
            sandbox.run(["true"])  # warm the page cache
        base, boxed = [], []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(["true"], check=True)
            base.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            result = sandbox.run(["true"])
            boxed.append((time.perf_counter() - t) * 1000)
            assert result.ok, result.stderr
    p50, b50 = statistics.median(boxed), statistics.median(base)
    verdict = "PASS" if p50 < 50 else "FAIL"
    print(f"sandbox `true` start-to-exit: p50 {p50:.1f} ms, p95 {pct(boxed, 95):.1f} ms "
          f"(bare subprocess p50 {b50:.2f} ms, ratio {p50 / b50:.1f}x; target < 50 ms: {verdict})")


def synthetic(n: int, dim: int, seed: int, rank: int = 32) -> np.ndarray:
    """Unit vectors with low intrinsic dimension (a random rank-32 subspace plus noise), like sentence
    embeddings; isotropic Gaussian vectors would be a worst case no real embedding model produces."""
    basis = np.random.default_rng(1234).standard_normal((rank, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    noise = 0.1 * rng.standard_normal((n, dim)).astype(np.float32)
    v = rng.standard_normal((n, rank)).astype(np.float32) @ basis + noise
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bench_memory(n: int, dim: int, queries: int, ef: int) -> None:
    data = synthetic(n, dim, seed=0)
    qs = synthetic(queries, dim, seed=1)
    store = VectorStore(dim, exact_threshold=0, ef_search=ef)
    ids = [f"m{i}" for i in range(n)]
    t = time.perf_counter()
    store.add(ids, data, [{"i": i} for i in range(n)])
    store.build_index()
    build = time.perf_counter() - t

    approx_ms, exact_ms, recall = [], [], []
    for q in qs:
        t = time.perf_counter()
        got = store.search(q, 10)
        approx_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        truth = store.search(q, 10, exact=True)
        exact_ms.append((time.perf_counter() - t) * 1000)
        recall.append(len({h.id for h in got} & {h.id for h in truth}) / 10)
    p50, e50 = statistics.median(approx_ms), statistics.median(exact_ms)
    print(f"memory query at {n:,} x {dim}: HNSW p50 {p50:.2f} ms, p95 {pct(approx_ms, 95):.2f} ms; "
          f"exact numpy p50 {e50:.2f} ms (HNSW {e50 / p50:.0f}x faster); recall@10 {np.mean(recall):.3f} "
          f"(ef={ef}); index build {build:.1f} s; target < 10 ms: {'PASS' if p50 < 10 else 'FAIL'}")

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store.save(Path(tmp))
        saved = time.perf_counter() - t
        t = time.perf_counter()
        VectorStore.load(Path(tmp))
        print(f"snapshot save {saved:.2f} s, load {time.perf_counter() - t:.2f} s (index reused, not rebuilt)")


def bench_embed(queries: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from secops_ai.knowledge.embeddings import embed

    embed(["warm up"])
    default_threads = torch.get_num_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        times = []
        for i in range(queries):
            t = time.perf_counter()
            embed([f"how do I fix SQL injection number {i}"])
            times.append((time.perf_counter() - t) * 1000)
        print(f"embedding one query (MiniLM, CPU, {threads} torch thread(s)): p50 {statistics.median(times):.1f} ms")
    torch.set_num_threads(default_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="sandbox runs")
    parser.add_argument("--n", type=int, default=100_000, help="memory entries")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", type=int, default=128, help="HNSW ef at query time")
    parser.add_argument("--skip-embed", action="store_true", help="don't time MiniLM query embedding")
    args = parser.parse_args()
    bench_sandbox(args.runs)
    bench_memory(args.n, args.dim, args.queries, args.ef)
    if not args.skip_embed:
        bench_embed(20)


if __name__ == "__main__":
    main()
