"""Agent success on held-out generated vulnerable repositories, per mode (guided workflow vs free planner).

The same evaluation as ``secops-ai agent eval`` (see ``secops_ai.agents.evaluation``): for each held-out seed,
generate a repository with 2-5 bandit findings, run the agent with the default budget, then check the final
patch independently (applies to the original, a rescan shows a fix, the repo's tests pass, the original is
unchanged). Each mode runs on the same seeds with the same model, loaded once, so the modes compare directly.

    .venv/bin/python bench/agent_eval.py [--n 10] [--start 0] [--modes guided,free] [--model NAME]
                                         [--free-n 3] [--json out.json]

Wall time depends on what else the machine runs; ``cpu_seconds`` (the run's process and its sandboxed tools)
is what a run costs on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from secops_ai.agents.actions import Budget
from secops_ai.agents.evaluation import RepoResult, evaluate
from secops_ai.config import get_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="held-out repositories per mode")
    ap.add_argument("--start", type=int, default=0, help="first held-out seed")
    ap.add_argument("--modes", default="guided", help="comma-separated: guided, free, auto")
    ap.add_argument("--free-n", type=int, default=None, help="fewer repositories for the free planner (slow)")
    ap.add_argument("--model", default=None, help="model name (default: the configured one)")
    ap.add_argument("--json", type=Path, default=None, help="write every report here")
    args = ap.parse_args()

    from secops_ai.agents.models import check_model
    from secops_ai.inference.backend import backend_from_settings

    settings = get_settings()
    check_model(settings, args.model)
    backend = backend_from_settings(settings, args.model)  # loaded once, shared by every mode
    reports = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        n = args.free_n if mode == "free" and args.free_n else args.n
        print(f"== {mode}: {n} held-out repositories from seed {args.start}", flush=True)

        def show(r: RepoResult) -> None:
            print(f"  seed {r.seed:3d} {r.outcome:16s} ok={r.succeeded!s:5s} wall {r.run_seconds:6.1f}s "
                  f"cpu {r.cpu_seconds:6.1f}s steps {r.steps} fixed {r.fixed} {r.reason}", flush=True)

        t0 = time.monotonic()
        report = evaluate(settings, model=args.model, n=n, start=args.start, mode=mode, budget=Budget(),
                          backend=backend, on_result=show)
        reports[mode] = report
        print(f"  {mode}: {report.succeeded}/{report.total} succeeded; wall mean {report.run_seconds_mean:.1f}s "
              f"max {report.run_seconds_max:.1f}s; cpu max {report.cpu_seconds_max:.1f}s; "
              f"total {time.monotonic() - t0:.0f}s on {os.cpu_count()} CPUs, load {report.load_avg_1m}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({m: r.model_dump() for m, r in reports.items()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
