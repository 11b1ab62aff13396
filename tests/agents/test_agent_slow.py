"""The loop with the real bundled SmolLM2-135M: every step is schema-valid and the budget holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secops_ai.agents.actions import Action, Budget, Critique, Plan
from secops_ai.agents.events import EventLog
from secops_ai.agents.loop import AgentConfig, AgentLoop, ApprovalGate
from secops_ai.agents.sandbox import Sandbox
from secops_ai.agents.tools.base import ToolContext, ToolRegistry, idempotency_key
from secops_ai.agents.tools.knowledge import LookupKnowledge
from secops_ai.agents.tools.reports import ParseReport
from secops_ai.agents.tools.scanners import RunScanner
from secops_ai.agents.trajectory import TrajectoryWriter, read_events


@pytest.mark.slow
def test_smollm2_agent_emits_only_valid_steps_within_its_budget(bundled_base_dir: Path, vulnerable_repo: Path,
                                                                 tmp_path: Path) -> None:
    from secops_ai.inference.backend import LocalBackend

    backend = LocalBackend.load(bundled_base_dir)
    registry = ToolRegistry([RunScanner(), ParseReport(), LookupKnowledge()])
    budget = Budget(max_steps=2, max_tokens=96, tokens_per_call=24, max_seconds=45)
    with Sandbox() as sandbox:
        copy = sandbox.working_copy(vulnerable_repo)
        ctx = ToolContext(run_id="slow", workspace=copy, original=vulnerable_repo, sandbox=sandbox)
        log = EventLog("slow", TrajectoryWriter(tmp_path / "slow.jsonl"))
        loop = AgentLoop(backend, registry, ctx, log, AgentConfig(budget=budget), gate=ApprovalGate("deny"),
                         idempotency_key=idempotency_key)
        result = loop.run("Scan this Python repository with bandit and report the findings.")

    events = read_events(tmp_path / "slow.jsonl")
    customs = [e["payload"] for e in events if e["type"] == "CUSTOM"]
    assert [c for c in customs if c["name"] == "action_invalid"] == []  # the constraint made every answer valid
    Plan.model_validate(next(c["value"] for c in customs if c["name"] == "plan"))
    for c in customs:
        if c["name"] == "critique":
            Critique.model_validate({k: c["value"][k] for k in ("score", "critique", "revise")})
    for e in events:
        if e["type"] == "TOOL_CALL_START":
            name = e["payload"]["toolCallName"]
            args = json.loads(next(a["payload"]["delta"] for a in events if a["type"] == "TOOL_CALL_ARGS"
                                   and a["payload"]["toolCallId"] == e["payload"]["toolCallId"]))
            registry.validate(name, args)  # the arguments really match the tool's input model
            Action(tool=name, args=args)
    usage = [e["payload"]["snapshot"]["usage"] for e in events if e["type"] == "STATE_SNAPSHOT"]
    assert usage and all(u["completion_tokens"] <= budget.max_tokens for u in usage)
    assert result.usage.steps <= budget.max_steps and result.usage.completion_tokens <= budget.max_tokens
    # Model calls stop at the deadline; only a tool already running (a bandit scan, seconds) may overrun it.
    assert result.usage.seconds <= budget.max_seconds + 20
    assert events[-1]["type"] == "RUN_FINISHED" and result.outcome in ("budget_exhausted", "failed")
