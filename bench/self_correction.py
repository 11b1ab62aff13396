"""Self-correction on the bundled model: hallucination, task accuracy, id -> name answers and latency per mode.

For each mode (off, intrinsic, verified) the gate's own items are answered through
:class:`~secops_ai.alignment.selfcorrect.SelfCorrectingBackend` and scored by the gate's suites:

- hallucination: the default gate's held-out id questions (name -> CWE id, and questions about invented ids);
- task_accuracy: the default gate's multiple-choice items on held-out weaknesses;
- id -> name: "What is CWE-<id>?" for held-out CWE ids (outside every training set); correct when the answer
  gives the catalog title and cites ``[CWE-<id>]``.

Latency: the same ``--latency-items`` questions are answered one at a time (batch of one, as a chat request
is served) by every mode in turn, question by question, so load on the machine weighs on all modes alike; the
multiple is a mode's total time over ``off``'s.

    .venv/bin/python bench/self_correction.py [--modes off,intrinsic,verified] [--id-items 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="off,intrinsic,verified")
    ap.add_argument("--id-items", type=int, default=30, help="CWE id -> name questions on held-out ids")
    ap.add_argument("--latency-items", type=int, default=8)
    ap.add_argument("--home", default=None, help="SECOPS_HOME holding the converted bundled model")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()

    from secops_ai.alignment.selfcorrect import SelfCorrectingBackend
    from secops_ai.alignment.selfcorrect.catalog import lookup, states_title
    from secops_ai.config import Workspace
    from secops_ai.evals.gate import load_gate
    from secops_ai.evals.holdout import held_out_cwes
    from secops_ai.evals.suites import SUITES, ScoreContext
    from secops_ai.evals.suites.base import EvalItem, fixed_sample, user
    from secops_ai.inference.backend import LocalBackend
    from secops_ai.inference.loader import prepare_base_model
    from secops_ai.inference.types import GenerationParams

    home = Path(args.home or tempfile.mkdtemp(prefix="bench-selfcorrect-"))
    base_dir = prepare_base_model(Workspace(home).ensure())
    inner = LocalBackend.load(base_dir, name="smollm2-135m")
    gate, _ = load_gate(None)
    suites = {n: (gate.suites[n], SUITES[n].build(gate.suites[n], gate.seed))
              for n in ("hallucination", "task_accuracy")}
    picked = fixed_sample(held_out_cwes(), args.id_items, gate.seed, lambda c: f"id-name:{c.id}")
    id_items = [EvalItem(f"id-name-{c.id}", user(f"What is CWE-{c.id}? Answer with its name."),
                         expected=f"CWE-{c.id}") for c in picked]
    latency_qs = [it.messages for it in (suites["hallucination"][1][: args.latency_items // 2]
                                         + id_items[: args.latency_items - args.latency_items // 2])]
    out: dict[str, dict] = {}
    modes = [m for m in args.modes.split(",") if m]  # --modes "" measures latency only
    for mode in modes:
        backend = SelfCorrectingBackend(inner, mode)
        row: dict[str, float] = {}
        for name, (cfg, items) in suites.items():
            params = GenerationParams(max_tokens=cfg.max_new_tokens, temperature=0.0, seed=gate.seed)
            replies = []
            for start in range(0, len(items), gate.batch_size):
                replies += backend.chat([it.messages for it in items[start:start + gate.batch_size]], params)
            metrics, _, _ = SUITES[name].score(items, replies, cfg, ScoreContext(seed=gate.seed))
            row.update({f"{name}.{k}": round(v, 4) for k, v in metrics.items()})
        params = GenerationParams(max_tokens=64, temperature=0.0, seed=gate.seed)
        replies = []
        for start in range(0, len(id_items), gate.batch_size):
            replies += backend.chat([it.messages for it in id_items[start:start + gate.batch_size]], params)
        ok = []
        for it, reply in zip(id_items, replies, strict=True):
            entry = lookup("cwe", it.expected)
            ok.append(entry is not None and states_title(reply, entry) and f"[{it.expected}]" in reply)
        row["id_to_name.correct_with_citation"] = round(sum(ok) / len(ok), 4)
        out[mode] = row
        print(mode, json.dumps(row), flush=True)
    if args.latency_items:
        params = GenerationParams(max_tokens=64, temperature=0.0, seed=gate.seed)
        wrapped = {m: SelfCorrectingBackend(inner, m) for m in ("off", "intrinsic", "verified")}
        totals = dict.fromkeys(wrapped, 0.0)
        for msgs in latency_qs:
            for mode, backend in wrapped.items():
                t0 = time.perf_counter()
                backend.chat([msgs], params)
                totals[mode] += time.perf_counter() - t0
        for mode, total in totals.items():
            out.setdefault(mode, {})["latency_mean_s"] = round(total / len(latency_qs), 3)
            out[mode]["latency_multiple"] = round(total / totals["off"], 2)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
