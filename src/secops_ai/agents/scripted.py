"""A scripted model: a :class:`~secops_ai.inference.backend.ChatBackend` that answers from a playbook.

Tests use it for deterministic runs; operators use it as a *playbook*: a fixed list of actions that still goes
through the loop's validation, approvals, idempotency and trajectories (``model: "scripted"`` in
``POST /agents/runs``, ``--script FILE`` in the CLI). Answers are picked by what the loop asks for (a plan, an
action or a critique, recognised from the JSON schema), so a script does not have to interleave critiques.
When a list runs out: the plan repeats its last entry, actions become ``finish``, critiques are neutral.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from secops_ai.inference.types import GenerationParams, Message

Reply = dict[str, Any] | Callable[[list[Message]], dict[str, Any]]


class Script(BaseModel):
    """A playbook: what the scripted model answers, in order, for each kind of question."""

    model_config = ConfigDict(extra="forbid")

    plan: list[str] = Field(default_factory=lambda: ["Follow the playbook."], min_length=1)
    actions: list[dict[str, Any]] = Field(default_factory=list, description="Action objects: thought, tool, args.")
    critiques: list[dict[str, Any]] = Field(default_factory=list, description="Critique objects: score, critique.")
    delay_s: float = Field(default=0.0, ge=0, le=60, description="Pretend thinking time before each answer.")


class ScriptedBackend:
    """Answers plans, actions and critiques from queues; ``chat_json`` is what the loop calls."""

    def __init__(self, actions: list[Reply] | None = None, *, plan: list[str] | None = None,
                 critiques: list[Reply] | None = None, delay_s: float = 0.0, name: str = "scripted") -> None:
        self.name = name
        self.plan = plan or ["Follow the playbook."]
        self.actions = list(actions or [])
        self.critiques = list(critiques or [])
        self.delay_s = delay_s
        self.calls: list[tuple[str, list[Message]]] = []  # what was asked, for tests and debugging

    @classmethod
    def from_script(cls, script: Script | dict[str, Any]) -> ScriptedBackend:
        s = script if isinstance(script, Script) else Script.model_validate(script)
        return cls(s.actions, plan=s.plan, critiques=s.critiques, delay_s=s.delay_s)

    def chat_json(self, messages: list[Message], schema: dict[str, Any], params: GenerationParams | None = None) -> str:
        kind = _kind(schema)
        self.calls.append((kind, messages))
        if self.delay_s:
            time.sleep(self.delay_s)
        if kind == "plan":
            answer: dict[str, Any] = {"steps": self.plan}
        elif kind == "critique":
            answer = self._next(self.critiques, messages) or {"score": 0.5, "critique": "", "revise": False}
            answer = {"critique": "", "revise": False, **answer}
        else:
            answer = self._next(self.actions, messages) or {
                "thought": "The playbook is done.", "tool": "finish", "args": {"summary": "playbook finished"}}
            answer = {"thought": "", **answer}
        return json.dumps(answer)

    def chat(self, conversations: list[list[Message]], params: GenerationParams | None = None) -> list[str]:
        """Plain chat (no schema): the next action as JSON text, for callers that parse it themselves."""
        return [self.chat_json(conv, {"anyOf": []}, params) for conv in conversations]

    @staticmethod
    def _next(queue: list[Reply], messages: list[Message]) -> dict[str, Any] | None:
        if not queue:
            return None
        item = queue.pop(0)
        return item(messages) if callable(item) else dict(item)


def _kind(schema: dict[str, Any]) -> str:
    props = schema.get("properties", {})
    if "steps" in props:
        return "plan"
    if "score" in props:
        return "critique"
    return "action"
