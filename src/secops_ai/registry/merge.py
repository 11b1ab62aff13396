"""Merge a LoRA adapter into its base weights, written as a new run folder (the base is never touched)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from secops_ai.config.atomic import atomic_dir
from secops_ai.registry import model_card


def merge_adapter(adapter_dir: Path, provider_dir: Path, *, parent: str) -> Path:
    """Write ``<provider_dir>/<run-id>-merged[-N]/`` holding full merged weights; return the folder."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = json.loads((adapter_dir / "run.json").read_text())
    base_path = Path(info.get("base_model_path") or json.loads(
        (adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"])
    if not (base_path / "config.json").is_file():
        raise FileNotFoundError(f"base model of {parent} not found at {base_path}; it is needed to merge")
    target = provider_dir / f"{adapter_dir.name}-merged"
    n = 2
    while target.exists():
        target = provider_dir / f"{adapter_dir.name}-merged-{n}"
        n += 1
    base = AutoModelForCausalLM.from_pretrained(str(base_path), local_files_only=True, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir if (adapter_dir / "tokenizer_config.json").is_file()
                                                  else base_path), local_files_only=True)
    with atomic_dir(target) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        for name in ("config.yaml", "metrics.jsonl", "loss.png", "secops_base.json"):
            if (adapter_dir / name).is_file():
                shutil.copy2(adapter_dir / name, tmp / name)
        merged_info = {**info, "name": f"{provider_dir.name}/{target.name}", "run_id": target.name,
                       "kind": "merged", "parent": parent,
                       "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (tmp / "run.json").write_text(json.dumps(merged_info, indent=2))
        if (adapter_dir / model_card.CARD).is_file():
            shutil.copy2(adapter_dir / model_card.CARD, tmp / model_card.CARD)
            front, body = model_card.read_card(tmp)
            front["library_name"] = "transformers"
            front["tags"] = [t for t in front.get("tags", []) if t != "lora"] + ["merged"]
            front.setdefault("secops", {})["run"] = merged_info["name"]
            front["secops"]["merged_from"] = parent
            front["secops"]["evals"] = None
            front.pop("model-index", None)
            body = body.replace(f"# {parent}", f"# {merged_info['name']}\n\nMerged from the LoRA adapter `{parent}` "
                                f"into full weights (serve with `SECOPS_BASE_MODEL=<this folder>` or vLLM).", 1)
            model_card.write_card(tmp, front, body)
    return target
