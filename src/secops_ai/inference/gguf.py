"""GGUF files for the llama.cpp engine: the base model at the chosen quantisation, LoRA adapters, exports.

Every file is written by llama.cpp's own converters from the pinned source (``convert_hf_to_gguf.py``,
``convert_lora_to_gguf.py``), run with this interpreter; nothing here writes GGUF by hand.

* Base: the bundled model ships as Q4_1, which is also what its Hugging Face folder was de-quantised from,
  so ``q4_1`` serves that file as is. Other quantisations (``q8_0``, ``f16``, ``f32``) are converted once from
  the base folder into ``<base>/gguf/model-<quant>.gguf``.
* Adapters: converted once into ``<adapter>/adapter-f32.gguf`` beside the peft files; ``converted_hooks`` then
  get the file and its sha256 (the CLI records them in the adapter's model card, ``gguf:`` in the front matter).
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

QUANTS = ("q4_1", "q8_0", "f16", "f32")
_CONVERT_LOCK = threading.Lock()  # one conversion at a time (2 cores; and two engines may ask at once)
# Called as hook(adapter_dir, gguf_file, sha256) after an adapter is converted. inference may not import the
# registry (docs/design.md), so the CLI registers the model-card update here.
converted_hooks: list[Callable[[Path, Path, str], None]] = []


class GGUFError(RuntimeError):
    """A GGUF file could not be produced (the caller falls back to the transformers engine)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _convert(script: str, args: list[str], out: Path, what: str) -> Path:
    from secops_ai.inference.llamacpp_build import converter_env, source_dir

    src = source_dir()
    if src is None:
        raise GGUFError("the llama.cpp source is missing: run `make setup` (or set SECOPS_LLAMACPP_SOURCE)")
    tmp = out.with_name(f".{out.name}.partial")
    with _CONVERT_LOCK:
        if out.is_file():
            return out
        log.info("converting %s to GGUF with llama.cpp's %s (once)", what, script)
        run = subprocess.run([sys.executable, str(src / script), *args, "--outfile", str(tmp)],
                             env=converter_env(), capture_output=True, text=True)
        if run.returncode != 0 or not tmp.is_file():
            tmp.unlink(missing_ok=True)
            raise GGUFError(f"{script} failed for {what}: {(run.stderr or run.stdout).strip()[-600:]}")
        tmp.replace(out)
    return out


def _bundled_source(base_dir: Path) -> Path | None:
    """The GGUF file a base folder was prepared from, when it is the bundled one."""
    from secops_ai.inference.loader import BUNDLED_GGUF_FILE, bundled_gguf_path

    marker = base_dir / "secops_source.json"
    try:
        if json.loads(marker.read_text()).get("gguf") == BUNDLED_GGUF_FILE:
            return bundled_gguf_path()
    except (OSError, ValueError):
        return None
    return None


def base_gguf(base_dir: Path, quant: str) -> Path:
    """The base model as a GGUF file at ``quant`` (converted once; the bundled Q4_1 is used as shipped)."""
    if quant not in QUANTS:
        raise GGUFError(f"unknown quantisation {quant!r}; use one of {', '.join(QUANTS)}")
    bundled = _bundled_source(base_dir)
    if quant == "q4_1":
        if bundled is not None:
            return bundled
        # convert_hf_to_gguf.py cannot write Q4_1 (that needs llama-quantize): the closest it can write
        log.warning("Q4_1 is only available for the bundled model; converting %s to Q8_0 instead", base_dir.name)
        quant = "q8_0"
    out = base_dir / "gguf" / f"model-{quant}.gguf"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    return _convert("convert_hf_to_gguf.py", [str(base_dir), "--outtype", quant], out, f"{base_dir.name} ({quant})")


def adapter_gguf(adapter_dir: Path, base_dir: Path) -> Path:
    """The adapter as a GGUF LoRA beside its peft files (converted once; f32, adapters are small)."""
    out = adapter_dir / "adapter-f32.gguf"
    if not out.is_file():
        _convert("convert_lora_to_gguf.py", ["--base", str(base_dir), "--outtype", "f32", str(adapter_dir)], out,
                 f"adapter {adapter_dir.parent.name}/{adapter_dir.name}")
        _announce(adapter_dir, out)
    return out


def _announce(adapter_dir: Path, gguf: Path) -> None:
    """Tell ``converted_hooks`` (the CLI wires the registry's model-card update) about a new adapter GGUF."""
    digest = sha256(gguf)
    for hook in converted_hooks:
        try:
            hook(adapter_dir, gguf, digest)
        except Exception as exc:  # a card we cannot rewrite must not stop serving
            log.warning("could not record %s for %s: %s", gguf.name, adapter_dir, exc)


def export_merged(model_dir: Path, out: Path, quant: str = "q8_0") -> Path:
    """Write a standalone GGUF (Ollama, llama.cpp) from a Hugging Face model folder (e.g. a merged model)."""
    if quant not in QUANTS or quant == "q4_1":
        raise GGUFError(f"export quantisation must be one of q8_0, f16, f32 (not {quant!r})")
    if out.exists():
        raise GGUFError(f"{out} already exists; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    return _convert("convert_hf_to_gguf.py", [str(model_dir), "--outtype", quant], out, f"{model_dir} ({quant})")


def export_adapter(adapter_dir: Path, base_dir: Path, out: Path, quant: str = "q8_0") -> Path:
    """An adapter merged into its base (in a temporary folder; nothing registered) as one standalone GGUF."""
    import tempfile

    from secops_ai.inference.loader import check_adapter_base, read_adapter

    info = read_adapter(adapter_dir)
    check_adapter_base(info, base_dir)  # the base this server would apply it to
    if out.exists():
        raise GGUFError(f"{out} already exists; choose another --out")
    with tempfile.TemporaryDirectory(prefix="secops-export-") as tmp:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, dtype=torch.float32)
        merged = PeftModel.from_pretrained(base, str(info.path)).merge_and_unload()
        merged.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True).save_pretrained(tmp)
        return export_merged(Path(tmp), out, quant)
