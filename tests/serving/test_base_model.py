"""Resolving SECOPS_BASE_MODEL: bundled name, local Hugging Face folder, GGUF file, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops_ai.config import Settings, Workspace
from secops_ai.inference.loader import ModelNotFoundError, bundled_gguf_path, resolve_base_model


def test_local_hf_folder_is_used_in_place(tiny_llama_dir: Path, tmp_path: Path) -> None:
    assert resolve_base_model(Settings(home=tmp_path, base_model=str(tiny_llama_dir))) == tiny_llama_dir.resolve()


def test_name_under_models_base(tiny_llama_dir: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path).ensure()
    (ws.base_models / "mine").symlink_to(tiny_llama_dir)
    assert resolve_base_model(Settings(home=tmp_path, base_model="mine")) == ws.base_models / "mine"


@pytest.mark.parametrize("spec", ["no-such-name", "/nonexistent/model.gguf"])
def test_missing_model_error_names_path_and_fix(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_base_model(Settings(home=tmp_path, base_model=spec))
    assert spec in str(exc.value)


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        resolve_base_model(Settings(home=tmp_path, base_model=str(empty)))


def test_bundled_model_converted_once_with_chat_template(bundled_base_dir: Path) -> None:
    from transformers import AutoTokenizer

    assert bundled_gguf_path().suffix == ".gguf"
    assert (bundled_base_dir / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(bundled_base_dir)
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    # A second resolve finds the converted folder instead of converting again.
    stamp = (bundled_base_dir / "model.safetensors").stat().st_mtime
    from secops_ai.inference.loader import prepare_base_model

    assert prepare_base_model(Workspace(bundled_base_dir.parents[2])) == bundled_base_dir
    assert (bundled_base_dir / "model.safetensors").stat().st_mtime == stamp
