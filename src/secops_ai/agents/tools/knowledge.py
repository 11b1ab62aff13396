"""Look up CWE weaknesses, ATT&CK techniques and CAPEC attack patterns in the offline knowledge base."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult

KnowledgeKind = Literal["cwe", "attack", "capec"]


class LookupKnowledgeArgs(ToolArgs):
    kind: KnowledgeKind = Field(description="'cwe' (e.g. CWE-78), 'attack' (e.g. T1059.001) or 'capec' (e.g. 88).")
    id: str = Field(min_length=1, max_length=32, description="The identifier to look up.")


def _clip(text: str | None, n: int = 700) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else text[:n].rstrip() + " ..."


class LookupKnowledge(Tool):
    name = "lookup_knowledge"
    description = "Look up a CWE, MITRE ATT&CK technique or CAPEC pattern by id in the local (offline) catalogs."
    input_model = LookupKnowledgeArgs
    risk = "low"

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        assert isinstance(args, LookupKnowledgeArgs)
        if args.kind == "cwe":
            from secops_ai.knowledge.cwe import get_cwe

            entry = get_cwe(args.id)
            if entry is None:
                return ToolResult.failure(f"no CWE entry {args.id!r} in the local catalog")
            lines = [f"CWE-{entry.id}: {entry.name}", _clip(entry.description)]
            if entry.mitigations:
                lines.append("Mitigations:\n" + "\n".join(f"- {_clip(m, 300)}" for m in entry.mitigations[:3]))
            if entry.capec:
                lines.append("Related CAPEC: " + ", ".join(f"CAPEC-{c}" for c in entry.capec[:10]))
            data = {"kind": "cwe", "id": f"CWE-{entry.id}", "name": entry.name, "capec": list(entry.capec),
                    "parents": list(entry.parents)}
            return ToolResult.success("\n".join(lines), data)
        if args.kind == "attack":
            from secops_ai.knowledge.attack import get_technique

            tech = get_technique(args.id)
            if tech is None:
                return ToolResult.failure(f"no ATT&CK technique {args.id!r} in the local catalog (ids look like T1059)")
            lines = [f"{tech.id}: {tech.name}", f"Tactics: {', '.join(tech.tactics) or '-'}", _clip(tech.description)]
            if tech.mitigations:
                lines.append("Mitigations: " + "; ".join(m.get("name", "") for m in tech.mitigations[:5]))
            data = {"kind": "attack", "id": tech.id, "name": tech.name, "tactics": list(tech.tactics), "url": tech.url}
            return ToolResult.success("\n".join(lines), data)
        from secops_ai.knowledge.capec import get_capec

        pattern = get_capec(args.id)
        if pattern is None:
            return ToolResult.failure(f"no CAPEC pattern {args.id!r} in the local catalog")
        return ToolResult.success(
            f"CAPEC-{pattern.id}: {pattern.name}\nRelated CWE: " + ", ".join(f"CWE-{c}" for c in pattern.related_cwes),
            {"kind": "capec", "id": f"CAPEC-{pattern.id}", "name": pattern.name,
             "related_cwes": list(pattern.related_cwes)},
        )
