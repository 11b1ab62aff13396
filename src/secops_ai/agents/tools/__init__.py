"""Agent tools: the contract (:mod:`.base`) and the built-in tools, gathered by :func:`default_registry`."""

from secops_ai.agents.tools.base import (
    RiskLevel,
    Tool,
    ToolArgumentError,
    ToolContext,
    ToolRegistry,
    ToolResult,
    UnknownToolError,
    default_registry,
    idempotency_key,
)

__all__ = [
    "RiskLevel",
    "Tool",
    "ToolArgumentError",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "UnknownToolError",
    "default_registry",
    "idempotency_key",
]
