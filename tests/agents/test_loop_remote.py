"""A remote OpenAI-compatible model: the loop asks for a forced tool call and acts on its arguments.

The server here is a small HTTP endpoint on 127.0.0.1 that answers like an OpenAI-compatible engine with tool
support (vLLM, llama.cpp's server); it records what it was sent so the request shape is checked too.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from secops_ai.agents.events import EventLog
from secops_ai.agents.loop import AgentConfig, AgentLoop
from secops_ai.agents.tools.base import ToolRegistry
from secops_ai.agents.trajectory import TrajectoryWriter
from secops_ai.inference.backend import RemoteBackend


def _serve(answers: list[dict]) -> tuple[ThreadingHTTPServer, list[dict]]:
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "body": body})
            name = body["tool_choice"]["function"]["name"]
            answer = answers.pop(0) if name == "act" and answers else None
            if name == "plan":
                message = {"role": "assistant", "content": None, "tool_calls": [{"id": "c0", "type": "function",
                           "function": {"name": "plan", "arguments": json.dumps({"steps": ["note it"]})}}]}
            elif answer is None:  # no tool call: JSON in the content (servers without tool support)
                message = {"role": "assistant", "content": 'Sure: {"value": {"thought": "done", "tool": "finish", '
                                                           '"args": {"summary": "all noted"}}}'}
            else:
                message = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                           "function": {"name": "act", "arguments": json.dumps({"value": answer})}}]}
            data = json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                               "usage": {"prompt_tokens": 50, "completion_tokens": 7}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def test_remote_model_acts_through_forced_tool_calls(tmp_path: Path, note_tool) -> None:
    note = note_tool()
    server, seen = _serve([{"thought": "write it down", "tool": "note", "args": {"text": "x"}}])
    try:
        backend = RemoteBackend(f"http://127.0.0.1:{server.server_port}", "remote-model")
        log = EventLog("remote", TrajectoryWriter(tmp_path / "remote.jsonl"))
        result = AgentLoop(backend, ToolRegistry([note]), None, log, AgentConfig(reflect=False)).run("note x")
    finally:
        server.shutdown()
    assert note.executions == ["x"] and result.summary == "all noted"
    assert result.usage.completion_tokens == 3 * 7 and result.usage.prompt_tokens == 3 * 50
    act = next(r["body"] for r in seen if r["body"]["tool_choice"]["function"]["name"] == "act")
    assert seen[0]["path"] == "/v1/chat/completions" and act["model"] == "remote-model"
    params = act["tools"][0]["function"]["parameters"]
    branches = params["properties"]["value"]["anyOf"]  # the action union, wrapped as an object
    assert [b["properties"]["tool"]["enum"] for b in branches] == [["note"], ["finish"]]
    assert branches[0]["properties"]["args"]["properties"]["text"]["type"] == "string"
