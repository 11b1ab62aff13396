"""Where evolve runs live and what they report: `evolve status`, `evolve show`, the candidate's model card section."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

from secops_ai.config import Settings

CARD_START = "<!-- secops:evolve:start -->"
CARD_END = "<!-- secops:evolve:end -->"


class RunNotFound(LookupError):
    pass


def runs_root(settings: Settings) -> Path:
    return settings.workspace.storage / "evolve"


def is_running(settings: Settings, run_id: str) -> bool:
    """True while some process holds the run's lock (a run in progress)."""
    lock = runs_root(settings) / run_id / ".lock"
    if not lock.is_file():
        return False
    with lock.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def list_runs(settings: Settings) -> list[dict[str, Any]]:
    root = runs_root(settings)
    out = []
    for path in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        try:
            out.append(_live_status(settings, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError, KeyError):
            continue
    return out


def _live_status(settings: Settings, state: dict[str, Any]) -> dict[str, Any]:
    """A state that says running/queued while no process holds the run's lock was killed: interrupted."""
    if state.get("status") in ("running", "queued") and not is_running(settings, state["run_id"]):
        state = {**state, "status": "interrupted" if state.get("status") == "running" else "queued"}
    return state


def get_run(settings: Settings, run_id: str) -> dict[str, Any]:
    if not run_id or "/" in run_id or run_id.startswith(".") or "\x00" in run_id:
        raise RunNotFound(f"no evolve run {run_id!r}")
    path = runs_root(settings) / run_id / "state.json"
    if not path.is_file():
        raise RunNotFound(f"no evolve run {run_id!r} (see `secops-ai evolve status`)")
    return _live_status(settings, json.loads(path.read_text(encoding="utf-8")))


def summary(state: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per iteration: start model, pairs, candidate, gate outcome."""
    rows = []
    for it in state.get("iterations", []):
        st = it.get("stages", {})
        pairs = st.get("pairs", {})
        gate = st.get("gate", {})
        status = it.get("status")
        if status == "running" and state.get("status") not in ("running", "queued"):
            status = state.get("status")  # the run stopped mid-iteration (interrupted, failed)
        rows.append({"run_id": state["run_id"], "iteration": it["index"], "status": status,
                     "start_model": it.get("start_model") or "base",
                     "actor_pairs": (pairs.get("actor") or {}).get("pairs"),
                     "judge_pairs": (pairs.get("judge") or {}).get("pairs"),
                     "candidate": it.get("candidate"), "gate_passed": gate.get("gate_passed"),
                     "no_regression": gate.get("no_regression_passed"), "promoted": gate.get("promoted"),
                     "seconds": round(sum(s.get("seconds", 0) for s in st.values()), 1)})
    return rows


def iteration_markdown(it: dict[str, Any]) -> str:
    st = it.get("stages", {})
    lines = [f"### Iteration {it['index']}: {it.get('start_model') or 'base'} → {it.get('candidate') or '(none)'}",
             ""]
    lines.append("| stage | seconds | output |")
    lines.append("| --- | ---: | --- |")
    for name, s in st.items():
        what = s.get("file") or ", ".join(f"{k}: {v}" for k, v in (s.get("datasets") or {}).items()) \
            or s.get("run_name") or s.get("gate_message", "")
        lines.append(f"| {name} | {s.get('seconds', 0):.1f} | {what} |")
    pairs = st.get("pairs")
    if pairs:
        a, j, agree = pairs.get("actor", {}), pairs.get("judge", {}), pairs.get("judge_verifier", {})
        lines += ["", f"- actor pairs: {a.get('pairs')} from {a.get('prompts')} prompts (dropped: "
                      f"{a.get('dropped')}); judge pairs: {j.get('pairs')} ({j.get('verifier_decided')} decided by "
                      f"verifiers, meta-judge agreed with them: {j.get('meta_vs_verifier_agreement')})",
                  f"- chosen answers by origin: {a.get('chosen_origin_share')}",
                  f"- average length: chosen {a.get('avg_chosen_chars')} chars, rejected "
                  f"{a.get('avg_rejected_chars')} chars",
                  f"- judge–verifier agreement: {agree.get('agreement')} over {agree.get('verified_and_judged')} "
                  f"verified answers ({agree.get('conflicts')} conflicts, verifier won each)"]
    keyed = st.get("keyed")
    if keyed and not keyed.get("skipped"):
        kinds = keyed.get("kinds") or {"multiple-choice": keyed.get("items")}
        mix = ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
        lines += [f"- keyed stage: {keyed.get('items')} items ({mix}; {keyed.get('dropped_as_contaminated')} "
                  f"dropped as gate items) + {keyed.get('replay')} replayed chosen answers in `{keyed.get('dataset')}`,"
                  f" trained on `{keyed.get('continues', keyed.get('preference_run')) or 'base'}`"]
    gate = st.get("gate")
    if gate:
        lines += ["", f"Gate `{gate['gate']}`: {'passed' if gate['gate_passed'] else 'failed'}; no regression vs "
                      f"`{gate['compared_to']}` on safety suites: "
                      f"{'passed' if gate['no_regression_passed'] else 'failed ' + json.dumps(gate['regressions'])}"
                      f"; promoted: {gate['promoted']}.", "",
                  f"| suite | metric | {gate['compared_to']} (before) | candidate (after) |",
                  "| --- | --- | ---: | ---: |"]
        for suite, metrics in gate["after"].items():
            for metric, value in metrics.items():
                before = gate["before"].get(suite, {}).get(metric)
                lines.append(f"| {suite} | {metric} | {'' if before is None else f'{before:.3f}'} | {value:.3f} |")
    return "\n".join(lines)


def run_markdown(state: dict[str, Any]) -> str:
    head = [f"## Evolve run `{state['run_id']}` ({state.get('status')})", "",
            f"Prompts: `{(state.get('prompts') or {}).get('ref')}` "
            f"({(state.get('prompts') or {}).get('count')} prompts, "
            f"{(state.get('prompts') or {}).get('dropped_as_contaminated')} dropped as gate items)", ""]
    return "\n".join(head + [iteration_markdown(it) + "\n" for it in state.get("iterations", [])])


def write_model_card_section(settings: Settings, candidate: str, run_id: str, it: dict[str, Any],
                             gate: dict[str, Any]) -> None:
    """The iteration's report in the candidate's model card (body section + ``secops.evolve`` front matter)."""
    from secops_ai.registry.model_card import read_card, write_card

    run_dir: Path = settings.workspace.models / candidate
    if not (run_dir / "model_card.md").is_file():
        return
    front, body = read_card(run_dir)
    pairs = it["stages"].get("pairs", {})
    front.setdefault("secops", {})["evolve"] = {
        "run": run_id, "iteration": it["index"], "parent": it.get("start_model") or "base",
        "datasets": pairs.get("datasets"), "actor_pairs": (pairs.get("actor") or {}).get("pairs"),
        "judge_pairs": (pairs.get("judge") or {}).get("pairs"), "passed": gate["passed"],
        "promoted": gate["promoted"]}
    view = {**it, "candidate": candidate, "stages": {**it["stages"], "gate": {**gate, "seconds": 0.0}}}
    block = f"{CARD_START}\n{iteration_markdown(view)}\n{CARD_END}"
    if CARD_START in body and CARD_END in body:
        start, end = body.index(CARD_START), body.index(CARD_END) + len(CARD_END)
        body = body[:start] + block + body[end:]
    else:
        body = body.rstrip() + f"\n\n## Evolve (self-improvement)\n\n{block}\n"
    write_card(run_dir, front, body)
