"""End to end through `secops-ai pretrain`: corpus → train (+ export) → score → sample, on synthetic logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secops_ai.cli.main import app
from secops_ai.config import Workspace
from secops_ai.training.pretrain.logs import attack_lines, generate_logs

KEY = "cli-test-key"
runner = CliRunner()

# small enough for CI's two cores, big enough to learn the log formats (val loss ≈ 0.8 nats/char)
TRAIN = ["corpus=logs", "run_id=logs-model", "model.n_layer=2", "model.n_head=2", "model.n_embd=64",
         "model.block_size=64", "batch_size=16", "max_iters=300", "lr_decay_iters=300", "warmup_iters=20",
         "learning_rate=6e-3", "eval_interval=150", "eval_iters=5", "device=cpu"]


def cli(*args: str) -> str:
    result = runner.invoke(app, ["pretrain", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def log_model(module_workspace: Workspace) -> Workspace:
    out = cli("corpus", "logs", "--synthetic-lines", "3000", "--seed", "1", "--key", KEY)
    assert "logs-v1" in out and "pseudonymised: True" in out
    out = cli("train", *TRAIN, "--no-progress")
    assert "trained logs-model" in out and "exported" in out
    return module_workspace


@pytest.mark.slow
def test_injected_attack_lines_rank_first(log_model: Workspace, tmp_path: Path) -> None:
    lines = list(generate_logs(60, seed=99))  # benign lines the model never saw
    attacks = attack_lines(seed=5)
    lines.insert(20, attacks[0])  # SQL injection by sqlmap
    lines.insert(45, attacks[2])  # sudo reverse shell
    log = tmp_path / "today.log"
    log.write_text("\n".join(lines) + "\n")
    before = log.read_bytes()
    out = cli("score", str(log), "--model", "logs-model", "--key", KEY, "--json")
    ranking = [json.loads(x) for x in out.splitlines()]
    assert len(ranking) == 62 and log.read_bytes() == before
    top = [r["line"] for r in ranking[:3]]
    assert 21 in top and 46 in top, ranking[:5]
    assert ranking[0]["text"] in (attacks[0], attacks[2])  # the original line is shown, not the pseudonymised one
    # the table form names the file and shows the top lines
    table = cli("score", str(log), "-m", "logs-model", "--key", KEY, "--top", "3")
    assert "today.log" in table and "most anomalous first" in table
    # scoring needs the corpus' key: pseudonyms from another key would look anomalous
    wrong = runner.invoke(app, ["pretrain", "score", str(log), "-m", "logs-model", "--key", "other"])
    assert wrong.exit_code == 1 and "not the corpus' key id" in wrong.output
    missing = runner.invoke(app, ["pretrain", "score", str(log), "-m", "logs-model"],
                            env={"SECOPS_OBFUSCATION_KEY": ""})
    assert missing.exit_code == 1 and "pass the same key" in missing.output


@pytest.mark.slow
def test_sample_continues_in_the_log_formats(log_model: Workspace) -> None:
    out = cli("sample", "logs-model", "--num-samples", "1", "--max-new-tokens", "150", "--temperature", "0",
              "--prompt", "Jan  5 09:")
    assert "Jan  5 09:" in out and ("sshd[" in out or "sudo:" in out or "kernel:" in out or "CRON[" in out)
    assert (log_model.models / "nanogpt" / "logs-model" / "config.json").is_file()  # registered by train


def test_cli_errors_name_the_key_or_file(workspace: Workspace, tmp_path: Path) -> None:
    bad = runner.invoke(app, ["pretrain", "train", "corpus=logs", "model.n_layers=2"])
    assert bad.exit_code == 1 and "unknown key 'model.n_layers'" in bad.output
    missing = runner.invoke(app, ["pretrain", "train", "corpus=nothing", "--no-progress"])
    assert missing.exit_code == 1 and "no corpus 'nothing'" in missing.output
    nokey = runner.invoke(app, ["pretrain", "corpus", "logs", "--synthetic-lines", "10"],
                          env={"SECOPS_OBFUSCATION_KEY": ""})
    assert nokey.exit_code == 1 and "needs a key" in nokey.output
    assert runner.invoke(app, ["pretrain", "export", "nope"]).exit_code == 1


def test_scoring_applies_the_corpus_pseudonyms_only_with_the_corpus_key() -> None:
    from secops_ai.data.obfuscation import Pseudonymizer
    from secops_ai.training.pretrain.anomaly import KeyMismatchError, corpus_pseudonymizer

    line = "Jan  5 09:12:01 web1 sshd[4242]: Accepted password for alice from 203.0.113.9 port 50022 ssh2"
    meta = {"obfuscation": {"pseudonymised": True, "key_id": Pseudonymizer(KEY).key_id}}
    apply = corpus_pseudonymizer(meta, KEY)
    assert apply is not None and apply(line) == Pseudonymizer(KEY).text(line) and "203.0.113.9" not in apply(line)
    assert corpus_pseudonymizer({"obfuscation": {"pseudonymised": False}}, None) is None
    assert corpus_pseudonymizer({}, KEY) is None  # public text: lines are scored as given
    with pytest.raises(KeyMismatchError, match="pass the same key"):
        corpus_pseudonymizer(meta, None)
    with pytest.raises(KeyMismatchError, match="not the corpus' key id"):
        corpus_pseudonymizer(meta, "another-key")
