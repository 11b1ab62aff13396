"""`secops-ai guardrails gate`: the gate on a model as is and with its guardrails on; both verdicts recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from secops_ai.cli.main import app
from secops_ai.config import Settings, Workspace, get_settings

pytestmark = pytest.mark.slow

GATE = Path(__file__).parents[1] / "evals" / "gate-test.yaml"


def test_guarded_gate_records_both_verdicts(workspace: Workspace, tiny_llama_dir: Path, intent_artefact: Path,
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from secops_ai.data.store import DatasetStore
    from secops_ai.registry import Registry
    from secops_ai.registry.db import GateResult
    from secops_ai.training import RunConfig, train

    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))
    get_settings.cache_clear()
    settings = get_settings()
    shutil.copytree(intent_artefact, workspace.models / "guardrails" / intent_artefact.name)
    ref = DatasetStore(workspace).create("test", "g-sft", "chat", [
        {"messages": [{"role": "user", "content": f"Question {i}?"},
                      {"role": "assistant", "content": f"Answer {i}."}]} for i in range(4)]).ref
    cfg = RunConfig.from_dict(dict(model_name_or_path=str(tiny_llama_dir), dataset=ref, lora_rank=4, max_steps=2,
                                   per_device_train_batch_size=2, learning_rate=5e-2, cutoff_len=64, seed=3))
    name = train(cfg, Settings(home=workspace.root), run_id="guarded", progress=False).run_name
    Registry(settings).sync()

    result = CliRunner().invoke(app, ["guardrails", "gate", name, "--gate", str(GATE), "--policy", "strict"])
    assert result.exit_code in (0, 1), result.output
    assert "with guardrails strict.yaml@v1 (strict)" in result.output
    saved = json.loads((workspace.models / name / "evals-guardrails.json").read_text())
    assert saved["summary"]["guardrails"]["classifier"] == "intent-test"
    # the tiny random model never refuses on its own; with guardrails the harmful items the classifier catches
    # get the helpful refusal (2 of the test gate's 3; the classifier refuses 92 % of all 60 harmful items)
    policy = saved["candidate"]["suites"]["policy"]["metrics"]
    raw = json.loads((workspace.models / name / "evals.json").read_text())["candidate"]["suites"]["policy"]["metrics"]
    assert raw["harmful_refusal_rate"] == 0.0 and policy["harmful_refusal_rate"] >= 0.66
    assert sum(d["decision"] == "refuse" for d in saved["decisions"]) >= 2
    reg = Registry(settings)
    with reg._session() as s:
        rows = list(s.scalars(select(GateResult).where(GateResult.name == name).order_by(GateResult.id)))
    assert len(rows) == 2
    assert "guardrails" in rows[0].summary and "guardrails" not in rows[1].summary  # the raw verdict is latest
    assert reg.gate_result(name)["summary"]["message"] == rows[1].summary["message"]
