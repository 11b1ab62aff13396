"""`secops-ai models ...` and `secops-ai train ...` as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from secops_ai.cli.main import app
from secops_ai.config import Workspace

runner = CliRunner()


def test_models_commands(workspace: Workspace, add_run) -> None:
    a, b = add_run("run-a"), add_run("run-b")
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["name"] for r in json.loads(listed.output)] == [a, b]

    refused = runner.invoke(app, ["models", "promote", a])
    assert refused.exit_code == 1 and "evaluation gate" in refused.output
    no_reason = runner.invoke(app, ["models", "promote", a, "--force"])
    assert no_reason.exit_code == 1 and "--reason" in no_reason.output
    forced = runner.invoke(app, ["models", "promote", a, "--force", "--reason", "demo", "--actor", "bob"])
    assert forced.exit_code == 0 and "forced" in forced.output
    assert runner.invoke(app, ["models", "promote", b, "--force", "--reason", "newer"]).exit_code == 0

    shown = json.loads(runner.invoke(app, ["models", "show", a]).output)
    assert shown["stage"] == "archived" and shown["history"][1]["actor"] == "bob"
    rolled = runner.invoke(app, ["models", "rollback"])
    assert rolled.exit_code == 0 and a in rolled.output
    prod = json.loads(runner.invoke(app, ["models", "list", "--stage", "production", "--json"]).output)
    assert [r["name"] for r in prod] == [a]
    table = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "production" in table.output
    archived = runner.invoke(app, ["models", "archive", a])
    assert archived.exit_code == 0 and (workspace.models / a / "adapter_model.safetensors").is_file()
    retired = runner.invoke(app, ["models", "archive", b])  # demoted by the rollback; now retired on purpose
    assert retired.exit_code == 0, retired.output
    again = runner.invoke(app, ["models", "archive", b])
    assert again.exit_code == 1 and "already archived" in again.output
    nothing = runner.invoke(app, ["models", "rollback"])
    assert nothing.exit_code == 1 and "--to" in nothing.output
    assert runner.invoke(app, ["models", "rollback", "--to", b]).exit_code == 0
    narrow = runner.invoke(app, ["models", "list"], env={"COLUMNS": "50"})
    assert narrow.exit_code == 0 and "…" not in narrow.output  # ids are folded, never cut
    missing = runner.invoke(app, ["models", "show", "builtin/none"])
    assert missing.exit_code == 1 and "no model 'builtin/none'" in missing.output


def test_train_run_reports_config_errors(workspace: Workspace, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: starter/security-sft@1\nlora_rank: 8\n")
    res = runner.invoke(app, ["train", "run", str(cfg), "lora_rank=-3"])
    assert res.exit_code == 1 and "lora_rank" in res.output
    res = runner.invoke(app, ["train", "run", str(cfg)])
    assert res.exit_code == 1 and "no dataset starter/security-sft@1" in res.output
    res = runner.invoke(app, ["train", "resume", "nope"])
    assert res.exit_code == 1 and "no interrupted run 'nope'" in res.output


def test_cli_errors_keep_brackets(workspace: Workspace, tmp_path: Path) -> None:
    """Issue 15.8: rich markup ate `[cuda]` from the QLoRA refusal (`pip install 'secops-ai'`)."""
    cfg = tmp_path / "q.yaml"
    cfg.write_text("dataset: starter/security-sft@1\nquantization_bit: 4\n")
    res = runner.invoke(app, ["train", "run", str(cfg)])
    assert res.exit_code == 1 and "pip install 'secops-ai[cuda]'" in res.output, res.output
