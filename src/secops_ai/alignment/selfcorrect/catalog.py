"""Evidence from the local catalogs (CWE, CAPEC, ATT&CK) and how well a sentence agrees with it.

Agreement is lexical on purpose: a deterministic score anyone can recompute (content words of the claim
that also occur in the catalog entry's title and description). A 135M model's wrong answers share almost
no vocabulary with the entry ("Council of Economic Advisors" for CWE-79), while a right answer in its own
words keeps the entry's key terms ("cross-site scripting", "web page", "input").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# (no "CWE 4"-like text here: it would read as an identifier to the checks that scan answers)
CWE_SOURCE = "MITRE CWE catalog, offline copy"
CAPEC_SOURCE = "CAPEC ids cited by the MITRE CWE catalog, offline copy"
ATTACK_SOURCE = "MITRE ATT&CK Enterprise, offline copy"

# A sentence with fewer content words than this says nothing checkable beyond the id itself.
MIN_CONTENT_WORDS = 3
# Share of a sentence's content words that must occur in the entry for the sentence to count as supported.
SUPPORT_THRESHOLD = 0.25


class CatalogError(RuntimeError):
    """A catalog could not be read; claims it should check are reported unverified with this message."""


@dataclass(frozen=True)
class Entry:
    kind: str  # cwe, capec, attack
    ref: str  # canonical id
    title: str
    text: str
    source: str
    related: frozenset[str]  # ids the catalog links to this one (parents, children, CAPEC<->CWE)


def _wrap(fn):
    def inner(*args):
        try:
            return fn(*args)
        except CatalogError:
            raise
        except Exception as exc:  # a missing package or unreadable data: degrade, never crash the answer
            raise CatalogError(f"{type(exc).__name__}: {exc}") from exc
    return inner


@lru_cache(maxsize=1)
def _cwe_children() -> dict[int, frozenset[int]]:
    from secops_ai.knowledge.cwe import all_cwes

    kids: dict[int, set[int]] = {}
    for c in all_cwes():
        for p in c.parents:
            kids.setdefault(p, set()).add(c.id)
    return {k: frozenset(v) for k, v in kids.items()}


@_wrap
def lookup(kind: str, ref: str) -> Entry | None:
    """The catalog entry for ``ref`` (``None``: the catalog has no such id). Raises :class:`CatalogError`."""
    if kind == "cwe":
        from secops_ai.knowledge.cwe import get_cwe

        c = get_cwe(ref)
        if c is None:
            return None
        related = {f"CWE-{p}" for p in c.parents} | {f"CWE-{k}" for k in _cwe_children().get(c.id, ())}
        related |= {f"CAPEC-{p}" for p in c.capec}
        return Entry("cwe", f"CWE-{c.id}", c.name, " ".join([c.description, c.extended_description or ""]).strip(),
                     CWE_SOURCE, frozenset(related))
    if kind == "capec":
        from secops_ai.knowledge.capec import get_capec

        p = get_capec(ref)
        if p is None:
            return None
        # The offline CAPEC entry has no title of its own; its name says which weakness it exploits.
        title = p.name.split(" (", 1)[1].rstrip(")") if " (" in p.name else p.name
        return Entry("capec", f"CAPEC-{p.id}", f"attack pattern that {title}", title, CAPEC_SOURCE,
                     frozenset(f"CWE-{c}" for c in p.related_cwes))
    if kind == "attack":
        from secops_ai.knowledge.attack import get_technique, subtechniques

        t = get_technique(ref)
        if t is None:
            return None
        related = {t.parent} if t.parent else set()
        related |= {s.id for s in subtechniques(t.id)}
        return Entry("attack", t.id, t.name, t.description, ATTACK_SOURCE, frozenset(r for r in related if r))
    raise ValueError(f"unknown catalog kind {kind!r}")


@lru_cache(maxsize=1)
def _names() -> list[tuple[str, str, str]]:
    """(lowercased name, kind, ref) for every CWE weakness and ATT&CK technique, longest names first."""
    from secops_ai.knowledge.attack import all_techniques
    from secops_ai.knowledge.cwe import all_cwes

    out = [(c.name.lower(), "cwe", f"CWE-{c.id}") for c in all_cwes()
           if c.status not in ("Deprecated", "Obsolete") and c.abstraction != "Category"]
    out += [(t.name.lower(), "attack", t.id) for t in all_techniques()]
    out.sort(key=lambda x: -len(x[0]))
    return out


_QUOTED = re.compile(r"""['"“‘]([^'"”’\n]{4,200})['"”’]""")
# A name this long appearing verbatim is a reference to the entry, not an everyday phrase ("Phishing").
MIN_UNQUOTED_NAME = 20


@_wrap
def named_entries(text: str) -> list[tuple[str, str]]:
    """(kind, ref) of catalog entries a question names: an exact quoted name, or a long name verbatim."""
    low = text.lower()
    quoted = {q.strip().lower() for q in _QUOTED.findall(text)}
    found: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for name, kind, ref in _names():
        i = low.find(name)
        if i != -1 and any(s <= i < e for s, e in spans):  # part of a longer name already found
            continue
        if name in quoted:
            found.append((kind, ref))
            if i != -1:
                spans.append((i, i + len(name)))
            continue
        if len(name) < MIN_UNQUOTED_NAME or i == -1:
            continue
        spans.append((i, i + len(name)))
        found.append((kind, ref))
    return list(dict.fromkeys(found))


_STOP_WORDS = """
a an the and or but if then than that this these those it its it's is are was were be been being has have had do
does did of in on at to for from by with as into onto over under about between through not no nor can could
should would may might must will shall also such which who whom whose what when where why how there here their
they them we you your our i me my he she his her one two any all some each other more most many much very only
own same so too just use used using uses usage type types kind called known refer refers referred
cwe capec mitre att ck attack attacks technique techniques weakness weaknesses vulnerability vulnerabilities
issue issues security secure code software product system systems id identifier common enumeration
non new allow allows allowing attacker attackers malicious execute arbitrary exploit exploited access example
information application applications data user users can cause lead leads result results could
"""
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z][a-z0-9]+")
_ID_TEXT = re.compile(r"\b(?:CWE|CAPEC|CVE)[-_ ]?[\d-]+\b|\bT\d{4}(?:\.\d{3})?\b", re.IGNORECASE)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    text = _ID_TEXT.sub(" ", text).lower()
    return {_stem(w) for w in _WORD.findall(text) if len(w) >= 3 and w not in _STOP}


def support(sentence: str, entries: list[Entry]) -> float | None:
    """Share of the sentence's content words found in the entries (``None``: too few words to judge)."""
    words = content_words(sentence)
    if len(words) < MIN_CONTENT_WORDS:
        return None
    known: set[str] = set()
    for e in entries:
        known |= content_words(f"{e.title} {e.text}")
    return len(words & known) / len(words)


def states_title(answer: str, entry: Entry) -> bool:
    """Whether ``answer`` gives the entry's title (most of its content words, or the title verbatim)."""
    if entry.title.lower() in answer.lower():
        return True
    title = content_words(entry.title)
    return bool(title) and len(title & content_words(answer)) / len(title) >= 0.6
