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
import sys
import tempfile
from pathlib import Path

from secops_ai.config import Workspace
from secops_ai.training.pretrain.config import validate_config
from secops_ai.training.pretrain.corpus import CorpusSpec, build_corpus
from secops_ai.training.pretrain.train import train

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"
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
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        ws = Workspace(tmp).ensure()
        corpus = build_corpus(ws.nanogpt_data, CorpusSpec(name="shakespeare-char", texts=[args.text], obfuscate=False))
        for name in args.variants:
            overrides = dict(PARITY, corpus=corpus.name, run_id=name, max_iters=args.iters,
                             lr_decay_iters=args.iters, eval_interval=args.iters)
            overrides["model"] = {**PARITY["model"], **VARIANTS[name]}
            cfg = validate_config(overrides, f"bench variant {name}")
            r = train(cfg, ws, progress=sys.stderr.isatty())
            from secops_ai.training.pretrain.train import load_checkpoint

            params = load_checkpoint(r.run_dir)[0].num_params()
            results.append({"variant": name, "iters": r.iters, "ms_per_iter": r.ms_per_iter,
                            "tokens_per_s": r.tokens_per_s, "val_loss": r.val_loss, "train_loss": r.train_loss,
                            "params": params})
            print(f"{name}: {r.ms_per_iter:.1f} ms/iter, {r.tokens_per_s:.0f} tokens/s, val loss {r.val_loss:.4f}",
                  flush=True)

    base = next((r for r in results if r["variant"] == "baseline"), results[0])
    print(f"\n{'variant':<10} {'params':>8} {'ms/iter':>8} {'tokens/s':>9} {'val loss':>9} {'speed vs base':>14}")
    for r in results:
        ratio = base["ms_per_iter"] / r["ms_per_iter"]
        print(f"{r['variant']:<10} {r['params']:>8} {r['ms_per_iter']:>8.1f} {r['tokens_per_s']:>9.0f} "
              f"{r['val_loss']:>9.4f} {ratio:>13.2f}x")
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
