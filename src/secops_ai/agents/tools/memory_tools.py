"""Search the agent's long-term memory (remediation snippets and past actions, with provenance)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult, untrusted


class SearchMemoryArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=2000, description="What to look for, in plain words.")
    k: int = Field(default=5, ge=1, le=20, description="How many results.")
    kind: Literal["remediation", "action", "note"] | None = Field(default=None, description="Only this kind.")


class SearchMemory(Tool):
    name = "search_memory"
    description = "Search long-term memory for remediation snippets and past actions similar to a query."
    input_model = SearchMemoryArgs
    risk = "low"

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        assert isinstance(args, SearchMemoryArgs)
        if ctx.memory is None:
            return ToolResult.failure("this run has no long-term memory")
        hits = ctx.memory.search(args.query, k=args.k, kind=args.kind)
        if not hits:
            return ToolResult.success("no memories found", {"hits": []})
        text = "\n\n".join(
            f"[{i}] score={h.score:.3f} kind={h.record.kind} source={h.record.source} run={h.record.run_id}\n"
            f"{h.record.text}"
            for i, h in enumerate(hits, 1)
        )
        return ToolResult.success(untrusted("memories", text), {"hits": [h.model_dump(mode="json") for h in hits]})
