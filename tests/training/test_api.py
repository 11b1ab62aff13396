"""POST /training/runs starts a background run; GET /training/runs/{id} reports status and metrics."""

from __future__ import annotations

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
