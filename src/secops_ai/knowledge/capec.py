"""CAPEC attack-pattern ids known offline: those the CWE catalog links to its weaknesses.

The ``cwe2`` package ships CWE's ``Related_Attack_Patterns`` (CAPEC ids) but not the CAPEC catalog itself,
so an entry holds the id, the CWE ids that cite it and a descriptive name built from them; a CAPEC id no
CWE entry cites is reported as unknown (``capec_exists`` is False), never guessed.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from secops_ai.data.importers.catalogs import load_cwe_catalog

_ID = re.compile(r"^\s*(?:CAPEC[-_ ]?)?(\d+)\s*$", re.I)


class CapecEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    related_cwes: tuple[int, ...]


@lru_cache(maxsize=1)
def _index() -> dict[int, CapecEntry]:
    cites: dict[int, list[tuple[int, str]]] = {}
    for cwe in load_cwe_catalog():
        for cid in cwe.capec:
            cites.setdefault(cid, []).append((cwe.id, cwe.name))
    out = {}
    for cid, cwes in sorted(cites.items()):
        cwes.sort()
        first = cwes[0]
        more = f" and {len(cwes) - 1} more" if len(cwes) > 1 else ""
        out[cid] = CapecEntry(id=cid, name=f"CAPEC-{cid} (exploits CWE-{first[0]}: {first[1]}{more})",
                              related_cwes=tuple(c for c, _ in cwes))
    return out


def parse_capec_id(value: int | str) -> int | None:
    if isinstance(value, int):
        return value if value >= 0 else None
    m = _ID.match(str(value))
    return int(m.group(1)) if m else None


def get_capec(id: int | str) -> CapecEntry | None:
    n = parse_capec_id(id)
    return None if n is None else _index().get(n)


def capec_exists(id: int | str) -> bool:
    return get_capec(id) is not None


def all_capecs() -> list[CapecEntry]:
    return list(_index().values())
