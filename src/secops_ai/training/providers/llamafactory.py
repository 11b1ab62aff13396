"""The ``llamafactory`` provider: write the run as a LLaMA-Factory job and run ``llamafactory-cli train``.

The job folder holds the dataset in LLaMA-Factory's sharegpt/alpaca layout, its ``dataset_info.json`` and
the train YAML (same key names as our run configs). When the CLI is not installed the job is still written
and the error says how to run it (``infra/llamafactory.Dockerfile`` packages it for GPU machines).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from secops_ai.config import Settings
from secops_ai.training.config import RunConfig

SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "system_tag": "system", "observation_tag": "tool"}




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
        # no `template` key: LLaMA-Factory then parses the tokenizer's own chat template (what the builtin
        # recipes and the server render with) and leaves it unchanged in the saved tokenizer; its named
        # templates differ (chatml drops SmolLM2's default system message and rewrites the tokenizer's).
        "cutoff_len": config.cutoff_len,
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


CLI_INSTALL = ("`make setup` installs LLaMA-Factory in its own venv (.venv-llamafactory, linked as "
               ".venv/bin/llamafactory-cli); or set SECOPS_LLAMAFACTORY_CLI to a llamafactory-cli")
# What the run folder keeps of LLaMA-Factory's output: the weights and tokenizer, not its logs and pickles
# (metrics.jsonl, loss.png, run.json and the card are written from them).
SKIPPED_OUTPUTS = ("trainer_", "training_args", "training_loss", "train_results", "all_results", "README")
ENGINE_PACKAGES = ("llamafactory", "torch", "transformers", "peft", "trl", "accelerate", "datasets")


def find_cli(settings: Settings) -> Path | None:
    """The ``llamafactory-cli`` to run: ``SECOPS_LLAMAFACTORY_CLI``, else the one ``make setup`` links next to
    this interpreter, else the first on PATH; ``None`` when there is none."""
    from secops_ai.training.runs import TrainingError

    if settings.llamafactory_cli:
        path = Path(settings.llamafactory_cli).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise TrainingError(f"SECOPS_LLAMAFACTORY_CLI={settings.llamafactory_cli}: no executable file there. "
                                f"{CLI_INSTALL}.")
        return path
    beside = Path(sys.prefix) / "bin" / "llamafactory-cli"
    if beside.is_file() and os.access(beside, os.X_OK):  # a dangling link (venv removed) falls through
        return beside
    found = shutil.which("llamafactory-cli")
    return Path(found) if found else None


_VERSIONS = """import importlib.metadata as m, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
print(json.dumps(found))"""


def engine_versions(cli: Path) -> dict[str, str]:
    """Library versions of the interpreter the CLI runs in (its own venv, not ours): they trained the run."""
    python = cli.resolve().parent / "python"  # a venv's console script sits next to its interpreter
    if not python.is_file():
        first = cli.read_bytes()[:512].split(b"\n", 1)[0].decode(errors="replace")
        python = Path(first[2:].strip()) if first.startswith("#!") else python
    try:
        out = subprocess.run([str(python), "-c", _VERSIONS, *ENGINE_PACKAGES], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        return {str(k): str(v) for k, v in json.loads(out).items()}
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def _run_cli(cli: Path, job: Path, log_path: Path, *, progress: bool) -> None:
    """``llamafactory-cli train job``: its output goes to ``log_path`` (and the console with ``progress``)."""
    from secops_ai.training.runs import TrainingError

    env = dict(os.environ)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):  # local base, local data
        env.setdefault(var, "1")
    with log_path.open("w", encoding="utf-8") as log_file, subprocess.Popen(
            [str(cli), "train", str(job)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            encoding="utf-8", errors="replace", env=env) as proc:
        try:
            for line in proc.stdout or ():
                log_file.write(line)
                if progress:
                    sys.stdout.write(line)
        except BaseException:  # Ctrl-C or SIGTERM: stop the trainer too; its checkpoints stay for a rerun
            proc.terminate()
            proc.wait(timeout=30)
            raise
    if proc.returncode != 0:
        tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-15:])
        raise TrainingError(f"llamafactory-cli train failed with exit code {proc.returncode}; nothing registered "
                            f"(job: {job}; full log: {log_path}). Last lines:\n{tail}")


def _metrics(output: Path, work_dir: Path) -> dict[str, Any]:
    """Final metrics from LLaMA-Factory's files; its per-step log becomes our ``metrics.jsonl``."""
    metrics: dict[str, Any] = {}
    if (output / "train_results.json").is_file():
        metrics = {k: (round(v, 6) if isinstance(v, float) else v)
                   for k, v in json.loads((output / "train_results.json").read_text()).items()}
    log_file = output / "trainer_log.jsonl"
    rows = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()] \
        if log_file.is_file() else []
    (work_dir / "metrics.jsonl").write_text("".join(  # its rows say current_steps and lr
        json.dumps({"step": r.get("current_steps"), "learning_rate": r.get("lr"),
                    **{k: r[k] for k in ("loss", "eval_loss") if k in r}}) + "\n" for r in rows))
    losses = [r["loss"] for r in rows if isinstance(r.get("loss"), int | float)]
    if rows:
        metrics["global_step"] = rows[-1].get("current_steps")
    if losses:
        metrics["first_loss"], metrics["final_loss"] = round(losses[0], 6), round(losses[-1], 6)
    return metrics


def run(config: RunConfig, settings: Settings, *, run_id: str | None = None, progress: bool = True):
    """Train with LLaMA-Factory in its own process and venv; the finished run lands in
    ``models/llamafactory/<run-id>/`` like a builtin one (weights, card, run.json), so the registry, the gates
    and ``SECOPS_ADAPTER`` take it as they take any run. A failed or interrupted run registers nothing; a
    rerun with the same ``run_id`` continues from LLaMA-Factory's last checkpoint."""
    from secops_ai import __version__
    from secops_ai.config.atomic import atomic_dir
    from secops_ai.training.data import load_dataset_version
    from secops_ai.training.output import write_run_folder
    from secops_ai.training.runs import RunResult, TrainingError, new_run_id, resolve_model_path, work_root

    run_id = run_id or new_run_id(config)
    run_name = f"llamafactory/{run_id}"
    final = settings.workspace.models / "llamafactory" / run_id
    if final.exists():
        raise TrainingError(f"{run_name} already finished ({final}); a new run needs a new id")
    _, data_info = load_dataset_version(settings.workspace, config.dataset, stage=config.stage)
    work_dir = work_root(settings) / run_id
    output = work_dir / "output"
    job = write_job(config, settings, work_dir / "llamafactory", output_dir=output)
    cli = find_cli(settings)
    if cli is None:
        raise TrainingError(
            f"provider llamafactory: `llamafactory-cli` is not installed here. The job is written to {job.parent} "
            f"(train.yaml + dataset_info.json); run `llamafactory-cli train {job}` on a machine with LLaMA-Factory "
            f"(build infra/llamafactory.Dockerfile), or use provider: builtin. {CLI_INSTALL}.")
    started = time.time()
    _run_cli(cli, job, work_dir / "llamafactory.log", progress=progress)
    model_dir = resolve_model_path(config, settings)
    metrics = _metrics(output, work_dir)
    with atomic_dir(final) as tmp:
        for item in output.iterdir():
            if item.is_file() and not item.name.startswith(SKIPPED_OUTPUTS):
                shutil.copyfile(item, tmp / item.name)  # not copy2: LLaMA-Factory writes some files 0600
        write_run_folder(tmp, config=config, run_name=run_name, model_dir=model_dir, data_info=data_info,
                         metrics=metrics, work_dir=work_dir, started=started,
                         versions={**engine_versions(cli), "secops_ai": str(__version__)})
    shutil.rmtree(output, ignore_errors=True)  # checkpoints are only for a rerun; the run lives in models/
    return RunResult(run_name=run_name, run_id=run_id, provider="llamafactory", run_dir=final, metrics=metrics)
