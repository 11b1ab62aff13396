"""The gate option: `secops-ai eval run <target> --self-correct verified` scores the model with self-correction
on beside the plain run (tiny random model, the evals tests' small gate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secops_ai.cli.main import app
from secops_ai.config import Workspace, get_settings

GATE = Path(__file__).resolve().parents[1] / "evals" / "gate-test.yaml"


def test_gate_scores_the_model_with_verified_self_correction(workspace: Workspace, tiny_llama_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["eval", "run", "base", "--gate", str(GATE), "--self-correct", "verified"])
    assert result.exit_code in (0, 1), result.output
    assert "hallucination with self-correction verified" in result.output

    from secops_ai.evals.runner import resolve_target

    out = resolve_target(get_settings(), "base").out_dir
    plain = json.loads((out / "evals.json").read_text())["candidate"]
    corrected = json.loads((out / "evals-verified.json").read_text())
    assert corrected["model"] == "base+verified" and set(corrected["suites"]) == set(plain["suites"])
    # a random model's replies name no right id; verified mode states the catalog's and strikes invented ones
    assert corrected["suites"]["hallucination"]["metrics"]["hallucination_rate"] == 0.0


def test_bad_self_correct_value_is_refused_before_any_work(workspace: Workspace) -> None:
    result = CliRunner().invoke(app, ["eval", "run", "base", "--self-correct", "always"])
    assert result.exit_code == 2 and "--self-correct must be off, intrinsic or verified" in result.output
