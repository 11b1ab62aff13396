"""Model registry: runs under models/<provider>/<run-id>/, stages, gates, model cards, merge."""

from secops_ai.registry.registry import ModelRecord, PromotionRefused, Registry, RegistryError

__all__ = ["ModelRecord", "PromotionRefused", "Registry", "RegistryError"]
