"""Run configs: one YAML file per fine-tuning run, with LLaMA-Factory's key names where they overlap.

A config is versioned in ``configs/`` and resolved once (``key=value`` overrides applied, types checked);
the resolved form is written next to the adapter so a run can be reproduced from its own folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from secops_ai.config.overrides import ConfigError
from secops_ai.config.overrides import parse_overrides as _parse_overrides
from secops_ai.config.validation import describe_validation_error

__all__ = ["DATASET_SPEC", "ConfigError", "RunConfig", "parse_overrides"]

DATASET_SPEC = re.compile(r"^(?:(?P<provider>[A-Za-z0-9_.-]+)/)?(?P<name>[A-Za-z0-9_.-]+)@(?P<version>\d+)$")




class RunConfig(BaseModel):
    """Everything a fine-tuning run needs. Unknown keys are rejected (typos must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # what to train
    model_name_or_path: str = Field(
        default="smollm2-135m-instruct",
        description="Base model: a name under models/base/ (the bundled one is converted on first use) or a "
        "local Hugging Face folder. Never downloaded.")
    stage: Literal["sft", "dpo", "orpo"] = "sft"
    finetuning_type: Literal["lora", "full"] = "lora"
    provider: Literal["builtin", "llamafactory", "unsloth"] = "builtin"
    dataset: str = Field(description="Dataset version from the store: 'name@N' or 'provider/name@N'.")
    template: str = Field(
        default="default",
        description="'default' uses the tokenizer's own chat template, the one the server renders with.")
    cutoff_len: int = Field(default=1024, ge=16, le=131072, description="Maximum tokens per example (or pack).")
    max_samples: int | None = Field(default=None, ge=1, description="Use only the first N records.")

    # LoRA / QLoRA
    lora_rank: int = Field(default=8, ge=1, le=1024)
    lora_alpha: int | None = Field(default=None, ge=1, description="Defaults to 2 * lora_rank.")
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    lora_target: str = Field(
        default="all", description="'all' (every linear layer but the head) or comma-separated module names.")
    quantization_bit: Literal[4, 8] | None = Field(default=None, description="QLoRA through bitsandbytes; CUDA only.")
    adapter_name_or_path: str | None = Field(
        default=None, description="Continue training this LoRA adapter (a run folder) instead of a new one; "
        "for DPO its initial copy is the reference (evolve trains each iteration from the current adapter).")

    # optimisation
    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0)
    num_train_epochs: float = Field(default=1.0, gt=0.0)
    max_steps: int = Field(default=-1, ge=-1, description="-1: run num_train_epochs; otherwise this many steps.")
    per_device_train_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0, description="Fraction of steps spent warming up.")
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float = Field(default=1.0, gt=0.0)
    seed: int = Field(default=42, ge=0)
    bf16: bool = Field(default=False, description="bfloat16 mixed precision (CUDA or recent CPUs).")
    gradient_checkpointing: bool = False

    # SFT
    packing: bool = Field(default=True, description="Pack examples into cutoff_len rows (no padding).")
    group_by_length: bool = Field(default=False, description="Without packing: batch similar lengths together.")
    train_on_prompt: bool = Field(default=False, description="False: loss on assistant tokens only.")

    # preference stages
    pref_beta: float = Field(default=0.1, gt=0.0, description="DPO beta / ORPO lambda.")
    pref_loss: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"

    # bookkeeping
    logging_steps: int = Field(default=1, ge=1)
    report_to: list[Literal["none", "tensorboard", "mlflow", "wandb", "trackio"]] = Field(
        default_factory=lambda: ["none"],
        description="Experiment trackers TRL logs to (installed separately); tensorboard logs land in the run folder.",
    )
    save_steps: int = Field(default=50, ge=1, description="Checkpoint every N steps (for resuming).")
    run_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$",
                                 description="Prefix of the run id; default '<stage>-<dataset name>'.")
    description: str | None = None

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value: object) -> object:
        return [v.strip() for v in value.split(",")] if isinstance(value, str) else value  # "a,b" like TRL's CLI

    @field_validator("dataset")
    @classmethod
    def _dataset_spec(cls, value: str) -> str:
        if not DATASET_SPEC.match(value):
            raise ValueError(f"{value!r} is not 'name@version' or 'provider/name@version' "
                             "(e.g. starter/security-sft@1)")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if value not in ("default", "chatml", "smollm2"):
            raise ValueError("only 'default' is supported: training renders with the tokenizer's own chat "
                             "template, exactly as the server does ('chatml'/'smollm2' are aliases for it)")
        return value

    @field_validator("lora_target")
    @classmethod
    def _target(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise ValueError("must be 'all' or a comma-separated list of module names")
        return ",".join(parts)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.quantization_bit is not None and self.finetuning_type != "lora":
            raise ValueError("quantization_bit: QLoRA needs finetuning_type: lora")
        if self.max_steps == 0:
            raise ValueError("max_steps: 0 steps would train nothing; use -1 (epochs) or a positive number")
        return self

    # helpers -------------------------------------------------------------------------------------------

    @property
    def effective_lora_alpha(self) -> int:
        return self.lora_alpha or 2 * self.lora_rank

    @property
    def dataset_ref(self) -> str:
        """The dataset spec as the store expects it."""
        return self.dataset

    @property
    def dataset_name(self) -> str:
        m = DATASET_SPEC.match(self.dataset)
        assert m
        return m.group("name")

    def default_run_prefix(self) -> str:
        return self.run_name or f"{self.stage}-{self.dataset_name}"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<config>") -> RunConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, source)) from None

    @classmethod
    def from_yaml(cls, path: Path | str, overrides: list[str] | None = None) -> RunConfig:
        """Read a YAML run config and apply ``key=value`` overrides (values parsed as YAML scalars)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: invalid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of key: value at the top level")
        data.update(parse_overrides(overrides or [], source=str(path)))
        return cls.from_dict(data, source=str(path))


def parse_overrides(overrides: list[str], *, source: str = "<command line>") -> dict[str, Any]:
    """``key=value`` overrides of a run config (the shared grammar of :mod:`secops_ai.config.overrides`)."""
    return _parse_overrides(overrides, allowed=RunConfig.model_fields, what="run config (RunConfig)")
