"""Rollback defined and tested (issue 15.2), promotion all-or-nothing (10.11), no symlinked runs (10.9)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry, RegistryError
from secops_ai.registry.model_card import ModelCardError


def registry(workspace: Workspace) -> Registry:
    return Registry(Settings(home=workspace.root))


def _passing(reg: Registry, *names: str) -> None:
    for name in names:
        reg.record_gate_result(name, True, {"message": "ok"})


def test_promote_archive_rollback_does_not_bring_back_the_archived_model(workspace: Workspace, add_run) -> None:
    a = add_run("run-a")
    reg = registry(workspace)
    _passing(reg, a)
    reg.promote(a)
    reg.archive(a, reason="bad answers")
    assert reg.production() is None
    with pytest.raises(RegistryError, match=r"nothing to roll back to.*archived explicitly.*--to builtin/run-a"):
        reg.rollback()
    assert reg.production() is None and reg.get(a).stage == "archived"
    assert reg.rollback(to=a) == a  # an explicit target may be an archived model that was in production
    assert reg.production() == a
    assert reg.get(a).history[-1]["reason"] == "rollback (no model was in production)"


def test_promote_a_promote_b_rollback_and_again(workspace: Workspace, add_run) -> None:
    a, b, c = add_run("run-a"), add_run("run-b"), add_run("run-c")
    reg = registry(workspace)
    _passing(reg, a, b, c)
    reg.promote(a)
    reg.promote(b)
    assert reg.rollback() == a
    assert (reg.production(), reg.get(b).stage) == (a, "archived")
    event = reg.get(a).history[-1]
    assert (event["action"], event["reason"]) == ("rollback", f"rollback from {b}")
    assert reg.rollback() == b  # a second rollback undoes the first: b was in production before a's return
    # A -> B -> C, then B archived on purpose: rolling back from C skips B and lands on A
    reg.promote(c)
    reg.archive(b)
    assert reg.rollback() == a
    # archiving the current production model: rollback goes to the one before it that still qualifies
    reg.archive(a)
    assert reg.rollback() == c
    with pytest.raises(RegistryError, match="never in production"):
        reg.rollback(to=add_run("run-d"))
    with pytest.raises(RegistryError, match="already in production"):
        reg.rollback(to=c)


def test_rollback_skips_models_whose_folder_is_gone(workspace: Workspace, add_run) -> None:
    a, b, c = add_run("run-a"), add_run("run-b"), add_run("run-c")
    reg = registry(workspace)
    _passing(reg, a, b, c)
    for name in (a, b, c):
        reg.promote(name)
    shutil.rmtree(workspace.models / b)
    assert reg.rollback() == a


def test_a_failing_promotion_changes_nothing(workspace: Workspace, add_run) -> None:
    """Attack 10.11: `models promote` exited 1 ("no model card") AFTER committing the production stage."""
    a, b = add_run("run-a"), add_run("run-b")
    reg = registry(workspace)
    _passing(reg, a)
    reg.promote(a)
    (workspace.models / b / "model_card.md").unlink()
    before = reg.history()
    with pytest.raises(ModelCardError, match="no model card"):
        reg.promote(b, force=True, reason="hotfix")
    assert reg.production() == a and reg.get(b).stage == "candidate" and reg.history() == before
    result = CliRunner().invoke(__import__("secops_ai.cli.main", fromlist=["app"]).app,
                                ["models", "promote", b, "--force", "--reason", "hotfix"],
                                env={"SECOPS_HOME": str(workspace.root)})
    assert result.exit_code == 1 and "no model card" in result.output
    assert reg.production() == a and reg.history() == before

    # the database refusing the commit puts the card back as it was
    card = workspace.models / a / "model_card.md"
    shutil.copy(card, workspace.models / b / "model_card.md")
    text = (workspace.models / b / "model_card.md").read_text()

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    reg._set_production = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="database went away"):
        reg.promote(b, force=True, reason="hotfix")
    assert (workspace.models / b / "model_card.md").read_text() == text
    assert registry(workspace).production() == a


def test_refused_promotion_quotes_the_gate_once(workspace: Workspace, add_run) -> None:
    a = add_run("run-a")
    reg = registry(workspace)
    reg.record_gate_result(a, False, {"message": "policy.refusal_rate = 0.2 < min 0.6"})
    with pytest.raises(RegistryError) as info:
        reg.promote(a)
    assert str(info.value).count("policy.refusal_rate = 0.2 < min 0.6") == 1


def test_symlinked_runs_are_never_registered(workspace: Workspace, add_run, tmp_path: Path) -> None:
    """Attack 10.9: a symlinked adapter folder was auto-registered (and so could be promoted and served)."""
    a = add_run("run-a")
    outside = tmp_path / "outside-run"
    shutil.copytree(workspace.models / a, outside)
    (workspace.models / "builtin" / "planted").symlink_to(outside, target_is_directory=True)
    (workspace.models / "evil").symlink_to(tmp_path, target_is_directory=True)  # a whole provider folder
    (tmp_path / "run-x").mkdir()
    shutil.copy(outside / "run.json", tmp_path / "run-x" / "run.json")
    reg = registry(workspace)
    assert [r.name for r in reg.list()] == [a]
    with pytest.raises(RegistryError):
        reg.get("builtin/planted")
    with pytest.raises(RegistryError, match="symlink"):
        reg.register(workspace.models / "builtin" / "planted")


def test_v1_models_lists_the_aliases_and_what_they_resolve_to(workspace: Workspace, add_run, tiny_llama_dir: Path,
                                                              start_server) -> None:
    """Issue 15.3: /v1/models lists `default` and `production` with the model each one resolves to."""
    import httpx

    a = add_run("run-a")
    reg = registry(workspace)
    reg.promote(a, force=True, reason="alias test")
    server = start_server({"SECOPS_HOME": str(workspace.root), "SECOPS_BASE_MODEL": str(tiny_llama_dir)},
                          timeout=600)
    models = {m["id"]: m for m in httpx.get(f"{server.base_url}/v1/models", timeout=60).json()["data"]}
    base = next(m["id"] for m in models.values() if m["kind"] == "base")
    assert models["default"]["kind"] == "alias" and models["default"]["resolves_to"] == base  # no SECOPS_ADAPTER
    assert models["production"]["resolves_to"] == a and a in models
    reply = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=120, json={
        "model": "production", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 200 and reply.json()["model"] == a  # what the listing promised
