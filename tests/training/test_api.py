"""POST /training/runs starts a background run; GET /training/runs/{id} reports status and metrics."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry


@pytest.fixture
def client_for(workspace: Workspace):
    clients = []

    def make(**settings_kwargs) -> TestClient:
        from secops_ai.api.app import create_app

        client = TestClient(create_app(Settings(home=workspace.root, **settings_kwargs), load_model=False))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_background_run_to_completion(workspace: Workspace, sft_dataset: str, tiny_config, client_for) -> None:
    client = client_for()
    config = tiny_config(sft_dataset, max_steps=2).model_dump(mode="json")
    resp = client.post("/training/runs", json={"config": config, "overrides": ["lora_rank=2"]})
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    assert resp.json()["run_name"] == f"builtin/{run_id}"
    deadline = time.monotonic() + 240
    seen = set()
    while time.monotonic() < deadline:
        body = client.get(f"/training/runs/{run_id}").json()
        seen.add(body["status"])
        if body["status"] not in ("queued", "running"):
            break
        time.sleep(1)
    assert body["status"] == "completed", body
    assert [m["step"] for m in body["metrics"] if "loss" in m] == [1, 2]
    assert body["summary"]["loss"] is not None and body["result"]["global_step"] == 2
    record = Registry(Settings(home=workspace.root)).get(f"builtin/{run_id}")
    assert record.stage == "candidate"
    assert client.get("/training/runs").json()["data"][0]["id"] == run_id


def test_bad_requests_name_the_problem(workspace: Workspace, sft_dataset: str, client_for) -> None:
    client = client_for()
    resp = client.post("/training/runs", json={"config": {"dataset": sft_dataset, "lora_rnak": 4}})
    assert resp.status_code == 400 and "lora_rnak" in resp.json()["error"]["message"]
    resp = client.post("/training/runs", json={"config": {"dataset": sft_dataset}, "config_path": "x.yaml"})
    assert resp.status_code == 400
    resp = client.get("/training/runs/nope")
    assert resp.status_code == 404 and "nope" in resp.json()["error"]["message"]


def test_training_routes_need_the_api_key_when_set(workspace: Workspace, sft_dataset: str, client_for) -> None:
    client = client_for(api_keys="s3cret")
    assert client.get("/training/runs/x").status_code == 401
    assert client.post("/training/runs", json={"config": {"dataset": sft_dataset}}).status_code == 401
    assert client.get("/training/runs/x", headers={"Authorization": "Bearer s3cret"}).status_code == 404


def test_config_path_reads_only_config_folders(workspace: Workspace, sft_dataset: str, client_for, tmp_path,
                                               monkeypatch) -> None:
    """Attack 10.5: config_path named any host .yaml (or a .yaml symlink to a secret) and the 400 quoted it."""
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    outside_yaml = tmp_path / "outside" / "keys.yaml"
    outside_yaml.write_text("aws_secret: SECRETVALUE\n")
    configs = workspace.root / "configs"
    configs.mkdir()
    (configs / "link.yaml").symlink_to(secret)  # planted inside the allowed folder, leads out of it
    (configs / "dirlink").symlink_to(secret.parent, target_is_directory=True)
    monkeypatch.chdir(tmp_path)  # the server's project configs/ folder: none here
    client = client_for()
    for path in (str(secret), str(outside_yaml), "../outside/keys.yaml", "link.yaml", "dirlink/keys.yaml",
                 str(configs / "link.yaml"), "/etc/passwd.yaml", "nope.yaml", "configs/../../outside/keys.yaml"):
        resp = client.post("/training/runs", json={"config_path": path})
        assert resp.status_code == 400, (path, resp.text)
        error = resp.json()["error"]
        assert error["param"] == "config_path" and error["code"] == "config_path_not_allowed"
        assert "SECRET" not in resp.text and "aws_secret" not in resp.text and "root:" not in resp.text
    # a config inside $SECOPS_HOME/configs/ is read, and its own errors are reported with its keys
    (configs / "bad.yaml").write_text(f"dataset: {sft_dataset}\nlora_rnak: 4\n")
    for path in ("bad.yaml", "configs/bad.yaml", str(configs / "bad.yaml")):
        resp = client.post("/training/runs", json={"config_path": path})
        assert resp.status_code == 400 and "lora_rnak" in resp.json()["error"]["message"], (path, resp.text)


def test_broken_status_files_never_fail_the_listing(workspace: Workspace, client_for, tmp_path) -> None:
    """Attack 10.7: a malformed status.json gave a 500 on GET /training/runs and crashed `train status`."""
    from typer.testing import CliRunner

    from secops_ai.cli.main import app

    root = workspace.storage / "training"
    good = root / "sft-good"
    good.mkdir(parents=True)
    (good / "status.json").write_text(json.dumps({"status": "failed", "run_name": "builtin/sft-good",
                                                  "error": "boom"}))
    (good / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')  # torn last line
    for name, content in (("sft-garbled", "{not json"), ("sft-list", "[1, 2]"), ("sft-nostatus", "{}"),
                          ("sft-binary", b"\xff\xfe\x00".decode("latin-1"))):
        (root / name).mkdir()
        (root / name / "status.json").write_text(content)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"status": "completed", "run_name": "x", "error": "HOST-SECRET"}))
    (root / "sft-link").mkdir()
    (root / "sft-link" / "status.json").symlink_to(outside)

    client = client_for()
    resp = client.get("/training/runs")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["id"] for r in body["data"]] == ["sft-good"]
    assert body["data"][0]["summary"]["step"] == 1
    assert len(body["warnings"]) == 5 and "HOST-SECRET" not in resp.text
    for name in ("sft-garbled", "sft-list", "sft-nostatus", "sft-link"):
        resp = client.get(f"/training/runs/{name}")
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "run_status_unreadable", resp.text
    assert client.get("/training/runs/..").status_code in (400, 404)

    result = CliRunner().invoke(app, ["train", "status", "--json"], env={"SECOPS_HOME": str(workspace.root)})
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)] == ["sft-good"]
    assert "sft-garbled: skipped" in result.stderr
    result = CliRunner().invoke(app, ["train", "status", "sft-garbled"], env={"SECOPS_HOME": str(workspace.root)})
    assert result.exit_code == 1 and "not valid JSON" in result.stderr and "Traceback" not in result.output


def test_invalid_evals_json_is_an_openai_error(workspace: Workspace, client_for, tmp_path) -> None:
    """Attack 10.7: an invalid evals.json gave a plain-text 500; a symlinked one must not be served."""
    run = workspace.models / "builtin" / "run-x"
    run.mkdir(parents=True)
    (run / "evals.json").write_text('{"verdict": 1')
    client = client_for()
    resp = client.get("/models/builtin/run-x/evals")
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["code"] == "evals_unreadable"
    outside = tmp_path / "evals.json"
    outside.write_text('{"secret": "HOST-SECRET"}')
    link = workspace.models / "builtin" / "run-y"
    link.mkdir()
    (link / "evals.json").symlink_to(outside)
    resp = client.get("/models/builtin/run-y/evals")
    assert resp.status_code == 404 and "HOST-SECRET" not in resp.text
