// SecOps AI agents UI: start runs, watch their events live (SSE or WebSocket), approve or refuse, cancel.
// Plain JS, no build step. Everything shown comes from the run's events; text is always set with
// textContent (tool output comes from scanned code and must never be interpreted as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const DEFAULT_PLAYBOOK = {
  plan: ["Scan the repository with bandit", "Show the files (needs approval)", "Finish"],
  actions: [
    {thought: "Find security issues first.", tool: "run_scanner", args: {scanner: "bandit"}},
    {thought: "List the files to see the layout.", tool: "run_command", args: {command: "ls -la"}},
    {thought: "Done.", tool: "finish", args: {summary: "Scanned and listed the repository."}},
  ],
  delay_s: 0.3,
};

let current = null;  // {id, lastSeq, stream, done}

function apiKey() { return $("api-key").value.trim(); }
function headers(extra = {}) {
  const h = {...extra};
  if (apiKey()) h["Authorization"] = "Bearer " + apiKey();
  return h;
}
async function api(path, options = {}) {
  const resp = await fetch(path, {...options, headers: headers(options.headers || {})});
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error((body.error && body.error.message) || resp.statusText);
  return body;
}
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// ---------------------------------------------------------------------------------------------- runs list
async function refreshRuns() {
  let runs;
  try { runs = (await api("/agents/runs")).data; } catch (e) { return; }
  const list = $("runs");
  list.replaceChildren();
  for (const r of runs) {
    const li = el("li");
    li.dataset.runId = r.run_id;
    // The open run's badge and its list entry show one status: the one its live events last set.
    const mine = current && current.id === r.run_id;
    const status = mine && current.status ? current.status : r.status;
    if (mine) li.classList.add("active");
    const meta = el("span", "meta");
    meta.append(el("time", "started", startedAt(r.started_at)), " · ", el("span", "id", r.run_id), " · ",
                el("span", "model", r.model || "default model"));
    li.append(el("span", "task", r.task || r.run_id), el("span", "badge st-" + status, status), meta);
    li.title = r.run_id;
    li.addEventListener("click", () => openRun(r.run_id));
    list.append(li);
  }
}

function startedAt(ts) {
  if (!ts) return "not started";
  const d = new Date(ts * 1000);
  return d.toLocaleString(undefined, {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                                      minute: "2-digit", second: "2-digit"});
}

// ---------------------------------------------------------------------------------------------- new run
function syncModelFields() {
  const m = $("model").value;
  $("script-label").classList.toggle("hidden", m !== "scripted");
  $("model-name").classList.toggle("hidden", m !== "custom");
}

async function startRun(ev) {
  ev.preventDefault();
  $("form-error").textContent = "";
  const body = {
    task: $("task").value, workspace: $("workspace").value, approval: $("approval").value,
    budget: {max_steps: +$("max-steps").value, max_tokens: +$("max-tokens").value,
             max_seconds: +$("max-seconds").value},
  };
  const m = $("model").value;
  if (m === "scripted") {
    try { body.script = JSON.parse($("script").value); } catch (e) {
      $("form-error").textContent = "Playbook is not valid JSON: " + e.message; return;
    }
    body.model = "scripted";
  } else if (m === "custom") {
    body.model = $("model-name").value.trim() || null;
  }
  $("start").disabled = true;
  try {
    const run = await api("/agents/runs", {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)});
    await openRun(run.run_id);
    refreshRuns();
  } catch (e) {
    $("form-error").textContent = e.message;
  } finally {
    $("start").disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------- one run
async function openRun(id) {
  if (current && current.stream) current.stream.close();
  current = {id, lastSeq: -1, stream: null, done: false, step: null, calls: {}, messages: {}, status: null};
  $("run-view").classList.remove("empty");
  $("run-detail").classList.remove("hidden");
  $("timeline").replaceChildren();
  $("result").className = "result hidden";
  $("approval-panel").classList.add("hidden");
  $("run-id").textContent = id;
  for (const li of $("runs").children) li.classList.toggle("active", li.dataset.runId === id);
  try { showSummary(await api("/agents/runs/" + encodeURIComponent(id))); } catch (e) { return; }
  connect();
}

function showSummary(s) {
  $("run-title").textContent = s.task;
  $("run-model").textContent = s.model || "default model";
  $("run-workspace").textContent = s.workspace;
  setStatus(s.status);
}

const LIVE = ["running", "queued", "waiting_approval"];

function setStatus(status) {
  if (current) current.status = status;
  const b = $("run-status");
  b.textContent = status;
  b.className = "badge st-" + status;
  const live = LIVE.includes(status);
  $("cancel").disabled = !live;
  $("cancel").classList.toggle("hidden", !live);  // a finished run cannot be cancelled: no button
  const li = current && [...$("runs").children].find((x) => x.dataset.runId === current.id);
  const badge = li && li.querySelector(".badge");
  if (badge) { badge.textContent = status; badge.className = "badge st-" + status; }
}

function connect() {
  const run = current;
  if ($("transport").value === "ws" && !apiKey()) connectWs(run); else connectSse(run);
}

// SSE over fetch (EventSource cannot send an Authorization header); resumes with Last-Event-ID.
function connectSse(run) {
  const ctrl = new AbortController();
  run.stream = {close: () => ctrl.abort()};
  (async () => {
    try {
      const h = headers({Accept: "text/event-stream"});
      if (run.lastSeq >= 0) h["Last-Event-ID"] = String(run.lastSeq);
      const resp = await fetch("/agents/runs/" + encodeURIComponent(run.id) + "/events", {headers: h, signal: ctrl.signal});
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += decoder.decode(value, {stream: true});
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          if (data) handle(run, JSON.parse(data));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    if (!run.done && current === run) setTimeout(() => current === run && connectSse(run), 1000);
  })();
}

function connectWs(run) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/agents/runs/${encodeURIComponent(run.id)}/ws?after=${run.lastSeq}`);
  run.stream = {close: () => ws.close(), send: (m) => ws.send(JSON.stringify(m))};
  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.type === "ack") {
      if (!ev.payload.ok) alert(ev.payload.error);
      return;
    }
    handle(run, ev);
  };
  ws.onclose = () => { if (!run.done && current === run) setTimeout(() => current === run && connectWs(run), 1000); };
}

// ---------------------------------------------------------------------------------------------- events
function handle(run, ev) {
  if (run !== current || ev.seq <= run.lastSeq) return;  // a resumed stream never repeats
  run.lastSeq = ev.seq;
  const p = ev.payload;
  const tl = $("timeline");
  switch (ev.type) {
    case "RUN_STARTED":
      setStatus("running");
      refreshRuns();
      break;
    case "STEP_STARTED": {
      const li = el("li", "step");
      li.dataset.step = p.stepName;
      li.append(el("div", "step-name", p.stepName));
      tl.append(li);
      run.step = li;
      break;
    }
    case "TEXT_MESSAGE_START":
      run.messages[p.messageId] = el("div", "msg");
      target(run).append(run.messages[p.messageId]);
      break;
    case "TEXT_MESSAGE_CONTENT":
      if (run.messages[p.messageId]) run.messages[p.messageId].textContent += p.delta;
      break;
    case "TOOL_CALL_START": {
      const card = el("div", "tool");
      card.dataset.toolCallId = p.toolCallId;
      const head = el("div");
      head.append(el("span", "name", p.toolCallName), " ", el("span", "badge risk-" + p.risk, p.risk + " risk"));
      const status = el("span", "status badge", "running");
      head.append(status);
      card.append(head);
      run.calls[p.toolCallId] = {card, status, args: el("pre", "args", "")};
      card.append(run.calls[p.toolCallId].args);
      target(run).append(card);
      break;
    }
    case "TOOL_CALL_ARGS":
      if (run.calls[p.toolCallId]) run.calls[p.toolCallId].args.textContent += p.delta;
      break;
    case "TOOL_CALL_RESULT": {
      const call = run.calls[p.toolCallId];
      if (!call) break;
      const label = p.refused ? "refused" : p.reused ? "reused" : p.ok ? "ok" : "failed";
      call.status.textContent = label;
      call.status.className = "status badge " + (p.ok ? "st-succeeded" : "st-failed");
      if (p.refused) call.card.classList.add("refused"); else if (!p.ok) call.card.classList.add("failed");
      const text = (p.content || "") + (p.error && !p.refused ? "\n" + p.error : "");
      if (text.trim()) call.card.append(el("pre", "output", text));
      break;
    }
    case "CUSTOM":
      custom(run, p.name, p.value);
      break;
    case "STATE_SNAPSHOT":
      usage(p.snapshot.usage);
      break;
    case "RUN_FINISHED":
    case "RUN_ERROR":
      finish(run, ev);
      break;
  }
}

function target(run) { return run.step || $("timeline"); }

function custom(run, name, value) {
  if (name === "approval_requested") {
    $("approval-tool").textContent = value.tool;
    $("approval-thought").textContent = value.thought || "";
    $("approval-args").textContent = JSON.stringify(value.args, null, 2);
    $("approval-panel").dataset.toolCallId = value.tool_call_id;
    $("approval-panel").classList.remove("hidden");
    setStatus("waiting_approval");
    const call = run.calls[value.tool_call_id];
    if (call) { call.status.textContent = "waiting for approval"; call.status.className = "status badge st-waiting_approval"; }
  } else if (name === "approval_decided") {
    $("approval-panel").classList.add("hidden");
    setStatus("running");
    target(run).append(el("div", "critique", `${value.approved ? "Approved" : "Refused"} by ${value.by}` +
                                             (value.reason ? `: ${value.reason}` : "")));
  } else if (name === "critique") {
    target(run).append(el("div", "critique", `Self-critique ${Number(value.score).toFixed(2)}` +
                                             (value.critique ? ` — ${value.critique}` : "") +
                                             (value.revise ? " (revising plan)" : "")));
  } else if (name === "action_invalid") {
    target(run).append(el("div", "critique", "Invalid action: " + value.error));
  } else if (name === "usage") {
    usage(value);
  } else if (name === "memory_saved") {
    target(run).append(el("div", "critique", "Fix saved to long-term memory for later runs."));
  }
}

function usage(u) {
  if (!u) return;
  $("usage").textContent = `steps ${u.steps} · tokens ${u.completion_tokens} generated / ${u.prompt_tokens} prompt · ${u.seconds}s`;
}

function finish(run, ev) {
  run.done = true;
  $("approval-panel").classList.add("hidden");
  const box = $("result");
  if (ev.type === "RUN_ERROR") {
    setStatus("error");
    box.className = "result error";
    box.textContent = "Error: " + ev.payload.message;
  } else {
    const r = ev.payload.result || {};
    setStatus(r.outcome);
    box.className = "result " + r.outcome;
    box.textContent = `${r.outcome}${r.summary ? ": " + r.summary : ""}`;
    if (r.patch) {  // the verified change, for review (it was applied to a sandbox copy only)
      box.append(el("div", "critique", "Verified patch (the original folder is unchanged):"), el("pre", "patch", r.patch));
    }
    usage(r.usage);
  }
  if (run.stream) run.stream.close();
  refreshRuns();
}

async function decide(approved) {
  const run = current;
  const body = {approved, reason: $("approval-reason").value, by: "web-ui",
                tool_call_id: $("approval-panel").dataset.toolCallId};
  try {
    await api(`/agents/runs/${encodeURIComponent(run.id)}/approve`, {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    $("approval-reason").value = "";
  } catch (e) { alert(e.message); }
}

async function cancelRun() {
  try { await api(`/agents/runs/${encodeURIComponent(current.id)}/cancel`, {method: "POST"}); }
  catch (e) { alert(e.message); }
}

// ---------------------------------------------------------------------------------------------- wiring
$("script").value = JSON.stringify(DEFAULT_PLAYBOOK, null, 2);
$("api-key").value = localStorage.getItem("secops-api-key") || "";
$("api-key").addEventListener("change", () => { localStorage.setItem("secops-api-key", apiKey()); refreshRuns(); });
$("model").addEventListener("change", syncModelFields);
$("new-run").addEventListener("submit", startRun);
$("refresh").addEventListener("click", refreshRuns);
$("approve").addEventListener("click", () => decide(true));
$("refuse").addEventListener("click", () => decide(false));
$("cancel").addEventListener("click", cancelRun);
syncModelFields();
refreshRuns();
setInterval(refreshRuns, 5000);
