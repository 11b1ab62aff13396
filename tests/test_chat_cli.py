"""`secops-ai chat` on a local model: answers stream into the terminal, history is kept, /reset and /exit work,
and an unknown model or a missing base model fails with one error line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from secops_ai.cli.main import app
from secops_ai.config import Workspace, get_settings


def test_local_chat_streams_answers_and_honours_commands(workspace: Workspace, tiny_llama_dir: Path,
                                                          monkeypatch) -> None:
    seen: list[list[dict[str, str]]] = []
    from secops_ai.inference.service import ModelService

    original = ModelService.encode_chat

    def spy(self, messages):  # the conversation the model is asked to continue, turn by turn
        seen.append([dict(m) for m in messages])
        return original(self, messages)

    monkeypatch.setattr(ModelService, "encode_chat", spy)
    result = CliRunner().invoke(app, ["chat", "--max-tokens", "4", "--temperature", "0", "--system", "be brief"],
                                input="hello\n\nagain\n/reset\nfresh\n/exit\nnever sent\n",
                                env={"SECOPS_BASE_MODEL": str(tiny_llama_dir), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"local model {tiny_llama_dir.name}" in result.output
    assert result.output.count("assistant>") == 3
    assert [[m["role"] for m in conv] for conv in seen] == [
        ["system", "user"], ["system", "user", "assistant", "user"], ["system", "user"]]
    assert seen[1][1]["content"] == "hello" and seen[1][3]["content"] == "again"
    assert seen[2][1]["content"] == "fresh"  # /reset kept only the system prompt


def test_chat_fails_with_one_error_line(workspace: Workspace, tiny_llama_dir: Path, tmp_path: Path) -> None:
    unknown = CliRunner().invoke(app, ["chat", "--model", "builtin/nope"], input="/exit\n",
                                 env={"SECOPS_BASE_MODEL": str(tiny_llama_dir)})
    errors = [line for line in unknown.stderr.splitlines() if line.startswith("error: ")]
    assert unknown.exit_code == 1 and len(errors) == 1  # (transformers' loading bar may precede it)
    assert errors[0].startswith("error: --model: The model 'builtin/nope' does not exist")
    get_settings.cache_clear()  # settings are read once per process; this run names another base model
    missing = CliRunner().invoke(app, ["chat"], input="/exit\n", env={"SECOPS_BASE_MODEL": str(tmp_path / "none")})
    assert missing.exit_code == 1 and missing.stderr.startswith("error: ") and "none" in missing.stderr
