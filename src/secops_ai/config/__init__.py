"""Settings from environment variables and workspace paths."""

from secops_ai.config.settings import BUNDLED_BASE_MODEL, Settings, Workspace, get_settings

__all__ = ["BUNDLED_BASE_MODEL", "Settings", "Workspace", "get_settings"]
