"""Read and update ``model_card.md`` (Hugging Face model card: YAML front matter + markdown).

The trainer writes the card; evaluation gates rewrite its evals section with :func:`update_evals_section`;
forced promotions are appended as audited overrides with :func:`record_override`. Every write is atomic.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from secops_ai.config.atomic import atomic_write_text

CARD = "model_card.md"
EVALS_START = "<!-- secops:evals:start -->"
EVALS_END = "<!-- secops:evals:end -->"
OVERRIDES_HEADING = "## Promotion overrides"


class ModelCardError(ValueError):
    """A model card is missing or its front matter is not valid YAML."""


def read_card(run_dir: Path) -> tuple[dict[str, Any], str]:
    """``(front_matter, body)`` of ``run_dir/model_card.md``."""
    path = Path(run_dir) / CARD
    if not path.is_file():
        raise ModelCardError(f"{path}: no model card")
    text = path.read_text(encoding="utf-8")
    m = re.match(r"^---\n(.*?)\n---\n?(.*)$", text, re.S)
    if not m:
        raise ModelCardError(f"{path}: no YAML front matter (--- ... ---) at the top")
    try:
        front = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ModelCardError(f"{path}: front matter is not valid YAML ({exc})") from None
    return front, m.group(2)


def card_text(run_dir: Path) -> str:
    """The card's exact text after checking it parses (:class:`ModelCardError` otherwise)."""
    read_card(run_dir)
    return (Path(run_dir) / CARD).read_text(encoding="utf-8")


def restore_card(run_dir: Path, text: str) -> None:
    """Put back a card's earlier text (undo of an update whose transaction failed)."""
    atomic_write_text(Path(run_dir) / CARD, text)


def write_card(run_dir: Path, front: dict[str, Any], body: str) -> None:
    text = f"---\n{yaml.safe_dump(front, sort_keys=False).rstrip()}\n---\n{body}"
    atomic_write_text(Path(run_dir) / CARD, text)


def _model_index(name: str, results: dict[str, Any]) -> list[dict[str, Any]]:
    """Hugging Face's ``model-index``: one entry per suite whose value is a mapping of numeric metrics."""
    entries = []
    suites = results.get("suites", results)
    for suite, values in suites.items() if isinstance(suites, dict) else ():
        if not isinstance(values, dict):
            continue
        metrics = [{"type": k, "value": v, "name": k} for k, v in values.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        if metrics:
            entries.append({"task": {"type": "text-generation"},
                            "dataset": {"name": str(suite), "type": str(suite)}, "metrics": metrics})
    return [{"name": name, "results": entries}] if entries else []


def update_evals_section(run_dir: Path, markdown: str, results: dict[str, Any]) -> None:
    """Replace the card's evals section with ``markdown`` and store ``results`` in the front matter.

    ``results`` lands under ``secops.evals``; suites given as ``{suite: {metric: number}}`` (top level or
    under ``"suites"``) also become a ``model-index`` entry so the Hub and other tools can read them.
    """
    front, body = read_card(run_dir)
    secops = front.setdefault("secops", {})
    secops["evals"] = results
    name = secops.get("run") or Path(run_dir).name
    index = _model_index(name, results)
    if index:
        front["model-index"] = index
    else:
        front.pop("model-index", None)
    block = f"{EVALS_START}\n{markdown.strip()}\n{EVALS_END}"
    if EVALS_START in body and EVALS_END in body:
        start, end = body.index(EVALS_START), body.index(EVALS_END) + len(EVALS_END)
        body = body[:start] + block + body[end:]
    else:
        body = body.rstrip() + f"\n\n## Evaluation\n\n{block}\n"
    write_card(run_dir, front, body)


def record_override(run_dir: Path, entry: dict[str, Any]) -> None:
    """Append an audited override (who, when, why, what) to the front matter and the card's body."""
    front, body = read_card(run_dir)
    secops = front.setdefault("secops", {})
    overrides = secops.get("overrides") or []
    overrides.append(entry)
    secops["overrides"] = overrides
    line = (f"- {entry.get('ts')}: **{entry.get('action')}** forced by `{entry.get('actor')}`: "
            f"{entry.get('reason')}" + (f" (gate: {entry['gate']})" if entry.get("gate") else ""))
    if OVERRIDES_HEADING in body:
        body = body.rstrip() + "\n" + line + "\n"
    else:
        body = body.rstrip() + f"\n\n{OVERRIDES_HEADING}\n\n{line}\n"
    write_card(run_dir, front, body)


def record_gguf(run_dir: Path, gguf: Path, sha256: str) -> None:
    """Note the adapter's GGUF LoRA (llama.cpp engine, issue 17) and its sha256 in the card's front matter."""
    if not (Path(run_dir) / CARD).is_file():
        return
    front, body = read_card(run_dir)
    front["gguf"] = {"file": gguf.name, "sha256": sha256, "converter": "llama.cpp convert_lora_to_gguf.py"}
    write_card(run_dir, front, body)
