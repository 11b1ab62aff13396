"""The ``unsloth`` provider: Unsloth's ``FastLanguageModel`` (fused kernels, 4-bit) on a CUDA GPU.

The recipes, run folder and registry are the builtin ones; only loading the model and attaching LoRA differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secops_ai.training.config import RunConfig


def check_available() -> None:
    import importlib.util

    import torch

    from secops_ai.training.runs import TrainingError

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (Unsloth's kernels are GPU-only; this machine has none)")
    if importlib.util.find_spec("unsloth") is None:
        missing.append("the `unsloth` package (pip install unsloth, or build infra/unsloth.Dockerfile)")
    if missing:
        raise TrainingError("provider unsloth needs " + " and ".join(missing) +
                            ". Use provider: builtin to train on this machine.")


def load(config: RunConfig, model_dir: Path) -> tuple[Any, Any]:
    """Base model + LoRA through FastLanguageModel, returned as a peft model and its tokenizer."""
    from unsloth import FastLanguageModel  # type: ignore[import-not-found]

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_dir), max_seq_length=config.cutoff_len, load_in_4bit=config.quantization_bit == 4,
        load_in_8bit=config.quantization_bit == 8, dtype=None, local_files_only=True)
    targets = (["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
               if config.lora_target == "all" else config.lora_target.split(","))
    model = FastLanguageModel.get_peft_model(
        model, r=config.lora_rank, lora_alpha=config.effective_lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets, bias="none", use_gradient_checkpointing="unsloth" if config.gradient_checkpointing
        else False, random_state=config.seed)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
