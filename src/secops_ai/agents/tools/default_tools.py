"""The built-in tools gathered into one registry.

Kept apart from :mod:`.base` (the contract every tool imports) so the contract never imports its tools.
"""

from __future__ import annotations

from secops_ai.agents.tools.base import ToolRegistry
from secops_ai.agents.tools.knowledge import LookupKnowledge
from secops_ai.agents.tools.memory_tools import SearchMemory
from secops_ai.agents.tools.patch import ProposePatch
from secops_ai.agents.tools.reports import ParseReport
from secops_ai.agents.tools.scanners import RunScanner
from secops_ai.agents.tools.shell import RunCommand


def default_registry() -> ToolRegistry:
    """A registry holding every built-in tool."""
    return ToolRegistry([RunScanner(), ParseReport(), LookupKnowledge(), SearchMemory(), RunCommand(), ProposePatch()])
