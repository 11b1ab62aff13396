"""Fine-tuning: run configs, TRL recipes (SFT, DPO, ORPO), providers and distributed launch."""

from secops_ai.training.config import ConfigError, RunConfig
from secops_ai.training.runner import resume, train
from secops_ai.training.runs import RunResult, TrainingError

__all__ = ["ConfigError", "RunConfig", "RunResult", "TrainingError", "resume", "train"]
