"""Pretraining parity bench: nanoGPT's shakespeare_char CPU recipe, then the same with each experiment flag.

nanoGPT's README trains this config on a CPU (``--device=cpu --compile=False --eval_iters=20
--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
--lr_decay_iters=2000 --dropout=0.0`` over config/train_shakespeare_char.py) to val loss 1.88; this
script runs our loop on the same text, char-level, and checks val loss <= 1.89. Every variant trains on
the same corpus with the same seed; ratios are against the baseline measured in this run.

    .venv/bin/python bench/pretrain.py                 # all variants, 2000 iterations each
    .venv/bin/python bench/pretrain.py --iters 200 --variants baseline rope
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from secops_ai.config import Workspace
from secops_ai.training.pretrain.config import validate_config
from secops_ai.training.pretrain.corpus import CorpusSpec, build_corpus
from secops_ai.training.pretrain.train import train

SHAKESPEARE = (Path(__file__).resolve().parents[1] / "src" / "secops_ai" / "shared_data" / "tinyshakespeare"
               / "input.txt")
PARITY_VAL_LOSS = 1.89  # nanoGPT README: 1.88

# nanoGPT config/train_shakespeare_char.py with the README's CPU overrides
PARITY = {
    "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "bias": False},
    "batch_size": 12,
    "gradient_accumulation_steps": 1,
    "max_iters": 2000,
    "lr_decay_iters": 2000,
    "learning_rate": 1e-3,
    "min_lr": 1e-4,
    "beta2": 0.99,
    "warmup_iters": 100,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "eval_iters": 200,  # a steadier final figure than the README's 20 batches
    "log_interval": 100,
    "device": "cpu",
}
VARIANTS = {
    "baseline": {},
    "rope": {"rope": True},
    "swiglu": {"swiglu": True},
    "gqa": {"n_kv_head": 2},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=2000, help="iterations per variant (parity needs 2000)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--text", type=Path, default=SHAKESPEARE)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=1337, help="seed of every variant (nanoGPT's default 1337)")
    parser.add_argument("--parallel", action="store_true",
                        help="run the variants at once, one process each, so they share the same machine load")
    args = parser.parse_args()

    results = run_parallel(args) if args.parallel else run_serial(args)
    return report(results, args)


def run_parallel(args: argparse.Namespace) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-json-") as tmp:
        procs = []
        for name in args.variants:
            cmd = [sys.executable, __file__, "--iters", str(args.iters), "--variants", name, "--text", str(args.text),
                   "--json", str(Path(tmp) / f"{name}.json")]
            cmd += ["--seed", str(args.seed)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        codes = [p.wait() for p in procs]  # 1 is a parity FAIL, still a result
        if any(code not in (0, 1) for code in codes):
            raise SystemExit("a variant failed")
        return [json.loads((Path(tmp) / f"{name}.json").read_text())[0] for name in args.variants]


def run_serial(args: argparse.Namespace) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        ws = Workspace(tmp).ensure()
        corpus = build_corpus(ws.nanogpt_data, CorpusSpec(name="shakespeare-char", texts=[args.text], obfuscate=False))
        for name in args.variants:
            overrides = dict(PARITY, corpus=corpus.name, run_id=name, max_iters=args.iters,
                             lr_decay_iters=args.iters, eval_interval=args.iters, threads=args.threads,
                             seed=args.seed)
            overrides["model"] = {**PARITY["model"], **VARIANTS[name]}
            cfg = validate_config(overrides, f"bench variant {name}")
            r = train(cfg, ws, progress=sys.stderr.isatty())
            from secops_ai.training.pretrain.train import load_checkpoint

            params = load_checkpoint(r.run_dir)[0].num_params()
            tokens_per_iter = r.tokens_per_s * r.ms_per_iter / 1000
            results.append({"variant": name, "iters": r.iters, "ms_per_iter": r.ms_median, "ms_mean": r.ms_per_iter,
                            "tokens_per_s": tokens_per_iter / (r.ms_median / 1000), "val_loss": r.val_loss,
                            "train_loss": r.train_loss, "params": params})
            print(f"{name}: {r.ms_median:.1f} ms/iter (median; mean {r.ms_per_iter:.1f}), val loss {r.val_loss:.4f}",
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


def report(results: list[dict], args: argparse.Namespace) -> int:
    base = next((r for r in results if r["variant"] == "baseline"), results[0])
    print(f"\n{'variant':<10} {'params':>8} {'ms/iter':>8} {'(mean)':>8} {'tokens/s':>9} {'val loss':>9} "
          f"{'speed vs base':>14} {'val loss vs base':>17}")
    for r in results:
        ratio = base["ms_per_iter"] / r["ms_per_iter"]
        print(f"{r['variant']:<10} {r['params']:>8} {r['ms_per_iter']:>8.1f} {r['ms_mean']:>8.1f} "
              f"{r['tokens_per_s']:>9.0f} {r['val_loss']:>9.4f} {ratio:>13.2f}x "
              f"{r['val_loss'] - base['val_loss']:>+17.4f}")
    print("ms/iter is the median training iteration (evaluation excluded); tokens/s follows from it.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.iters == PARITY["max_iters"] and "baseline" in args.variants:
        ok = base["val_loss"] <= PARITY_VAL_LOSS
        print(f"\nparity with nanoGPT (val loss <= {PARITY_VAL_LOSS}): {'PASS' if ok else 'FAIL'} "
              f"({base['val_loss']:.4f})")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
