"""The ``llamafactory`` provider: write the run as a LLaMA-Factory job and run ``llamafactory-cli train``.

The job folder holds the dataset in LLaMA-Factory's sharegpt/alpaca layout, its ``dataset_info.json`` and
the train YAML (same key names as our run configs). When the CLI is not installed the job is still written
and the error says how to run it (``infra/llamafactory.Dockerfile`` packages it for GPU machines).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from secops_ai.config import Settings
from secops_ai.training.config import RunConfig

SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "system_tag": "system", "observation_tag": "tool"}


def lf_template(config: RunConfig, model_dir: Path) -> str:
    """LLaMA-Factory renders with its own template registry; pick the one matching the tokenizer's template."""
    if config.template != "default":
        return config.template
    return "smollm2" if "smollm" in model_dir.name.lower() else "chatml"


def _to_lf(record: dict[str, Any], kind: str) -> dict[str, Any]:
    if kind == "preference":
        def conv(value: Any, role: str) -> list[dict]:
            return value if isinstance(value, list) else [{"role": role, "content": str(value)}]
        prompt = conv(record["prompt"], "user")
        return {"messages": prompt, "chosen": conv(record["chosen"], "assistant")[-1],
                "rejected": conv(record["rejected"], "assistant")[-1]}
    if "text" in record and "messages" not in record:
        return {"text": record["text"]}
    from secops_ai.training.data import to_messages

    messages = to_messages(record, where="record")
    system = [m["content"] for m in messages if m["role"] == "system"]
    out: dict[str, Any] = {"messages": [m for m in messages if m["role"] != "system"]}
    if system:
        out["system"] = system[0]
    return out


def write_job(config: RunConfig, settings: Settings, job_dir: Path, *, output_dir: Path) -> Path:
    """Write dataset file, ``dataset_info.json`` and ``train.yaml`` into ``job_dir``; return the YAML's path."""
    from secops_ai.data.store import DatasetStore
    from secops_ai.training.data import resolve_dataset_ref
    from secops_ai.training.runs import resolve_model_path

    store = DatasetStore(settings.workspace)
    dataset = store.get(resolve_dataset_ref(store, config.dataset))
    kind = str(getattr(dataset.manifest.kind, "value", dataset.manifest.kind))
    model_dir = resolve_model_path(config, settings)
    job_dir.mkdir(parents=True, exist_ok=True)
    name = dataset.manifest.name
    data_file = job_dir / f"{name}.jsonl"
    with data_file.open("w") as fh:
        for i, record in enumerate(dataset.iter_records()):
            if config.max_samples and i >= config.max_samples:
                break
            fh.write(json.dumps(_to_lf(record, kind)) + "\n")
    entry: dict[str, Any] = {"file_name": data_file.name}
    if kind == "text":
        entry["columns"] = {"prompt": "text"}
    else:
        entry.update(formatting="sharegpt", columns={"messages": "messages", "system": "system"},
                     tags=SHAREGPT_TAGS)
        if kind == "preference":
            entry.update(ranking=True, columns={"messages": "messages", "chosen": "chosen", "rejected": "rejected"})
    (job_dir / "dataset_info.json").write_text(json.dumps({name: entry}, indent=2))
    stage = "pt" if kind == "text" else config.stage
    train = {
        "model_name_or_path": str(model_dir), "stage": stage, "do_train": True,
        "finetuning_type": config.finetuning_type, "lora_rank": config.lora_rank,
        "lora_alpha": config.effective_lora_alpha, "lora_dropout": config.lora_dropout,
        "lora_target": config.lora_target, "dataset": name, "dataset_dir": str(job_dir),
        "template": lf_template(config, model_dir), "cutoff_len": config.cutoff_len,
        "output_dir": str(output_dir), "overwrite_output_dir": False, "logging_steps": config.logging_steps,
        "save_steps": config.save_steps, "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps, "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_train_epochs, "max_steps": config.max_steps,
        "lr_scheduler_type": config.lr_scheduler_type, "warmup_ratio": config.warmup_ratio,
        "seed": config.seed, "bf16": config.bf16, "packing": config.packing and stage == "sft",
        "train_on_prompt": config.train_on_prompt, "report_to": "none", "plot_loss": True,
    }
    if config.quantization_bit is not None:
        train["quantization_bit"] = config.quantization_bit
    if config.stage in ("dpo", "orpo"):
        train["pref_beta"] = config.pref_beta
        if config.stage == "dpo":
            train["pref_loss"] = config.pref_loss
    if config.max_samples:
        train["max_samples"] = config.max_samples
    path = job_dir / "train.yaml"
    path.write_text(yaml.safe_dump(train, sort_keys=False))
    return path


def run(config: RunConfig, settings: Settings, *, run_id: str | None = None):
    from secops_ai.config.atomic import atomic_dir
    from secops_ai.training.data import load_dataset_version
    from secops_ai.training.runs import (
        RunResult,
        TrainingError,
        library_versions,
        new_run_id,
        resolve_model_path,
        work_root,
    )

    run_id = run_id or new_run_id(config)
    work_dir = work_root(settings) / run_id
    output = work_dir / "output"
    job = write_job(config, settings, work_dir / "llamafactory", output_dir=output)
    cli = shutil.which("llamafactory-cli")
    if cli is None:
        raise TrainingError(
            f"provider llamafactory: `llamafactory-cli` is not installed here. The job is written to {job.parent} "
            f"(train.yaml + dataset_info.json); run `llamafactory-cli train {job}` on a machine with LLaMA-Factory "
            "(pip install llamafactory, or build infra/llamafactory.Dockerfile), or use provider: builtin.")
    started = time.time()
    proc = subprocess.run([cli, "train", str(job)], check=False)
    if proc.returncode != 0:
        raise TrainingError(f"llamafactory-cli train failed with exit code {proc.returncode}; nothing registered "
                            f"(job: {job})")
    from secops_ai.training.output import write_run_folder

    _, data_info = load_dataset_version(settings.workspace, config.dataset, stage=config.stage)
    model_dir = resolve_model_path(config, settings)
    log_file = output / "trainer_log.jsonl"
    if log_file.is_file():  # LLaMA-Factory's log rows use current_steps; map them to our metrics.jsonl
        rows = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
        (work_dir / "metrics.jsonl").write_text("".join(
            json.dumps({"step": r.get("current_steps"), **({"loss": r["loss"]} if "loss" in r else {}),
                        "learning_rate": r.get("lr")}) + "\n" for r in rows))
    metrics = json.loads((output / "train_results.json").read_text()) if (output / "train_results.json").is_file() \
        else {}
    final = settings.workspace.models / "llamafactory" / run_id
    with atomic_dir(final) as tmp:
        for item in output.iterdir():
            if item.is_file() and not item.name.startswith(("trainer_", "training_args", "README")):
                shutil.copy2(item, tmp / item.name)
        write_run_folder(tmp, config=config, run_name=f"llamafactory/{run_id}", model_dir=model_dir,
                         data_info=data_info, metrics=metrics, work_dir=work_dir, started=started,
                         versions=library_versions())
    return RunResult(run_name=f"llamafactory/{run_id}", run_id=run_id, provider="llamafactory", run_dir=final,
                     metrics=metrics)
