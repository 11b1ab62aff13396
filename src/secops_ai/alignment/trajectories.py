"""Agent runs -> training data (`secops-ai data from-trajectories`).

- **SFT chats** from successful runs only: the run finished ``succeeded``, its success check passed and a
  patch was verified by re-running the scanner (the finding is gone). The chat is the task, then each
  action the agent took (as the JSON the loop expects) followed by the tool's output, quoted as untrusted
  data the way the loop quotes it.
- **Preference pairs** from two runs of the same task: at the first step where their actions differ, the
  action a person approved beats the one a person refused; otherwise the action of the run that succeeded
  beats the one of the run that failed. The prompt is the task plus the shared history before that step.

Every run used is named in the manifest (``generator.config.runs``, and each pair's two run ids), and each
trajectory file is pinned by its sha256 in ``sources``. Runs are read in run-id order, so the same runs give
byte-identical datasets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops_ai.data.store import DatasetStore, GeneratorInfo, SourceRef

PROVIDER = "trajectories"
VERSION = "1"
OUTPUT_CHARS = 1500
AGENT_SYSTEM = ("You are a security engineer agent. You fix security findings in a code repository by calling "
                "tools. Answer with one JSON action: {\"thought\": ..., \"tool\": ..., \"args\": {...}}.")


@dataclass
class Step:
    call_id: str
    tool: str
    args: dict[str, Any]
    thought: str = ""
    ok: bool | None = None
    refused: bool = False
    approved: bool | None = None  # None: no person was asked
    output: str = ""
    verified: bool = False

    def action_json(self) -> str:
        return json.dumps({"thought": self.thought, "tool": self.tool, "args": self.args}, ensure_ascii=False,
                          sort_keys=True)

    def key(self) -> str:
        return json.dumps([self.tool, self.args], sort_keys=True)


@dataclass
class Trace:
    run_id: str
    task: str = ""
    outcome: str = "interrupted"
    success: bool = False
    summary: str = ""
    steps: list[Step] = field(default_factory=list)
    sha256: str = ""

    @property
    def verified(self) -> bool:
        return any(s.verified for s in self.steps)

    @property
    def successful(self) -> bool:
        return self.outcome == "succeeded" and self.success and self.verified


def parse_trace(run_id: str, events: list[dict[str, Any]], sha256: str = "") -> Trace:
    t = Trace(run_id=run_id, sha256=sha256)
    by_call: dict[str, Step] = {}
    for ev in events:
        kind, p = ev.get("type"), ev.get("payload") or {}
        if kind == "RUN_STARTED":
            t.task = str(p.get("task", ""))
        elif kind == "TOOL_CALL_START":
            step = Step(call_id=str(p.get("toolCallId")), tool=str(p.get("toolCallName")), args={})
            by_call[step.call_id] = step
            t.steps.append(step)
        elif kind == "TOOL_CALL_ARGS" and p.get("toolCallId") in by_call:
            try:
                args = json.loads(p.get("delta") or "{}")
            except json.JSONDecodeError:
                args = {}
            by_call[p["toolCallId"]].args = args if isinstance(args, dict) else {}
        elif kind == "TOOL_CALL_RESULT" and p.get("toolCallId") in by_call:
            s = by_call[p["toolCallId"]]
            s.ok, s.refused = bool(p.get("ok")), bool(p.get("refused"))
            s.output = str(p.get("content") or p.get("error") or "")
            s.verified = bool(p.get("ok")) and (p.get("data") or {}).get("verified") is True
        elif kind == "CUSTOM" and p.get("name") in ("approval_requested", "approval_decided"):
            v = p.get("value") or {}
            s = by_call.get(str(v.get("tool_call_id")))
            if s is not None and p["name"] == "approval_requested":
                s.thought = str(v.get("thought") or "")[:400]
            elif s is not None:
                s.approved = bool(v.get("approved"))
        elif kind == "RUN_FINISHED":
            result = p.get("result") or {}
            t.outcome = str(result.get("outcome", "finished"))
            t.success = bool(result.get("success"))
            t.summary = str(result.get("summary") or "")
        elif kind == "RUN_ERROR":
            t.outcome = "error"
    return t


def _quote(step: Step) -> str:
    status = "refused" if step.refused else ("ok" if step.ok else "error")
    text = step.output[:OUTPUT_CHARS].replace("</tool_output>", "</tool_output_>")
    return f'<tool_output tool="{step.tool}" status="{status}">\n{text}\n</tool_output>'


def _history(task: str, steps: list[Step]) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": AGENT_SYSTEM}, {"role": "user", "content": f"Task: {task}"}]
    for s in steps:
        msgs.append({"role": "assistant", "content": s.action_json()})
        msgs.append({"role": "user", "content": _quote(s)})
    return msgs


def sft_record(t: Trace) -> dict[str, Any]:
    msgs = _history(t.task, t.steps)
    finish = json.dumps({"thought": "", "tool": "finish", "args": {"summary": t.summary or "done"}},
                        ensure_ascii=False, sort_keys=True)
    msgs.append({"role": "assistant", "content": finish})
    return {"messages": msgs, "metadata": {"task": "agent_trajectory", "ids": [], "source": t.run_id}}


def _label(t: Trace, s: Step) -> int | None:
    """+1 good, -1 bad, None unknown: a person's decision first, then the run's outcome."""
    if s.approved is True:
        return 1
    if s.approved is False or s.refused:
        return -1
    if t.successful:
        return 1
    if t.outcome in ("failed", "budget_exhausted", "error"):
        return -1
    return None


def pair_record(a: Trace, b: Trace) -> dict[str, Any] | None:
    """A pair from two runs of one task, at their first differing action; None when no preference holds."""
    i = 0
    while i < len(a.steps) and i < len(b.steps) and a.steps[i].key() == b.steps[i].key():
        i += 1
    if i >= len(a.steps) or i >= len(b.steps):
        return None
    la, lb = _label(a, a.steps[i]), _label(b, b.steps[i])
    if la is None or lb is None or la == lb:
        return None
    good, bad = (a, b) if la > lb else (b, a)
    by_person = good.steps[i].approved is True or bad.steps[i].approved is False or bad.steps[i].refused
    return {"prompt": _history(good.task, good.steps[:i]),
            "chosen": [{"role": "assistant", "content": good.steps[i].action_json()}],
            "rejected": [{"role": "assistant", "content": bad.steps[i].action_json()}],
            "metadata": {"task": "agent_step_preference", "ids": [], "source": f"{good.run_id}>{bad.run_id}",
                         "template": "approved-vs-refused" if by_person else "success-vs-failure"}}


def load_traces(runs_dir: Path, run_ids: list[str] | None = None) -> list[Trace]:
    from secops_ai.agents.trajectory import TrajectoryError, read_events, trajectory_path

    explicit = run_ids is not None
    if run_ids is None:
        run_ids = sorted(p.stem for p in runs_dir.glob("*.jsonl") if not p.is_symlink())
    traces = []
    for rid in sorted(set(run_ids)):
        path = trajectory_path(runs_dir, rid)  # refuses ids that are not plain names
        try:
            events = read_events(path)
        except TrajectoryError:
            if explicit:  # a run the user named must exist and parse
                raise
            continue
        traces.append(parse_trace(rid, events, hashlib.sha256(path.read_bytes()).hexdigest()))
    return traces


def build_datasets(store: DatasetStore, runs_dir: Path, name: str, *,
                   run_ids: list[str] | None = None) -> dict[str, Any]:
    """Write ``trajectories/<name>-sft`` and ``trajectories/<name>-pref``; returns their refs and counts."""
    traces = [t for t in load_traces(runs_dir, run_ids) if t.task]
    if not traces:
        raise ValueError(f"no finished agent runs with a task in {runs_dir}")
    good = [t for t in traces if t.successful]
    by_task: dict[str, list[Trace]] = {}
    for t in traces:
        by_task.setdefault(" ".join(t.task.split()).lower(), []).append(t)
    pairs = []
    for group in by_task.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                rec = pair_record(a, b)
                if rec:
                    pairs.append(rec)
    sources = [SourceRef(uri=f"agent_run:{t.run_id}", sha256=t.sha256, format="agent-trajectory") for t in traces]
    runs = [{"run_id": t.run_id, "outcome": t.outcome, "verified_patch": t.verified} for t in traces]
    out: dict[str, Any] = {"runs": len(traces), "successful": len(good), "sft": None, "pref": None,
                           "sft_records": len(good), "pairs": len(pairs)}
    if good:
        out["sft"] = store.create(PROVIDER, f"{name}-sft", "chat", [sft_record(t) for t in good], sources=sources,
                                  generator=GeneratorInfo(name="from-trajectories-sft", version=VERSION, config={
                                      "runs": runs, "used": [t.run_id for t in good]}),
                                  description="SFT chats from agent runs with a verified patch").ref
    if pairs:
        out["pref"] = store.create(PROVIDER, f"{name}-pref", "preference", pairs, sources=sources,
                                   generator=GeneratorInfo(name="from-trajectories-pref", version=VERSION, config={
                                       "runs": runs, "pairs": [p["metadata"]["source"] for p in pairs]}),
                                   description="Step preferences between runs of the same task").ref
    return out
