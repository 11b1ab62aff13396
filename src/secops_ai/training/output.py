"""Everything written next to the weights in ``models/<provider>/<run-id>/``.

``run.json`` is what the registry reads to list the run; ``model_card.md`` follows Hugging Face's model card
format (YAML front matter + markdown) with an evals section that the evaluation gates fill in later.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from secops_ai.config import BUNDLED_BASE_MODEL
from secops_ai.training.config import RunConfig
from secops_ai.training.data import DatasetInfo

EVALS_START = "<!-- secops:evals:start -->"
EVALS_END = "<!-- secops:evals:end -->"
HYPERPARAMETERS = ("stage", "finetuning_type", "lora_rank", "lora_alpha", "lora_dropout", "lora_target",
                   "quantization_bit", "cutoff_len", "learning_rate", "num_train_epochs", "max_steps",
                   "per_device_train_batch_size", "gradient_accumulation_steps", "lr_scheduler_type", "seed",
                   "packing", "group_by_length", "train_on_prompt", "pref_beta", "pref_loss")


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl rows, keeping the last row per (step, kind): a resumed run re-logs a few steps."""
    if not path.is_file():
        return []
    rows: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            kind = "loss" if "loss" in row else ("summary" if "train_loss" in row else "other")
            rows[(row.get("step"), kind)] = row
    return sorted(rows.values(), key=lambda r: (r.get("step") or 0, "train_loss" in r))


def plot_loss(rows: list[dict], path: Path, title: str) -> None:
    """Training loss per step, and the eval loss when the run logged one; integer step ticks only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key, label in (("loss", "train"), ("eval_loss", "eval")):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float) and "step" in r]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label,
                    marker="." if len(points) < 50 else None)
    if len(ax.get_lines()) > 1:
        ax.legend()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_run_folder(target: Path, *, config: RunConfig, run_name: str, model_dir: Path, data_info: DatasetInfo,
                     metrics: dict[str, Any], work_dir: Path, started: float, versions: dict[str, str],
                     world_size: int = 1) -> None:
    from secops_ai.inference.loader import base_fingerprint

    base_cfg = json.loads((model_dir / "config.json").read_text())
    (target / "secops_base.json").write_text(json.dumps(base_fingerprint(base_cfg), indent=2))
    if (target / "adapter_config.json").is_file():
        # peft records the absolute base path; keep it, and name the base in a portable way too.
        cfg = json.loads((target / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = str(model_dir)
        (target / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    (target / "config.yaml").write_text(config.to_yaml())
    rows = read_metrics(work_dir / "metrics.jsonl")
    (target / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plot_loss(rows, target / "loss.png", f"{run_name} ({config.stage})")
    info = {
        "name": run_name,
        "provider": config.provider,
        "run_id": run_name.split("/", 1)[1],
        "kind": "adapter" if config.finetuning_type == "lora" else "full",
        "stage": config.stage,
        "base_model": model_dir.name,
        "base_model_hub_id": hub_id(model_dir),
        "base_model_path": str(model_dir),
        "dataset": data_info.ref,
        "dataset_files": data_info.files,
        "dataset_manifest_sha256": data_info.manifest_sha256,
        "dataset_records": data_info.records,
        "metrics": metrics,
        "versions": versions,
        "world_size": world_size,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.time() - started, 2),
        "description": config.description,
    }
    (target / "run.json").write_text(json.dumps(info, indent=2))
    (target / "model_card.md").write_text(render_model_card(info, config))


# Hugging Face Hub ids of the base models this project ships, keyed by their folder under models/base/
KNOWN_HUB_IDS = {BUNDLED_BASE_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def hub_id(model_dir: Path) -> str | None:
    """The base model's Hugging Face Hub id (``org/name``), so the card's ``base_model`` links on the Hub.

    Known bundled bases first; otherwise the ``_name_or_path`` transformers saved in ``config.json`` when it
    is a Hub id rather than a local path; ``None`` when the base has no Hub identity (a model built locally).
    """
    if model_dir.name in KNOWN_HUB_IDS:
        return KNOWN_HUB_IDS[model_dir.name]
    try:
        name = json.loads((model_dir / "config.json").read_text()).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(name, str) and _HUB_ID.match(name) and not name.startswith((".", "/")) and not Path(name).exists():
        return name
    return None


def render_model_card(info: dict[str, Any], config: RunConfig) -> str:
    hyper = {k: getattr(config, k) for k in HYPERPARAMETERS}
    hyper["lora_alpha"] = config.effective_lora_alpha
    metrics = {k: v for k, v in info["metrics"].items() if isinstance(v, int | float)}
    front: dict[str, Any] = {
        "library_name": "peft" if info["kind"] == "adapter" else "transformers",
    }
    if info.get("base_model_hub_id"):  # the Hub reads this as a model id; a local folder name would not link
        front["base_model"] = info["base_model_hub_id"]
    front |= {
        "pipeline_tag": "text-generation",
        "tags": ["secops-ai", info["stage"], "lora" if info["kind"] == "adapter" else "full-finetune", "trl"],
        "datasets": [info["dataset"]],
        "secops": {
            "run": info["name"],
            "base_model_local": info["base_model"],  # the folder under models/base/ it was trained on
            "stage_trained": info["stage"],
            "dataset": {"ref": info["dataset"], "manifest_sha256": info["dataset_manifest_sha256"],
                        "files": info["dataset_files"], "records": info["dataset_records"]},
            "hyperparameters": hyper,
            "metrics": metrics,
            "versions": info["versions"],
            "world_size": info["world_size"],
            "created_at": info["created_at"],
            "evals": None,
            "overrides": [],
        },
    }
    hp_rows = "\n".join(f"| {k} | {v} |" for k, v in hyper.items())
    m_rows = "\n".join(f"| {k} | {v} |" for k, v in metrics.items())
    files = "\n".join(f"- `{n}`: sha256 `{h}`" for n, h in info["dataset_files"].items())
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return f"""---
{yaml.safe_dump(front, sort_keys=False).rstrip()}
---

# {info["name"]}

{info.get("description") or f"{info['stage'].upper()} fine-tune of `{info['base_model']}` with SecOps AI."}

## Training

- Base model: `{info["base_model"]}`
- Method: {info["stage"].upper()}, {"LoRA adapter (peft)" if info["kind"] == "adapter" else "full fine-tune"}
- Dataset: `{info["dataset"]}` ({info["dataset_records"]} records; manifest sha256 `{info["dataset_manifest_sha256"]}`)
{files}
- Processes: {info["world_size"]}; duration {info["duration_s"]} s
- Libraries: {versions}

### Hyperparameters

| key | value |
| --- | --- |
{hp_rows}

### Metrics

| metric | value |
| --- | --- |
{m_rows}

![loss](loss.png)

## Evaluation

{EVALS_START}
Not evaluated yet. Run `secops-ai eval gate {info["name"]}`; promotion to production needs a passing gate.
{EVALS_END}

## Use

```bash
SECOPS_ADAPTER={info["name"]} secops-ai serve
```
"""
