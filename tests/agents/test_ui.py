"""The web UI in a real browser (Playwright + Debian chromium) against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from secops_ai.agents.trajectory import read_events
from secops_ai.config import Workspace

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERVER = ("import sys, uvicorn; from secops_ai.api.app import create_app; "
          "uvicorn.run(create_app(load_model=False), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """The real app under uvicorn with its own SECOPS_HOME (no model needed: the UI drives scripted runs)."""
    from tests.conftest import free_port

    home = tmp_path_factory.mktemp("ui-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SECOPS_API_KEYS", "SECOPS_LLM_BASE_URL")}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env={**env, "SECOPS_HOME": str(home),
                                                                         # the repos live in pytest's temp folders
                                                                         "SECOPS_AGENT_WORKSPACE_ROOTS":
                                                                         str(tmp_path_factory.getbasetemp())},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield base, Workspace(home)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_start_watch_and_approve_a_run_from_the_browser(ui_server, vulnerable_repo, fix_playbook, transport,
                                                         tmp_path) -> None:
    # `make setup` installs Debian's chromium; a missing browser is a failed setup, not a skipped test.
    assert CHROMIUM.exists(), "needs Debian chromium: apt-get install -y chromium (make setup does this)"
    from playwright.sync_api import expect, sync_playwright

    base, workspace = ui_server
    playbook = fix_playbook(delay_s=0.2)
    playbook["actions"].insert(1, {"thought": "Look at the files.", "tool": "run_command",
                                   "args": {"command": "ls"}})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/ui/")
            page.fill("#task", "Fix the bandit findings")
            page.fill("#workspace", str(vulnerable_repo))
            page.select_option("#model", "scripted")
            page.fill("#script", json.dumps(playbook))
            page.select_option("#transport", transport)
            page.click("#start")

            # Steps stream in live; the high-risk command waits for a person.
            expect(page.locator('#timeline li[data-step="plan"]')).to_be_visible(timeout=30_000)
            panel = page.locator("#approval-panel")
            expect(panel).to_be_visible(timeout=60_000)
            expect(page.locator("#approval-tool")).to_have_text("run_command")
            expect(page.locator("#cancel")).to_be_visible()  # a live run can be cancelled
            expect(page.locator("#run-status")).to_have_text("waiting_approval")
            expect(page.locator(".tool", has_text="run_scanner")).to_contain_text("ok")
            page.screenshot(path=str(tmp_path / f"ui-approval-{transport}.png"), full_page=True)

            page.click("#approve")
            expect(panel).to_be_hidden(timeout=30_000)
            # The first verified fix of a server also loads the memory's embedding model before RUN_FINISHED.
            expect(page.locator("#result")).to_contain_text("succeeded", timeout=240_000)
            expect(page.locator(".tool", has_text="propose_patch")).to_contain_text("verified")
            expect(page.locator("#runs li.active")).to_contain_text("succeeded", timeout=15_000)
            expect(page.locator("#result pre")).to_contain_text("+    return ast.literal_eval(expr)")
            # The list entry says when, which run and which model; it and the badge agree; no Cancel when done.
            entry = page.locator("#runs li.active")
            expect(entry.locator(".id")).to_have_text(page.locator("#run-id").text_content())
            expect(entry.locator(".model")).to_have_text("scripted")
            expect(entry.locator("time.started")).to_contain_text(":")
            expect(entry.locator(".badge")).to_have_text(page.locator("#run-status").text_content())
            expect(page.locator("#cancel")).to_be_hidden()
            page.screenshot(path=str(tmp_path / f"ui-done-{transport}.png"), full_page=True)
            run_id = page.locator("#run-id").text_content()
        finally:
            browser.close()

    events = read_events(workspace.agent_runs / f"{run_id}.jsonl")
    decided = [e["payload"]["value"] for e in events if e["type"] == "CUSTOM"
               and e["payload"]["name"] == "approval_decided"]
    assert decided == [{"tool_call_id": decided[0]["tool_call_id"], "approved": True, "reason": "", "by": "web-ui"}]
    assert events[-1]["payload"]["result"]["outcome"] == "succeeded"
    if os.environ.get("SECOPS_UI_SHOTS"):  # keep screenshots for a person to look at
        for shot in tmp_path.glob("ui-*.png"):
            shot.replace(Path(os.environ["SECOPS_UI_SHOTS"]) / shot.name)
