"""Agent tools: the contract (:mod:`.base`) and the built-in tools (:mod:`.default_tools`)."""

from secops_ai.agents.tools.base import (
    RiskLevel,
    Tool,
    ToolArgumentError,
    ToolContext,
    ToolRegistry,
    ToolResult,
    UnknownToolError,
    idempotency_key,
)
from secops_ai.agents.tools.default_tools import default_registry

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
