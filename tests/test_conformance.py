"""API conformance: a bounded schemathesis run against a real server with a tiny model (issue 10, Conformance).

Every operation of the OpenAPI document gets a few generated requests (examples, coverage, fuzzing and
stateful phases, every check), once with ``SECOPS_API_KEYS`` set (the key sent, and each operation also tried
without it) and once without keys. The run must show no server error, no request past its timeout (a hang), no
status code or content type the document does not list, and every other check passing.

One deliberate setting: ``positive_data_acceptance`` also accepts 400 and 413. The schema cannot say that a
workspace must exist under SECOPS_AGENT_WORKSPACE_ROOTS, that a training config must parse, or that a prompt
must not be empty, so a schema-valid request may still be refused with an OpenAI-shaped 400 (or 413 for a
folder too large to copy).

Agents cannot touch real folders: the server's workspace root is an empty test folder and approval is 'deny'.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

KEY = "conformance-key-1"
EXAMPLES_PER_OPERATION = 5
REQUEST_TIMEOUT_S = 20
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "413", "429"]
"""


def _failures(junit: Path) -> list[str]:
    if not junit.is_file():
        return []
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for problem in (*case.findall("failure"), *case.findall("error")):
            text = (problem.get("message") or "") + "\n" + (problem.text or "")
            out.append(f"{case.get('name')}: {text.strip()[:1500]}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("with_keys", [True, False], ids=["api-keys", "no-keys"])
def test_schemathesis_finds_no_server_error_hang_or_undocumented_status(start_server, tiny_llama_dir, tmp_path,
                                                                        with_keys) -> None:
    roots = tmp_path / "agent-roots"
    (roots / "repo").mkdir(parents=True)
    (roots / "repo" / "app.py").write_text("import subprocess\nsubprocess.call('ls', shell=True)\n")
    env = {
        "SECOPS_HOME": str(tmp_path / "home"), "SECOPS_BASE_MODEL": str(tiny_llama_dir),
        "SECOPS_AGENT_WORKSPACE_ROOTS": str(roots), "SECOPS_AGENT_APPROVAL": "deny",
        "SECOPS_MAX_NEW_TOKENS": "16", "SECOPS_LOG_LEVEL": "WARNING", "SECOPS_API_KEYS": KEY if with_keys else "",
    }
    server = start_server(env)
    headers = {"Authorization": f"Bearer {KEY}"} if with_keys else {}
    schema = httpx.get(f"{server.base_url}/openapi.json", headers=headers, timeout=30).json()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert "422" not in codes, f"{method} {path}: validation errors are 400 here, not 422"
            assert "400" in codes or not (op.get("parameters") or op.get("requestBody")), f"{method} {path}"
    events = schema["paths"]["/agents/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]
    assert set(events) == {"text/event-stream"}
    assert "text/event-stream" in schema["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]

    schema_file, config, junit = tmp_path / "openapi.json", tmp_path / "schemathesis.toml", tmp_path / "junit.xml"
    schema_file.write_text(json.dumps(schema))
    config.write_text(CONFIG)
    cmd = [str(Path(sys.executable).parent / "st"), "--config-file", str(config), "run", str(schema_file),
           "--url", server.base_url, "--checks", "all", "--max-examples", str(EXAMPLES_PER_OPERATION),
           "--seed", "10", "--request-timeout", str(REQUEST_TIMEOUT_S), "--generation-database", "none",
           "--report", "junit", "--report-junit-path", str(junit), "--no-color"]
    if with_keys:
        cmd += ["--header", f"Authorization: Bearer {KEY}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    report = proc.stdout[-6000:] + proc.stderr[-2000:]
    failures = _failures(junit)
    assert proc.returncode == 0 and not failures, "\n\n".join(failures) or report
    assert "Test cases:" in proc.stdout and " generated" in proc.stdout, report

    # the engine still serves after the run (no wedged batch), and no agent ran outside the test root
    chat = httpx.post(f"{server.base_url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert chat.status_code == 200, chat.text
    runs = httpx.get(f"{server.base_url}/agents/runs", headers=headers, timeout=30).json()["data"]
    for run in runs:
        folder = Path(run["workspace"])
        folder = folder if folder.is_absolute() else roots / folder
        assert roots.resolve() in [folder.resolve(), *folder.resolve().parents], run


def test_openapi_document_lists_what_the_routes_raise(workspace, monkeypatch) -> None:
    """Fast, in-process: every status a route function raises itself is documented; no 422; keys declared."""
    import ast
    import inspect
    import textwrap

    from fastapi import routing

    from secops_ai.api.app import create_app
    from secops_ai.config import get_settings

    monkeypatch.setenv("SECOPS_API_KEYS", KEY)
    get_settings.cache_clear()
    app = create_app(get_settings(), load_model=False)
    schema = app.openapi()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    checked = 0
    for ctx in routing.iter_route_contexts(app.routes):
        endpoint = getattr(ctx, "endpoint", None)
        ops = schema["paths"].get(getattr(ctx, "path_format", ""), {})
        if endpoint is None or not endpoint.__module__.startswith("secops_ai.api.routers"):
            continue
        for method in (m.lower() for m in (ctx.methods or ())):
            if method not in ops:
                continue
            op = ops[method]
            tree = ast.parse(textwrap.dedent(inspect.getsource(endpoint)))
            raised = {str(n.args[0].value) for n in ast.walk(tree) if isinstance(n, ast.Call)
                      and getattr(n.func, "id", None) == "APIError" and n.args and isinstance(n.args[0], ast.Constant)}
            missing = raised - set(op["responses"])
            assert not missing, f"{method.upper()} {ctx.path_format} raises undocumented {sorted(missing)}"
            assert "422" not in op["responses"], f"{method.upper()} {ctx.path_format}"
            if ctx.path_format not in ("/healthz", "/readyz"):
                assert op.get("security") == [{"bearer": []}], f"{ctx.path_format}: behind the key, not declared"
                assert "401" in op["responses"]
            checked += 1
    assert checked >= 15
