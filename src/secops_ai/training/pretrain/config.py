"""Run configuration for pretraining: YAML files in ``configs/pretrain/`` validated by pydantic.

One :class:`PretrainConfig` configures one run of :func:`secops_ai.training.pretrain.train.train`; its
``model`` section is the :class:`GPTConfig` that builds :class:`secops_ai.training.pretrain.model.GPT`.
Unknown keys are rejected (a typo must not silently train the default), and ``key=value`` overrides
(``max_iters=50``, ``model.rope=true``) are parsed as YAML scalars and validated the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from secops_ai.config.overrides import ConfigError, merge
from secops_ai.config.overrides import parse_overrides as _parse_overrides
from secops_ai.config.validation import describe_validation_error


class GPTConfig(BaseModel):
    """Shape of the GPT. The three ``experiments`` flags swap in the blocks of ``pretrain/blocks.py``."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(default=0, ge=0, description="Set from the corpus' meta.json when 0.")
    block_size: int = Field(default=256, ge=1, description="Context length in tokens.")
    n_layer: int = Field(default=6, ge=1)
    n_head: int = Field(default=6, ge=1)
    n_embd: int = Field(default=384, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    bias: bool = Field(default=False, description="Biases in Linear and LayerNorm layers (GPT-2 has them).")
    # experiments (off by default): each makes the model no longer GPT-2 compatible for export
    rope: bool = Field(default=False, description="Rotary position embeddings instead of learned positions.")
    swiglu: bool = Field(default=False, description="Gated SiLU MLP instead of the GELU MLP.")
    n_kv_head: int | None = Field(
        default=None, ge=1, description="Grouped-query attention: key/value heads shared by n_head/n_kv_head queries."
    )

    @model_validator(mode="after")
    def _check_heads(self) -> GPTConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.rope and (self.n_embd // self.n_head) % 2:
            raise ValueError("rope needs an even head size (n_embd / n_head)")
        if self.n_kv_head is not None and self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.n_kv_head})")
        return self

    @property
    def experiments(self) -> list[str]:
        """Names of the experiment flags switched on (empty for a plain GPT-2 architecture)."""
        on = []
        if self.rope:
            on.append("rope")
        if self.swiglu:
            on.append("swiglu")
        if self.n_kv_head is not None and self.n_kv_head != self.n_head:
            on.append(f"gqa(n_kv_head={self.n_kv_head})")
        return on

    @property
    def gpt2_compatible(self) -> bool:
        return not self.experiments


class PretrainConfig(BaseModel):
    """Everything one pretraining run needs; defaults follow nanoGPT's ``train.py``."""

    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(description="Corpus folder under data/nanogpt/, e.g. 'security-logs-v1'.")
    run_id: str | None = Field(default=None, description="Run folder name; default '<corpus>-<UTC time>'.")
    seed: int = 1337
    model: GPTConfig = Field(default_factory=GPTConfig)
    # optimisation
    batch_size: int = Field(default=12, ge=1, description="Sequences per micro-batch (per process under DDP).")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Total over all DDP processes.")
    max_iters: int = Field(default=2000, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    min_lr: float = Field(default=1e-4, ge=0)
    warmup_iters: int = Field(default=100, ge=0)
    lr_decay_iters: int = Field(default=2000, ge=1)
    decay_lr: bool = True
    weight_decay: float = Field(default=0.1, ge=0)
    beta1: float = Field(default=0.9, gt=0, lt=1)
    beta2: float = Field(default=0.99, gt=0, lt=1)
    grad_clip: float = Field(default=1.0, ge=0, description="0 disables clipping.")
    # evaluation, logging, checkpoints
    eval_interval: int = Field(default=250, ge=1, description="Evaluate and checkpoint every this many iterations.")
    eval_iters: int = Field(default=20, ge=1, description="Batches averaged per split at each evaluation.")
    log_interval: int = Field(default=10, ge=1)
    # system
    device: str = Field(default="auto", description="'auto', 'cpu' or 'cuda[:N]'.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    compile: bool = Field(default=False, description="torch.compile the model (needs a C++ toolchain on CPU).")
    threads: int | None = Field(default=None, ge=1, description="torch.set_num_threads; default torch's choice.")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["max_iters=50", "model.rope=true"]`` → nested dict (the shared grammar of
    :mod:`secops_ai.config.overrides`)."""
    return _parse_overrides(overrides, allowed=PretrainConfig.model_fields, what="pretrain config")


def validate_config(data: dict[str, Any], source: str = "config") -> PretrainConfig:
    try:
        return PretrainConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, source)) from None


def load_config(path: Path | None, overrides: list[str] | None = None) -> PretrainConfig:
    """Read a YAML run config (or start from defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys at the top level")
        data = loaded or {}
    if overrides:
        data = merge(data, parse_overrides(overrides))
        source = f"{source} (overrides: {' '.join(overrides)})" if path is not None else source
    return validate_config(data, source)


def dump_config(cfg: PretrainConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
