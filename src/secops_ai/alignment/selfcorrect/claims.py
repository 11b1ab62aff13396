"""Read checkable claims out of text: security identifiers, the sentences bound to them, and code blocks.

The identifier patterns are the ones the hallucination suite scores (``secops_ai.evals.identifiers``), so
whatever the suite would count as an invented or wrong id, the corrector sees too.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

_PATTERNS: dict[str, re.Pattern[str]] = {
    "cwe": re.compile(r"\bCWE[-_ ]?(\d+)\b", re.IGNORECASE),
    "capec": re.compile(r"\bCAPEC[-_ ]?(\d+)\b", re.IGNORECASE),
    "attack": re.compile(r"\b(T\d{4}(?:\.\d{3})?)\b"),
    "cve": re.compile(r"\bCVE[-_ ](\d+)[-_ ](\d+)\b", re.IGNORECASE),
}
_CODE = re.compile(r"```([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
# A sentence that starts like this continues the subject of the one before it.
_PRONOUN = re.compile(r"^\W*(it|its|this|these|they|their|such|the (?:weakness|technique|pattern|vulnerability|"
                      r"attack|issue|flaw|entry|id))\b", re.IGNORECASE)
# A sentence that says an id does not exist is a correct statement about a missing id, not a description of it.
DENIES = re.compile(r"does ?n[o']t exist|do(?:es)? not exist|no such|not (?:a )?(?:valid|real|known|recogni[sz]ed)|"
                    r"not (?:in|found in) the (?:local )?(?:\w+ )?catalog|unknown|cannot be verified|could not find",
                    re.IGNORECASE)


@dataclass(frozen=True)
class Mention:
    kind: str  # cwe, capec, attack, cve
    ref: str  # canonical: CWE-79, CAPEC-66, T1059.001, CVE-2021-44228
    start: int
    end: int

    @property
    def cve_well_formed(self) -> bool:
        if self.kind != "cve":
            return True
        _, year, seq = self.ref.split("-", 2)
        return 1999 <= int(year) <= dt.date.today().year + 1 and len(seq) >= 4


def mentions(text: str) -> list[Mention]:
    """Every identifier occurrence in ``text``, in order."""
    out: list[Mention] = []
    for kind, pat in _PATTERNS.items():
        for m in pat.finditer(text):
            if kind == "cwe":
                ref = f"CWE-{int(m.group(1))}"
            elif kind == "capec":
                ref = f"CAPEC-{int(m.group(1))}"
            elif kind == "attack":
                ref = m.group(1).upper()
            else:
                ref = f"CVE-{m.group(1)}-{m.group(2)}"
            out.append(Mention(kind, ref, m.start(), m.end()))
    out.sort(key=lambda x: x.start)
    return out


def distinct(ms: list[Mention]) -> list[Mention]:
    seen: dict[str, Mention] = {}
    for m in ms:
        seen.setdefault(m.ref, m)
    return list(seen.values())


@dataclass
class Segment:
    """A piece of an answer: a prose sentence, a code block, or the whitespace between them."""

    text: str
    kind: str  # "sentence", "code", "space"
    lang: str = ""
    code: str = ""
    refs: list[str] = field(default_factory=list)  # ids the sentence is about (own or inherited)


def segments(text: str) -> list[Segment]:
    """Split ``text`` into sentences and fenced code blocks; joining the ``text`` fields gives ``text`` back."""
    out: list[Segment] = []
    pos = 0
    for m in _CODE.finditer(text):
        out.extend(_prose(text[pos:m.start()]))
        out.append(Segment(m.group(0), "code", lang=m.group(1).lower(), code=m.group(2)))
        pos = m.end()
    out.extend(_prose(text[pos:]))
    return out


def _prose(text: str) -> list[Segment]:
    out: list[Segment] = []
    for line in re.split(r"(\n+)", text):
        if not line:
            continue
        if line.startswith("\n"):
            out.append(Segment(line, "space"))
            continue
        for piece in re.split(r"((?<=[.!?])\s+)", line):
            if piece:
                out.append(Segment(piece, "space" if piece.isspace() else "sentence"))
    return out


def join(segs: list[Segment]) -> str:
    """The text back from segments, without the gap a struck (emptied) sentence leaves."""
    parts, dropped = [], False
    for s in segs:
        if s.kind == "space" and dropped and "\n" not in s.text:
            continue
        dropped = s.kind == "sentence" and not s.text
        parts.append(s.text)
    text = "".join(parts)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def bind(segs: list[Segment], subjects: list[str]) -> None:
    """Fill each sentence's ``refs``: its own ids; else the previous sentence's when it opens with a pronoun;
    else, for the opening sentence of an answer to a one-subject question, that subject."""
    previous: list[str] = []
    first = True
    for s in segs:
        if s.kind == "code":
            previous = []
            continue
        if s.kind != "sentence":
            continue
        own = [m.ref for m in distinct(mentions(s.text))]
        if own:
            s.refs = own
        elif previous and _PRONOUN.match(s.text):
            s.refs = list(previous)
        elif first and len(subjects) == 1:
            s.refs = list(subjects)
        previous = s.refs
        first = False


def code_blocks(text: str) -> list[Segment]:
    return [s for s in segments(text) if s.kind == "code"]


def last_user_text(messages: list[dict[str, str]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


_CHOICES = re.compile(r"^\s*\(?[A-D][).]\s+\S", re.MULTILINE)


def is_multiple_choice(question: str) -> bool:
    """A question listing options "A) ... B) ...": its answer is a letter; never prepend facts to it."""
    return len(_CHOICES.findall(question)) >= 2
