"""Every command fails the same way: one ``error: <message>`` line on stderr and a fixed exit code
(0 done / check passed, 1 could not do it / check failed, 2 the command line is wrong)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from secops_ai.cli.failure import EXIT_ERROR, EXIT_USAGE, fail
from secops_ai.cli.main import app
from secops_ai.config import Workspace


def test_fail_prints_the_message_verbatim_on_stderr_and_exits_with_the_code() -> None:
    probe = typer.Typer()

    @probe.command()
    def boom(code: int = 1) -> None:
        fail("pip install 'secops-ai[cuda]' and [bold]not markup[/bold]", code)

    for code in (EXIT_ERROR, EXIT_USAGE):
        result = CliRunner().invoke(probe, ["--code", str(code)], env={"COLUMNS": "300"})
        assert result.exit_code == code
        assert result.stderr.strip() == "error: pip install 'secops-ai[cuda]' and [bold]not markup[/bold]"
        assert result.stdout == ""


@pytest.mark.parametrize(("args", "code", "needle"), [
    # 1: the command could not do what was asked
    (["eval", "show", "builtin/none"], EXIT_ERROR, "no evaluation results for 'builtin/none'"),
    (["eval", "contamination", "--gate", "no-such-gate"], EXIT_ERROR, "no such gate config"),
    (["evolve", "show", "nope"], EXIT_ERROR, "no evolve run 'nope'"),
    (["evolve", "run", "no-such-config"], EXIT_ERROR, "no-such-config"),
    (["agent", "replay", "run-missing"], EXIT_ERROR, "no trajectory"),
    (["guardrails", "check", "x", "--policy", "no-such-policy"], EXIT_ERROR, "no such guardrails policy file"),
    (["guardrails", "evaluate", "no-such-classifier"], EXIT_ERROR, "no-such-classifier"),
    (["pretrain", "train", "--resume", "no-such-run"], EXIT_ERROR, "no such config file"),
    (["pretrain", "export", "no-such-run"], EXIT_ERROR, "no-such-run"),
    (["models", "show", "builtin/none"], EXIT_ERROR, "builtin/none"),
    (["data", "show", "nope/missing@1"], EXIT_ERROR, "nope/missing@1"),
    # 2: the command line itself is wrong
    (["eval", "run", "base", "--self-correct", "sometimes"], EXIT_USAGE, "--self-correct must be off"),
    (["agent", "eval", "--start", "995", "--n", "10"], EXIT_USAGE, "held-out seeds are 0..999"),
    (["guardrails", "check", "x"], EXIT_USAGE, "no policy: pass --policy"),
    (["data", "generate", "recipe-sft", "--set", "builder_requests=-1"], EXIT_USAGE, "builder_requests"),
    (["data", "generate", "recipe-sft", "--set", "builder_requests=abc"], EXIT_USAGE, "builder_requests"),
    (["data", "generate", "recipe-sft", "--set", "no_such_knob=1"], EXIT_USAGE, "no_such_knob"),
])
def test_each_group_fails_with_its_documented_code(workspace: Workspace, args: list[str], code: int,
                                                   needle: str) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300", "SECOPS_GUARDRAILS_POLICY": ""})
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("env", "needle"), [
    ({"SECOPS_STREAM_INTERVAL_MS": "-1"}, "SECOPS_STREAM_INTERVAL_MS='-1': Input should be greater than or equal to 0"),
    ({"SECOPS_ENGINE": "gpu"}, "SECOPS_ENGINE='gpu'"),
    ({"SECOPS_LLAMACPP_THREADS": "many"}, "SECOPS_LLAMACPP_THREADS='many'"),
])
def test_a_bad_setting_in_the_environment_fails_every_command_naming_the_variable(
        workspace: Workspace, env: dict[str, str], needle: str) -> None:
    from secops_ai.config import get_settings

    for args in (["serve"], ["models", "list"]):
        get_settings.cache_clear()
        result = CliRunner().invoke(app, args, env={"COLUMNS": "300", **env})
        assert result.exit_code == EXIT_ERROR, result.output
        assert result.stderr.startswith("error: ") and needle in result.stderr, result.stderr
        assert "Traceback" not in result.output
    get_settings.cache_clear()


def test_a_bad_generator_config_file_is_bad_input_not_a_bad_command_line(workspace: Workspace,
                                                                         tmp_path: Path) -> None:
    bad = tmp_path / "gen.yaml"
    bad.write_text("builder_requests: -1\n")
    result = CliRunner().invoke(app, ["data", "generate", "recipe-sft", "--config", str(bad)],
                                env={"COLUMNS": "300"})
    assert result.exit_code == EXIT_ERROR and "gen.yaml" in result.stderr and "builder_requests" in result.stderr


def test_agent_run_rejects_bad_option_values_before_starting(workspace: Workspace, tmp_path: Path) -> None:
    for flag, value in (("--mode", "fast"), ("--approve", "maybe")):
        result = CliRunner().invoke(app, ["agent", "run", "x", "--workspace", str(tmp_path), flag, value])
        assert result.exit_code == EXIT_USAGE and result.stderr.startswith(f"error: {flag}: '{value}'")
    assert list(workspace.agent_runs.glob("*.jsonl")) == []


@pytest.mark.parametrize("args", [
    ["data", "import", "xml", "x.xml"],
    ["data", "verify"],
    ["data", "export", "starter/security-sft@1", "--out", "out", "--format", "alpaca-csv"],
    ["data", "export", "starter/security-sft@1", "--out", "out", "--style", "chatml"],
])
def test_data_usage_errors_exit_2(workspace: Workspace, args: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == EXIT_USAGE and result.stderr.startswith("error: "), result.output
