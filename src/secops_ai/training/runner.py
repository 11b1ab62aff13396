"""Run one fine-tuning job from a :class:`RunConfig`, start to finish.

The flow, top to bottom: resolve the base model and dataset version -> pick a run id -> train in a work
folder under ``storage/training/<run-id>/`` (checkpoints there, so an interrupted run resumes) -> assemble
``models/<provider>/<run-id>/`` in a temporary folder and rename it into place. The registry picks a run up
from its finished folder (``run.json``), so a run that fails or is interrupted registers nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops_ai.config import Settings, get_settings
from secops_ai.config.atomic import atomic_dir, atomic_write_text
from secops_ai.observability.tracing import set_attributes, stage_span
from secops_ai.training.config import RunConfig
from secops_ai.training.runs import (
    RunResult,
    TrainingError,
    library_versions,
    new_run_id,
    resolve_model_path,
    work_root,
)

log = logging.getLogger(__name__)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _agree_on_run_id(run_id: str, *, cuda: bool) -> str:
    """Under torchrun/accelerate every rank must write to the same run; rank 0's id wins."""
    if _world_size() == 1:
        return run_id
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    PartialState(cpu=not cuda, backend=None if cuda else "gloo")
    box = [run_id]
    broadcast_object_list(box, from_process=0)
    return box[0]


def check_hardware(config: RunConfig) -> bool:
    """Return whether CUDA is used; refuse what this machine cannot do before anything is written."""
    import torch

    cuda = torch.cuda.is_available()
    if config.quantization_bit is not None:
        if not cuda:
            raise TrainingError(
                f"quantization_bit={config.quantization_bit}: QLoRA loads the base in {config.quantization_bit}-bit "
                "through bitsandbytes, which needs a CUDA GPU, and this machine has none. Remove quantization_bit "
                "to train a plain LoRA on the CPU, or run on a GPU machine (pip install 'secops-ai[cuda]').")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise TrainingError("quantization_bit is set but bitsandbytes is not installed: "
                                "pip install 'secops-ai[cuda]'") from exc
    if config.bf16 and not cuda and not torch.cpu._is_avx512_bf16_supported():  # type: ignore[attr-defined]
        raise TrainingError("bf16: this CPU has no bfloat16 support; set bf16: false")
    return cuda


def load_base(config: RunConfig, model_dir: Path, *, cuda: bool):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(f"{model_dir}: the tokenizer has no chat template, so conversations cannot be rendered "
                            "the way the server renders them")
    kwargs: dict[str, Any] = {"local_files_only": True,
                              "dtype": torch.bfloat16 if (cuda and config.bf16) else torch.float32}
    if config.quantization_bit is not None:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
            if config.quantization_bit == 4 else BitsAndBytesConfig(load_in_8bit=True))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    if config.quantization_bit is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    return model, tokenizer


def last_checkpoint(work_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpts = work_dir / "checkpoints"
    return Path(found) if ckpts.is_dir() and (found := get_last_checkpoint(str(ckpts))) else None


def interrupt_on_sigterm() -> Callable[[], Any]:
    """Treat SIGTERM (docker stop, kill, a scheduler's preemption) like Ctrl-C: mark the run interrupted."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def train(config: RunConfig, settings: Settings | None = None, *, run_id: str | None = None, progress: bool = True,
          callbacks: list | None = None) -> RunResult:
    """Fine-tune according to ``config``; returns the finished run.

    Passing the ``run_id`` of an interrupted run resumes it from its last checkpoint (the config must be the
    one it started with). Other providers (llamafactory, unsloth) are dispatched from here too.
    The run is one trace span (``train <stage>``) with a child span per stage and the final metrics.
    """
    with stage_span(f"train {config.stage}", {"secops.train.stage": config.stage, "secops.train.provider":
                                              config.provider, "secops.train.dataset": config.dataset,
                                              "secops.train.seed": config.seed}) as span:
        result = _train(config, settings, run_id=run_id, progress=progress, callbacks=callbacks)
        set_attributes(span, {"secops.run": result.run_name, **{
            f"secops.metrics.{k}": v for k, v in result.metrics.items() if isinstance(v, int | float | str)}})
        return result


def _train(config: RunConfig, settings: Settings | None, *, run_id: str | None, progress: bool,
           callbacks: list | None) -> RunResult:
    settings = settings or get_settings()
    settings.workspace.ensure()
    from secops_ai.training.providers import external_runner

    if (engine := external_runner(config)) is not None:
        return engine(config, settings, run_id=run_id, progress=progress)
    if config.provider == "unsloth":
        from secops_ai.training.providers import unsloth

        unsloth.check_available()
    cuda = check_hardware(config)

    from secops_ai.training.data import load_dataset_version

    # the dataset first: checking it is cheap, while the bundled base may need a one-time conversion
    records, data_info = load_dataset_version(settings.workspace, config.dataset, stage=config.stage)
    model_dir = resolve_model_path(config, settings)
    if config.max_samples:
        records = records[: config.max_samples]

    run = _open_run(config, settings, run_id, cuda=cuda)
    trainer, tokenizer = _build_trainer(config, run, model_dir, records, data_info.ref, cuda=cuda,
                                        progress=progress, callbacks=callbacks)
    started = time.time()
    metrics = _fit(trainer, run)
    if _is_main():
        _finish_run(config, run, trainer, tokenizer, model_dir=model_dir, data_info=data_info, metrics=metrics,
                    started=started)
    if _world_size() > 1:
        trainer.accelerator.wait_for_everyone()
    return RunResult(run_name=run.name, run_id=run.run_id, provider=config.provider, run_dir=run.final_dir,
                     metrics=metrics)


@dataclass
class _Run:
    """Where one run lives: its work folder (checkpoints, status) and the finished folder under models/."""

    run_id: str
    name: str  # "<provider>/<run-id>"
    work_dir: Path
    final_dir: Path
    resuming: bool

    def write_status(self, status: str, **extra: Any) -> None:
        atomic_write_text(self.work_dir / "status.json", json.dumps({"status": status, "run_name": self.name,
                                                                     **extra}))


def _open_run(config: RunConfig, settings: Settings, run_id: str | None, *, cuda: bool) -> _Run:
    """Pick (or agree on) the run id, refuse a finished one or a resume with another config, mark it running."""
    resuming = run_id is not None and (work_root(settings) / run_id).is_dir()
    run_id = _agree_on_run_id(run_id or new_run_id(config), cuda=cuda)
    run = _Run(run_id=run_id, name=f"{config.provider}/{run_id}", work_dir=work_root(settings) / run_id,
               final_dir=settings.workspace.models / config.provider / run_id, resuming=resuming)
    if run.final_dir.exists():
        raise TrainingError(f"{run.name} already finished ({run.final_dir}); a new run needs a new id")
    saved = run.work_dir / "config.yaml"
    if resuming and saved.is_file():
        before = RunConfig.from_yaml(saved)
        if before != config:
            diff = sorted(k for k in RunConfig.model_fields if getattr(before, k) != getattr(config, k))
            raise TrainingError(f"cannot resume {run_id}: the config differs from the one it started with "
                                f"({', '.join(diff)}); resume with `secops-ai train resume {run_id}`")
    if _is_main():
        run.work_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, config.to_yaml())
        run.write_status("running", pid=os.getpid(), started=time.time())
    return run


def _build_trainer(config: RunConfig, run: _Run, model_dir: Path, records: list, dataset_ref: str, *, cuda: bool,
                   progress: bool, callbacks: list | None) -> tuple[Any, Any]:
    """The base model (with LoRA or a continued adapter) in the stage's TRL trainer, logging to metrics.jsonl."""
    from transformers import set_seed

    from secops_ai.training.callbacks import MetricsLogger, RichProgress
    from secops_ai.training.recipes import BUILDERS

    set_seed(config.seed)
    # peft/TRL still call a transformers method deprecated in 5.x; the warning is noise for our users.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if config.provider == "unsloth":
        from secops_ai.training.providers import unsloth

        model, tokenizer = unsloth.load(config, model_dir)  # already carries the LoRA layers
    else:
        model, tokenizer = load_base(config, model_dir, cuda=cuda)
        if config.adapter_name_or_path:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, config.adapter_name_or_path, is_trainable=True)
    cbs = [MetricsLogger(run.work_dir / "metrics.jsonl"), *(callbacks or [])]
    if progress:
        cbs.append(RichProgress(f"{config.stage} {run.run_id}"))
    trainer = BUILDERS[config.stage](config, model, tokenizer, records, run.work_dir / "checkpoints",
                                     dataset_ref=dataset_ref, cuda=cuda, distributed=_world_size() > 1,
                                     callbacks=cbs)
    if progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # the rich bar replaces the printed log dicts
    return trainer, tokenizer


def _fit(trainer: Any, run: _Run) -> dict[str, Any]:
    """Train (from the last checkpoint when resuming); an interruption or crash is recorded, then re-raised."""
    resume_from = last_checkpoint(run.work_dir) if run.resuming else None
    if resume_from:
        log.info("Resuming %s from %s", run.name, resume_from.name)
    restore = interrupt_on_sigterm()
    try:
        with stage_span("train.fit", {"secops.train.resumed_from": resume_from.name if resume_from else None}):
            output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except BaseException as exc:
        if _is_main():
            run.write_status("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                             error=str(exc)[:2000], last_checkpoint=str(last_checkpoint(run.work_dir) or ""),
                             ts=time.time())
        raise
    finally:
        restore()
    metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in output.metrics.items()}
    metrics["global_step"] = trainer.state.global_step
    metrics["tokens_seen"] = trainer.state.num_input_tokens_seen
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    if losses:
        metrics["final_loss"] = round(losses[-1], 6)
        metrics["first_loss"] = round(losses[0], 6)
    return metrics


def _finish_run(config: RunConfig, run: _Run, trainer: Any, tokenizer: Any, *, model_dir: Path, data_info: Any,
                metrics: dict[str, Any], started: float) -> None:
    """Assemble models/<provider>/<run-id>/ in a temporary folder and rename it into place; drop checkpoints."""
    from secops_ai.training.output import write_run_folder

    with atomic_dir(run.final_dir) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        # model_card.md is the card; training_args.bin is a pickle nobody should have to unpickle to serve.
        for extra in ("README.md", "training_args.bin"):
            (tmp / extra).unlink(missing_ok=True)
        shutil.rmtree(tmp / "ref", ignore_errors=True)  # TRL's frozen copy of a continued adapter
        if (run.work_dir / "checkpoints" / "runs").is_dir():  # report_to: tensorboard writes here
            shutil.copytree(run.work_dir / "checkpoints" / "runs", tmp / "tensorboard")
        write_run_folder(tmp, config=config, run_name=run.name, model_dir=model_dir, data_info=data_info,
                         metrics=metrics, work_dir=run.work_dir, started=started,
                         versions=library_versions(), world_size=_world_size())
    run.write_status("completed", ts=time.time())
    # Checkpoints are only for resuming; the finished run lives in models/.
    shutil.rmtree(run.work_dir / "checkpoints", ignore_errors=True)


def resume(run_id: str, settings: Settings | None = None, *, progress: bool = True) -> RunResult:
    """Continue an interrupted run from its last checkpoint, with the config it was started with."""
    settings = settings or get_settings()
    saved = work_root(settings) / run_id / "config.yaml"
    if not saved.is_file():
        raise TrainingError(f"no interrupted run {run_id!r} (looked for {saved})")
    return train(RunConfig.from_yaml(saved), settings, run_id=run_id, progress=progress)
