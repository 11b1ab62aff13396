"""The one ``key=value`` override grammar and the one :class:`ConfigError`, for every config a user writes:
fine-tuning run configs, pretraining configs and ``data generate`` options.

Grammar (strict): each override is ``KEY=VALUE``. ``KEY`` is a dotted path (``model.rope=true`` sets
``rope`` inside the ``model`` section); ``VALUE`` is parsed as one YAML value (``20`` → int, ``3e-4`` →
float, ``true`` → bool, ``[1, 2]`` → list, ``null`` or nothing → None, ``abc`` → the string). A missing
``=``, an empty key or an invalid YAML value is an error, and so is an unknown top-level key when the caller
names the allowed ones; the config's own model then checks the types, with the same wording for every file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file (or override) and the key."""


def parse_overrides(overrides: Iterable[str], *, allowed: Iterable[str] | None = None,
                    what: str = "config") -> dict[str, Any]:
    """``["max_iters=50", "model.rope=true"]`` → ``{"max_iters": 50, "model": {"rope": True}}``."""
    known = set(allowed) if allowed is not None else None
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or any(not p.strip() for p in parts):
            raise ConfigError(f"override {item!r} is not key=value (expected key=value; keys may be dotted, "
                              "e.g. model.rope=true)")
        if known is not None and parts[0] not in known:
            raise ConfigError(f"override {item!r}: unknown key {parts[0]!r} (not a {what} key)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not a YAML value"
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({problem}); quote it") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, sections merged key by key (neither input is changed)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
