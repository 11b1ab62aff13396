"""Benchmark: the full default gate on the bundled model, and batched vs one-at-a-time generation.

    SECOPS_HOME=/tmp/bench-home .venv/bin/python bench/evals.py [--gate configs/gates/default.yaml]

Prints the wall time of every suite and of the whole gate (target: under 10 minutes on 2 CPU cores),
evaluated items per second, and the speed-up of batched generation over a one-at-a-time baseline
measured in the same run on the same items.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from secops_ai.config import get_settings
from secops_ai.evals.gate import load_gate
from secops_ai.evals.runner import evaluate_model
from secops_ai.evals.suites import SUITES
from secops_ai.inference.backend import LocalBackend
from secops_ai.inference.loader import resolve_base_model
from secops_ai.inference.types import GenerationParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gate", default=None, help="gate config (default: configs/gates/default.yaml)")
    parser.add_argument("--baseline-items", type=int, default=16, help="items for the batched-vs-sequential ratio")
    args = parser.parse_args()

    settings = get_settings()
    config, path = load_gate(args.gate)
    base_dir = resolve_base_model(settings)
    t0 = time.perf_counter()
    backend = LocalBackend.load(base_dir, name=f"base:{base_dir.name}")
    backend.batch_size = config.batch_size
    load_s = time.perf_counter() - t0
    print(f"model {base_dir.name} loaded in {load_s:.1f} s; gate {config.name} v{config.version} ({path})", flush=True)

    def progress(label: str, done: int, total: int) -> None:
        print(f"  {label}: {done}/{total} items, {time.perf_counter() - t0:.0f} s", flush=True)

    t0 = time.perf_counter()
    result = evaluate_model(backend, config, "base", progress=progress)
    print(f"\n{'suite':<18}{'items':>6}{'seconds':>10}{'items/s':>9}  score")
    for name, r in result.suites.items():
        print(f"{name:<18}{r.n:>6}{r.duration_s:>10.1f}{r.n / r.duration_s:>9.2f}  {r.metric}={r.score:.3f}")
    print(f"{'full gate':<18}{result.items:>6}{result.duration_s:>10.1f}{result.items_per_s:>9.2f}"
          f"  (+{load_s:.1f} s model load; target < 600 s)")

    # Baseline in the same run: the same policy-suite prompts generated one at a time vs in batches.
    cfg = config.suites["policy"]
    items = SUITES["policy"].build(cfg, config.seed)[: args.baseline_items]
    convs = [it.messages for it in items]
    params = GenerationParams(max_tokens=cfg.max_new_tokens, temperature=0.0, seed=config.seed)
    t0 = time.perf_counter()
    for conv in convs:
        backend.chat([conv], params)
    seq_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend.chat(convs, params)
    bat_s = time.perf_counter() - t0
    print(f"\nbaseline ({len(convs)} policy items, {cfg.max_new_tokens} new tokens): one at a time {seq_s:.1f} s "
          f"({len(convs) / seq_s:.2f} items/s); batched by {config.batch_size} {bat_s:.1f} s "
          f"({len(convs) / bat_s:.2f} items/s); speed-up x{seq_s / bat_s:.2f}")


if __name__ == "__main__":
    main()
