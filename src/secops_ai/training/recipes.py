"""Recipes: build the TRL trainer for one stage (sft, dpo, orpo) from a :class:`RunConfig`.

Each builder takes an already-loaded base model and tokenizer and returns a ``transformers.Trainer``;
the runner owns everything around it (run folder, checkpoints, registry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secops_ai.training.config import RunConfig


def lora_config(config: RunConfig, model: Any = None):
    """peft's LoRA config for the run; ``lora_target: all`` means every linear layer but the LM head.

    ``None`` for full fine-tuning, or when the model already carries its LoRA layers (the unsloth provider).
    """
    from peft import LoraConfig, PeftModel

    if config.finetuning_type != "lora" or isinstance(model, PeftModel):
        return None

    targets: str | list[str] = ("all-linear" if config.lora_target == "all"
                                else config.lora_target.split(","))
    return LoraConfig(r=config.lora_rank, lora_alpha=config.effective_lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


def common_args(config: RunConfig, output_dir: Path, *, cuda: bool, distributed: bool) -> dict[str, Any]:
    """TrainingArguments shared by every stage."""
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        # CPU runs are bit-for-bit reproducible (same config + data + seed => same adapter hash).
        full_determinism=not cuda,
        bf16=config.bf16,
        activation_checkpointing=config.gradient_checkpointing,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        report_to=config.report_to,
        disable_tqdm=True,
        use_cpu=not cuda,
        ddp_backend=("gloo" if not cuda else "nccl") if distributed else None,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=True,
    )


def build_sft(config: RunConfig, model: Any, tokenizer: Any, records: list[dict], output_dir: Path, *,
              dataset_ref: str, cuda: bool, distributed: bool, callbacks: list) -> Any:
    """SFT with the loss on assistant tokens only; packed rows (padding-free) or length-grouped batches."""
    from trl import SFTConfig, SFTTrainer

    from secops_ai.training.data import build_sft_dataset

    dataset = build_sft_dataset(tokenizer, records, train_on_prompt=config.train_on_prompt,
                                cutoff_len=config.cutoff_len, dataset_ref=dataset_ref)
    args = SFTConfig(
        **common_args(config, output_dir, cuda=cuda, distributed=distributed),
        max_length=config.cutoff_len,
        packing=config.packing,
        packing_strategy="bfd",  # best-fit decreasing; rows are attended per example (position ids reset)
        train_sampling_strategy="group_by_length" if (config.group_by_length and not config.packing) else "random",
        dataset_num_proc=None,
    )
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=lora_config(config, model),
                      callbacks=callbacks)


def build_dpo(config: RunConfig, model: Any, tokenizer: Any, records: list[dict], output_dir: Path, *,
              dataset_ref: str, cuda: bool, distributed: bool, callbacks: list) -> Any:
    """DPO. With LoRA the reference is the base itself (adapter disabled): no second copy of the weights."""
    from trl import DPOConfig, DPOTrainer

    from secops_ai.training.data import build_preference_dataset

    dataset = build_preference_dataset(records, dataset_ref=dataset_ref)
    args = DPOConfig(**common_args(config, output_dir, cuda=cuda, distributed=distributed),
                     beta=config.pref_beta, loss_type=[config.pref_loss], max_length=config.cutoff_len,
                     dataset_num_proc=None)
    # ref_model=None + a peft_config (not an already-wrapped PeftModel, for which TRL copies the adapter as a
    # "ref" adapter) makes TRL compute reference log-probs with the adapter disabled. Full fine-tuning needs
    # a frozen copy, which TRL creates itself.
    return DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=lora_config(config, model),
                      callbacks=callbacks)


def build_orpo(config: RunConfig, model: Any, tokenizer: Any, records: list[dict], output_dir: Path, *,
               dataset_ref: str, cuda: bool, distributed: bool, callbacks: list) -> Any:
    """ORPO: SFT and an odds-ratio preference term in one loss, no reference model at all."""
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from secops_ai.training.data import build_preference_dataset

    dataset = build_preference_dataset(records, dataset_ref=dataset_ref)
    args = ORPOConfig(**common_args(config, output_dir, cuda=cuda, distributed=distributed),
                      beta=config.pref_beta, max_length=config.cutoff_len)
    class CountingORPOTrainer(ORPOTrainer):
        """ORPO batches hold prompt/chosen/rejected ids but no ``input_ids``, so transformers counted 0 tokens
        seen (and tokens/s logged 0.0): count the non-padding tokens of every sequence in the batch."""

        def _track_num_input_tokens(self, inputs):
            import torch

            masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and torch.is_tensor(v)]
            if "input_ids" in inputs or not masks or self.args.include_num_input_tokens_seen == "no":
                return super()._track_num_input_tokens(inputs)
            seen = torch.as_tensor(sum(int(m.sum()) for m in masks), device=self.args.device, dtype=torch.int64)
            self.state.num_input_tokens_seen += self.accelerator.gather(seen).sum().item()

    return CountingORPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                               peft_config=lora_config(config, model),
                               callbacks=callbacks)


BUILDERS = {"sft": build_sft, "dpo": build_dpo, "orpo": build_orpo}
