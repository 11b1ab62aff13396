"""Fixtures for the agent tests (shared by the loop/API helper and the runtime helper: add, don't rewrite)."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult

# ------------------------------------------------------------------------------ loop / API / UI (agents engine)
VULNERABLE_APP = '''import ast


def parse(expr):
    return eval(expr)
'''

FIXED_APP = VULNERABLE_APP.replace("eval(expr)", "ast.literal_eval(expr)")
FIX_DIFF = "".join(difflib.unified_diff(VULNERABLE_APP.splitlines(keepends=True), FIXED_APP.splitlines(keepends=True),
                                        "a/app.py", "b/app.py"))


@pytest.fixture
def vulnerable_repo(tmp_path: Path) -> Path:
    """A one-file Python repo with one bandit finding (B307: eval); FIX_DIFF fixes it."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text(VULNERABLE_APP)
    return root


@pytest.fixture
def fix_playbook() -> Callable[..., dict[str, Any]]:
    """A scripted-model playbook: scan with bandit, then propose FIX_DIFF verified by bandit."""

    def make(**extra: Any) -> dict[str, Any]:
        return {
            "plan": ["Scan with bandit", "Patch the eval call", "Verify"],
            "actions": [
                {"thought": "Find the findings first.", "tool": "run_scanner", "args": {"scanner": "bandit"}},
                {"thought": "eval on input is B307; use ast.literal_eval.", "tool": "propose_patch",
                 "args": {"diff": FIX_DIFF, "scanner": "bandit"}},
            ],
            **extra,
        }

    return make


class NoteArgs(ToolArgs):
    text: str


class NoteTool(Tool):
    """A tool that records each real execution (to count them); risk set per instance."""

    name = "note"
    description = "Write a note."
    input_model = NoteArgs
    risk = "low"

    def __init__(self, name: str = "note", risk: str = "low") -> None:
        self.name = name  # type: ignore[misc]
        self.risk = risk  # type: ignore[misc]
        self.executions: list[str] = []

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        assert isinstance(args, NoteArgs)
        self.executions.append(args.text)
        return ToolResult.success(f"noted {args.text}", {"verified": args.text == "done"})


@pytest.fixture
def note_tool() -> Callable[..., NoteTool]:
    """``note_tool(name="note", risk="low")``: a real tool whose ``executions`` lists what it ran."""
    return NoteTool


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    def wait(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s")

    return wait


@pytest.fixture
def agent_client(workspace, tmp_path, monkeypatch):
    """A TestClient over the real app (no model loaded); agent runs use the real tool registry and sandbox.

    API callers may only use folders under ``SECOPS_AGENT_WORKSPACE_ROOTS``: here the test's ``tmp_path``.
    """
    from fastapi.testclient import TestClient

    from secops_ai.api.app import create_app
    from secops_ai.config import get_settings

    monkeypatch.setenv("SECOPS_AGENT_WORKSPACE_ROOTS", str(tmp_path))
    get_settings.cache_clear()

    app = create_app(get_settings(), load_model=False)
    with TestClient(app) as client:
        yield client
        runs = getattr(app.state, "agent_runs", None)
        if runs is not None:
            runs.shutdown()
