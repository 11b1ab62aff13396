"""Offline CWE lookups (MITRE CWE 4.14 from the ``cwe2`` package), cached per process.

Used by evals (does a model's "CWE-1234" exist?) and by agents' lookup tool.
"""

from __future__ import annotations

import re
from functools import lru_cache

from secops_ai.data.importers.catalogs import load_cwe_catalog
from secops_ai.data.schemas import CweRecord

CweEntry = CweRecord  # id, name, description, mitigations, capec (related CAPEC ids), parents, ...

_ID = re.compile(r"^\s*(?:CWE[-_ ]?)?(\d+)\s*$", re.I)


def parse_cwe_id(value: int | str) -> int | None:
    """``79``, ``"79"``, ``"CWE-79"``, ``"cwe_79"`` → ``79``; anything else → ``None``."""
    if isinstance(value, int):
        return value if value >= 0 else None
    m = _ID.match(str(value))
    return int(m.group(1)) if m else None


@lru_cache(maxsize=1)
def _index() -> dict[int, CweRecord]:
    return {r.id: r for r in load_cwe_catalog()}


def get_cwe(id: int | str) -> CweEntry | None:
    """The CWE entry (weakness or category) for ``id``, or ``None`` if the catalog has no such id."""
    n = parse_cwe_id(id)
    return None if n is None else _index().get(n)


def cwe_exists(id: int | str) -> bool:
    return get_cwe(id) is not None


def all_cwes() -> list[CweEntry]:
    """Every CWE entry, sorted by id."""
    return list(_index().values())
