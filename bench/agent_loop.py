"""Agent loop overhead per step, without model time (target < 20 ms).

A scripted model answers instantly and a trivial tool does nothing, so what is left is the loop itself:
building prompts, checking every answer against its JSON schema, pydantic validation, idempotency keys,
events and the fsynced trajectory. The baseline, measured in the same run, is the same tool called directly.

    .venv/bin/python bench/agent_loop.py [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from secops_ai.agents.actions import Budget
from secops_ai.agents.events import EventLog
from secops_ai.agents.loop import AgentConfig, AgentLoop
from secops_ai.agents.scripted import ScriptedBackend
from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolRegistry, ToolResult, idempotency_key
from secops_ai.agents.trajectory import TrajectoryWriter

TARGET_MS = 20.0


class CountArgs(ToolArgs):
    n: int


class Count(Tool):
    name = "count"
    description = "Return the number it is given."
    input_model = CountArgs
    risk = "low"

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        return ToolResult.success(str(args.n), {"n": args.n})


def run_loop(steps: int, folder: Path, *, reflect: bool, fsync: str) -> float:
    registry = ToolRegistry([Count()])
    backend = ScriptedBackend([{"thought": "count", "tool": "count", "args": {"n": i}} for i in range(steps)])
    writer = TrajectoryWriter(folder / f"run-{time.monotonic_ns()}.jsonl", fsync=fsync)
    log = EventLog("bench", writer)
    config = AgentConfig(budget=Budget(max_steps=steps, max_tokens=10**9, max_seconds=3600), reflect=reflect)
    loop = AgentLoop(backend, registry, None, log, config, idempotency_key=idempotency_key)
    start = time.perf_counter()
    result = loop.run("count")
    elapsed = time.perf_counter() - start
    log.close()
    assert result.usage.steps == steps, result
    return elapsed


def run_baseline(steps: int) -> float:
    registry = ToolRegistry([Count()])
    start = time.perf_counter()
    for i in range(steps):
        registry.execute("count", {"n": i}, None)  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="Where trajectories go (default: a temp folder).")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-agent-"))
    run_loop(5, folder, reflect=True, fsync="event")  # warm-up: imports, prompt and schema construction
    probe = folder / "fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    start = time.perf_counter()
    for _ in range(50):
        os.write(fd, b"x" * 300 + b"\n")
        os.fsync(fd)
    os.close(fd)
    print(f"one fsync on {folder}: {(time.perf_counter() - start) / 50 * 1000:.2f} ms")

    base = statistics.median(run_baseline(args.steps) for _ in range(args.repeats))
    print(f"baseline (tool called directly): {base / args.steps * 1000:.3f} ms/step")
    for reflect in (False, True):
        for fsync in ("off", "step", "event"):
            total = statistics.median(run_loop(args.steps, folder, reflect=reflect, fsync=fsync)
                                      for _ in range(args.repeats))
            overhead_ms = (total - base) / args.steps * 1000
            print(f"loop reflect={reflect!s:5} fsync={fsync:5}: {total / args.steps * 1000:7.3f} ms/step, "
                  f"overhead {overhead_ms:7.3f} ms/step = {overhead_ms / TARGET_MS:.2f}x the {TARGET_MS:g} ms target, "
                  f"{total / base:,.0f}x the baseline")


if __name__ == "__main__":
    main()
