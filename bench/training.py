"""Training benchmark: our SFT/DPO recipes vs TRL's defaults, same model, same LoRA config, same run.

    .venv/bin/python bench/training.py [--examples 192] [--dpo-steps 6] [--device cpu|cuda|auto]
                                       [--model <base-model folder>]

Without ``--model`` a random 4-layer Llama is built; a folder with random-init weights of a real shape (e.g.
SmolLM2-1.7B's) stands in on a GPU box. Every variant runs on the same ``--device``.

* SFT: non-pad tokens per second over one epoch of a length-skewed chat set (most answers short, a few very
  long). Ours packs examples best-fit into cutoff_len rows, padding-free; TRL's SFTTrainer defaults pad
  every batch to its longest example.
* DPO: seconds per step and peak memory (RSS). Ours uses the base with the adapter disabled as the
  reference; the baseline is DPOTrainer with the usual explicit ``ref_model`` (a second copy of the weights).

Each variant runs in its own process so peak RSS is its own. Prints ratios (ours / baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LORA = dict(lora_rank=8, lora_target="q_proj,k_proj,v_proj,o_proj")
_PHRASE = ("the attacker injects a payload into the query string so the server runs an unintended command while "
           "the patch validates input escapes output rotates keys and logs every denied request")
WORDS = _PHRASE.split(" ")


def make_model(root: Path) -> Path:
    """A random 4-layer Llama with SmolLM2's tokenizer and chat template (no download)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from secops_ai.inference.loader import bundled_gguf_path

    gguf = bundled_gguf_path()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    path = root / "bench-llama"
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_data(root: Path, n: int) -> tuple[str, str]:
    """Length-skewed SFT set (85% short answers, 15% long ones) and a small preference set."""
    from secops_ai.config import Workspace
    from secops_ai.data.store import DatasetStore

    rng = random.Random(0)
    store = DatasetStore(Workspace(root / "home").ensure())
    sft = []
    for _ in range(n):
        long = rng.random() < 0.15
        sft.append({"messages": [{"role": "user", "content": text(rng, rng.randint(8, 20))},
                                 {"role": "assistant", "content": text(rng, rng.randint(250, 380) if long
                                                                       else rng.randint(5, 30))}]})
    dpo = [{"prompt": text(rng, rng.randint(10, 30)), "chosen": text(rng, rng.randint(20, 60)),
            "rejected": text(rng, rng.randint(20, 60))} for _ in range(64)]
    return (store.create("bench", "skewed-sft", "chat", sft).ref,
            store.create("bench", "pairs", "preference", dpo).ref)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, root: Path, model_dir: Path, dataset: str, steps: int, device: str = "cpu") -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from secops_ai.config import Workspace
    from secops_ai.data.store import DatasetStore
    from secops_ai.training.config import RunConfig
    from secops_ai.training.recipes import build_dpo, build_sft, lora_config

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cuda = device.startswith("cuda")
    records = list(DatasetStore(Workspace(root / "home")).get(dataset).iter_records())
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    out = root / f"out-{kind}"
    stage = "sft" if kind.startswith("sft") else "dpo"
    config = RunConfig.from_dict(dict(model_name_or_path=str(model_dir), dataset=dataset, stage=stage, cutoff_len=512,
                                      per_device_train_batch_size=8 if stage == "sft" else 4, learning_rate=1e-4,
                                      num_train_epochs=1, max_steps=-1 if stage == "sft" else steps, seed=0,
                                      save_steps=10_000, **LORA))
    if kind == "sft-ours":
        trainer = build_sft(config, model, tok, records, out, dataset_ref=dataset, cuda=cuda, distributed=False,
                            callbacks=[])
    elif kind == "sft-trl":
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(output_dir=str(out), per_device_train_batch_size=8, learning_rate=1e-4, num_train_epochs=1,
                         max_length=512, report_to="none", disable_tqdm=True, use_cpu=not cuda, save_strategy="no",
                         include_num_input_tokens_seen="non_padding", logging_steps=1000, seed=0)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tok,
                             peft_config=lora_config(config))
    elif kind == "dpo-ours":
        trainer = build_dpo(config, model, tok, records, out, dataset_ref=dataset, cuda=cuda, distributed=False,
                            callbacks=[])
    elif kind == "dpo-trl":
        from datasets import Dataset
        from peft import get_peft_model
        from trl import DPOConfig, DPOTrainer

        from secops_ai.training.data import to_preference

        ref = AutoModelForCausalLM.from_pretrained(str(model_dir))  # the usual explicit reference copy
        args = DPOConfig(output_dir=str(out), per_device_train_batch_size=4, learning_rate=1e-4, max_steps=steps,
                         max_length=512, report_to="none", disable_tqdm=True, use_cpu=not cuda, save_strategy="no",
                         logging_steps=1000, seed=0)
        data = Dataset.from_list([to_preference(r, where="bench") for r in records])
        trainer = DPOTrainer(model=get_peft_model(model, lora_config(config)), ref_model=ref, args=args,
                             train_dataset=data, processing_class=tok)
    else:
        raise SystemExit(f"unknown worker {kind}")
    t0 = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - t0
    return {"kind": kind, "seconds": elapsed, "steps": trainer.state.global_step,
            "tokens": trainer.state.num_input_tokens_seen, "peak_rss_mb": peak_rss_mb()}


def run_worker(kind: str, root: Path, model_dir: Path, dataset: str, steps: int, device: str = "cpu") -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--root", str(root), "--model", str(model_dir),
           "--dataset", dataset, "--dpo-steps", str(steps), "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=192)
    parser.add_argument("--dpo-steps", type=int, default=6)
    parser.add_argument("--worker")
    parser.add_argument("--root")
    parser.add_argument("--model", help="a base-model folder (default: a random 4-layer Llama built here)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="where every variant trains (auto: cuda when available)")
    parser.add_argument("--dataset")
    args = parser.parse_args()
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.root), Path(args.model), args.dataset, args.dpo_steps,
                                args.device)))
        return

    root = Path(tempfile.mkdtemp(prefix="bench-training-"))
    model_dir = Path(args.model).resolve() if args.model else make_model(root)
    sft_ref, dpo_ref = make_data(root, args.examples)
    described = model_dir.name if args.model else "random Llama 4x256 (SmolLM2 tokenizer)"
    print(f"model: {described}; LoRA r=8 on q,k,v,o; {args.examples} skewed chats; device {args.device}; "
          f"cpu threads={os.cpu_count()}")
    sft_ours = run_worker("sft-ours", root, model_dir, sft_ref, 0, args.device)
    sft_trl = run_worker("sft-trl", root, model_dir, sft_ref, 0, args.device)
    dpo_ours = run_worker("dpo-ours", root, model_dir, dpo_ref, args.dpo_steps, args.device)
    dpo_trl = run_worker("dpo-trl", root, model_dir, dpo_ref, args.dpo_steps, args.device)

    tps_ours = sft_ours["tokens"] / sft_ours["seconds"]
    tps_trl = sft_trl["tokens"] / sft_trl["seconds"]
    print(f"SFT  ours (packed, padding-free): {tps_ours:8.0f} non-pad tok/s  ({sft_ours['tokens']} tokens, "
          f"{sft_ours['steps']} steps, {sft_ours['seconds']:.1f} s)")
    print(f"SFT  TRL SFTTrainer defaults   : {tps_trl:8.0f} non-pad tok/s  ({sft_trl['tokens']} tokens, "
          f"{sft_trl['steps']} steps, {sft_trl['seconds']:.1f} s)")
    print(f"SFT  speed-up                  : {tps_ours / tps_trl:.2f}x (target >= 1.5x)")
    step_ours = dpo_ours["seconds"] / dpo_ours["steps"]
    step_trl = dpo_trl["seconds"] / dpo_trl["steps"]
    print(f"DPO  ours (ref = adapter off)  : {step_ours:.2f} s/step, peak RSS {dpo_ours['peak_rss_mb']:.0f} MB")
    print(f"DPO  TRL + ref_model copy      : {step_trl:.2f} s/step, peak RSS {dpo_trl['peak_rss_mb']:.0f} MB")
    print(f"DPO  step time ratio ours/TRL  : {step_ours / step_trl:.2f}x; peak memory ratio "
          f"{dpo_ours['peak_rss_mb'] / dpo_trl['peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
