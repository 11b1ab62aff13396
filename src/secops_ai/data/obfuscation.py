"""Stable keyed pseudonyms for identifiers in logs and findings.

Every identifier is replaced by a pseudonym derived from ``HMAC-SHA256(key, kind + value)``: the same input
under the same key always gives the same pseudonym (so joins across lines and datasets still work), a
different key gives unrelated pseudonyms, and nothing about the original can be recovered without the key.
The key is never written anywhere; manifests only record :meth:`Pseudonymizer.key_id`, a keyed fingerprint
that tells two keys apart without revealing either.

Pseudonyms keep the identifier's shape so that parsers and models still see "an IP", "a host", ...:

==========  ==========================  =====================================
kind        example input               pseudonym
==========  ==========================  =====================================
ipv4        ``203.0.113.7``             ``10.23.181.4``
ipv6        ``2001:db8::1``             ``fd00:1a2b:3c4d:5e6f:7a8b:9c0d:e1f2:a3b4``
host        ``db01.corp.acme.com``      ``host-1a2b3c.example``
email       ``alice@acme.com``          ``user-1a2b3c@example.com``
user        ``alice``                   ``user-1a2b3c``
secret      ``hunter2`` / JWTs / keys   ``secret-1a2b3c4d5e``
==========  ==========================  =====================================
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

Kind = Literal["ipv4", "ipv6", "host", "email", "user", "secret"]

# Well-known system accounts are not personal identifiers and carry signal ("Failed password for root").
DEFAULT_KEEP_USERS = frozenset({"root", "nobody", "daemon", "www-data", "sshd", "systemd", "syslog", "-"})

# Public documentation hosts that scanners link their rules to: they identify no one, and keeping them keeps
# a finding's help link working. Only these exact names (and their www.) are kept.
DEFAULT_KEEP_HOSTS = frozenset({
    "bandit.readthedocs.io", "semgrep.dev", "sg.run", "cwe.mitre.org", "attack.mitre.org", "capec.mitre.org",
    "cve.mitre.org", "nvd.nist.gov", "owasp.org", "cheatsheetseries.owasp.org", "github.com", "codeql.github.com",
    "docs.python.org", "learn.microsoft.com", "dwheeler.com",
})

# Top-level labels that mark a dotted word as a host name. Deliberately excludes file extensions and
# words common in code ("py", "app", "js") so that ``app.py`` or ``os.path.join`` stay untouched.
_TLDS = (
    "com|net|org|edu|gov|mil|int|info|biz|io|co|ai|me|us|uk|de|fr|nl|ru|cn|jp|in|br|au|ca|ch|se|no|es|it|pl|"
    "eu|cloud|online|site|tech|xyz|local|localdomain|lan|internal|intranet|corp|home|arpa|example|test|invalid"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"

_SECRET_KEYS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|"
    r"auth[_-]?token|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|secret[_-]?key|private[_-]?key|"
    r"session(?:[_-]?id)?|sessid|sid|credentials?|aws_secret_access_key|x-api-key"
)

_PATTERNS: list[tuple[Kind, re.Pattern[str], int]] = [
    # (kind, regex, group holding the identifier). Earlier patterns win on overlap.
    ("secret", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), 0),
    ("secret", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), 0),  # JWT
    ("secret", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), 0),  # AWS access key id
    ("secret", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), 0),  # GitHub token
    ("secret", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), 0),  # Slack token
    ("secret", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), 0),  # OpenAI-style key
    ("secret", re.compile(r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9._~+/=-]{8,})"), 1),
    # key=value / key: value / "key": "value" with a secret-looking key; not paths (sudo's PWD=/home/x)
    ("secret", re.compile(
        rf"""(?ix)(?<![A-Za-z0-9])(?:{_SECRET_KEYS})["']?\s*(?:=|:)\s*["']?(?!/)([^\s"'&;,}}]+)"""), 1),
    ("secret", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@"), 1),  # URL password
    ("email", re.compile(rf"\b[A-Za-z0-9._%+-]+@(?:{_LABEL}\.)+[A-Za-z]{{2,24}}\b"), 0),
    ("user", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^\s:/@]+)(?::[^\s@/]*)?@"), 1),  # URL user
    ("ipv4", re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)"), 0),
    ("ipv6", re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])"), 0),
    # usernames in the usual auth/syslog/web phrasing
    ("user", re.compile(r"(?i)\b(?:invalid|illegal)\s+user\s+([^\s;,]+)"), 1),
    ("user", re.compile(r"(?i)\b(?:password|publickey|keyboard-interactive(?:/pam)?|hostbased|none|gssapi-\S+)"
                        r"\s+for\s+(?:invalid\s+user\s+)?([^\s;,]+)"), 1),
    ("user", re.compile(r"(?i)\bfor\s+user\s+([^\s;,()]+)"), 1),
    ("user", re.compile(r"(?i)\bfor\s+([A-Za-z_][A-Za-z0-9_.-]{0,31})\s+from\b"), 1),
    ("user", re.compile(r"(?i)\b(?:user(?:name)?|ruser|logname|login|account|uname|USER)\s*[=:]\s*[\"']?"
                        r"([A-Za-z_][A-Za-z0-9_.@-]{0,63})(?![A-Za-z0-9_.@-]*=)"), 1),  # not a key (`user: name=x`)
    ("user", re.compile(r"(?i)\buser\s+([A-Za-z_][A-Za-z0-9_.-]{0,31})(?=\s+(?:by|from|on|logged|authenticated|"
                        r"not|does|locked|is|\())"), 1),
    ("user", re.compile(r"(?i)\bnew\s+user:\s+name=([A-Za-z_][A-Za-z0-9_.-]{0,31})"), 1),  # useradd
    ("user", re.compile(r"(?m)\bsudo(?:\[\d+\])?:\s+([A-Za-z_][A-Za-z0-9_.-]{0,31})\s+:"), 1),
    ("user", re.compile(r"\bhome/([A-Za-z_][A-Za-z0-9_.-]{0,31})"), 1),  # /home/x, ./home/x, home/x
    # combined/common web log: ``ip ident user [date]``
    ("user", re.compile(r"(?m)^\S+\s+\S+\s+([^\s\[]+)\s+\[\d"), 1),
    # syslog header host: ``Mon DD HH:MM:SS host prog[pid]:`` and RFC 3339 ``2024-..T..Z host prog:``
    ("host", re.compile(r"(?m)^[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}\s+([^\s\[:]+)\s+\S"), 1),
    ("host", re.compile(r"(?m)^\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?\s+([^\s\[:]+)\s+\S"), 1),
    ("host", re.compile(r"(?i)\b(?:host(?:name)?|rhost|server|src_host|dst_host)\s*[=:]\s*([A-Za-z0-9_.-]+)"), 1),
    ("host", re.compile(rf"(?i)\b(?:{_LABEL}\.)+(?:{_TLDS})\b(?![.\w-])"), 0),
]


class Pseudonymizer:
    """Replace identifiers in free text by stable keyed pseudonyms.

    ``Pseudonymizer(key).text(line)`` rewrites a log line or finding message; ``.value(kind, s)`` gives the
    pseudonym of one known identifier (used by importers for parsed fields such as the syslog host).
    """

    def __init__(self, key: str | bytes, *, keep_users: Iterable[str] = DEFAULT_KEEP_USERS,
                 keep_hosts: Iterable[str] = DEFAULT_KEEP_HOSTS) -> None:
        key_bytes = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if not key_bytes:
            raise ValueError("obfuscation key must not be empty")
        self._key = key_bytes
        self.keep_users = frozenset(keep_users)
        self.keep_hosts = frozenset(h.lower() for h in keep_hosts)
        self._cache: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """A fingerprint of the key (HMAC of a constant), safe to store in manifests."""
        return hmac.new(self._key, b"secops-ai/key-id", hashlib.sha256).hexdigest()[:12]

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def value(self, kind: Kind | str, s: str) -> str:
        """The pseudonym of ``s`` as an identifier of ``kind`` (ipv4, ipv6, host, email, user, secret)."""
        cached = self._cache.get((kind, s))
        if cached is not None:
            return cached
        if kind == "user" and s in self.keep_users:
            return s
        if kind == "ip":
            kind = "ipv6" if ":" in s else "ipv4"
        norm = s.lower() if kind in ("host", "email", "ipv6") else s
        d = self._digest(kind, norm)
        h = d.hex()
        if kind == "ipv4":
            out = f"10.{d[0]}.{d[1]}.{d[2]}"
        elif kind == "ipv6":
            out = "fd00:" + ":".join(h[i:i + 4] for i in range(0, 28, 4))
        elif kind == "host":
            out = f"host-{h[:6]}.example" if "." in s else f"host-{h[:6]}"
        elif kind == "email":
            out = f"user-{h[:6]}@example.com"
        elif kind == "user":
            out = f"user-{h[:6]}"
        elif kind == "secret":
            out = f"secret-{h[:10]}"
        else:
            raise ValueError(f"unknown identifier kind {kind!r}; expected ipv4, ipv6, host, email, user, secret")
        if len(self._cache) < 100_000:
            self._cache[(kind, s)] = out
        return out

    def spans(self, s: str) -> Iterator[tuple[int, int, Kind, str]]:
        """Non-overlapping ``(start, end, kind, original)`` identifier spans found in ``s``, in order."""
        found: list[tuple[int, int, int, Kind]] = []
        for prio, (kind, rx, group) in enumerate(_PATTERNS):
            for m in rx.finditer(s):
                start, end = m.span(group)
                if start < 0 or start == end:
                    continue
                token = s[start:end]
                if kind == "ipv4" and not _valid_ip(token):
                    continue
                if kind == "ipv6" and (not _valid_ip(token.split("%")[0]) or token.strip(":") == ""):
                    continue
                if kind == "user" and (token in self.keep_users or _looks_like_pseudonym(token)):
                    continue
                if kind == "host" and (_valid_ip(token) or _looks_like_pseudonym(token)
                                       or token.lower().removeprefix("www.") in self.keep_hosts):
                    continue
                found.append((start, end, prio, kind))
        found.sort(key=lambda t: (t[0], t[2], -t[1]))
        last_end = 0
        for start, end, _prio, kind in found:
            if start < last_end:
                continue
            last_end = end
            yield start, end, kind, s[start:end]

    def text(self, s: str) -> str:
        """``s`` with every recognised identifier replaced by its pseudonym.

        Usernames found in one place (``Invalid user bob``) are also replaced wherever else they occur in
        the same text as a whole word, so ``/home/bob`` or ``bob's`` do not leak what the pattern caught.
        """
        parts: list[str] = []
        pos = 0
        users: set[str] = set()
        for start, end, kind, token in self.spans(s):
            parts.append(s[pos:start])
            parts.append(self.value(kind, token))
            if kind == "user" and len(token) >= 3:
                users.add(token)
            pos = end
        parts.append(s[pos:])
        out = "".join(parts)
        for user in sorted(users, key=len, reverse=True):
            out = re.sub(rf"(?<![\w.-]){re.escape(user)}(?![\w-])", self.value("user", user), out)
        return out


    def scrub(self, value: Any, *, context: str = "") -> Any:
        """``value`` (a string, or dicts/lists of them) with every string pseudonymised like :meth:`text`.

        Importers run every stored field through this, never a hand-picked subset, so a parsed field holds
        no identifier that the preview (``secops-ai data obfuscate``, i.e. :meth:`text` on the whole source
        line) would have hidden: identifiers found in ``context`` (the source line) are also replaced in any
        field where they appear on their own, e.g. a web log's user name repeated inside its user agent.
        Non-string leaves (numbers, booleans, None) are kept.
        """
        known = self._known_in(context) if context else []
        return self._scrub(value, known)

    def _known_in(self, context: str) -> list[tuple[str, str]]:
        found = {(token, kind) for _s, _e, kind, token in self.spans(context)}
        # short tokens ("10", "ab") would also match inside unrelated words; the patterns catch them in context
        return sorted(((t, k) for t, k in found if len(t) >= 3), key=lambda tk: len(tk[0]), reverse=True)

    def _scrub(self, value: Any, known: list[tuple[str, str]]) -> Any:
        if isinstance(value, str):
            out = self.text(value)
            for token, kind in known:
                if token in out:
                    out = re.sub(rf"(?<![\w@-]){re.escape(token)}(?![\w@-])", self.value(kind, token), out)
            return out
        if isinstance(value, dict):
            return {k: self._scrub(v, known) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v, known) for v in value]
        return value


def _valid_ip(token: str) -> bool:
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


_PSEUDONYM = re.compile(r"^(?:host|user)-[0-9a-f]{6}(?:\.example|@example\.com)?$|^secret-[0-9a-f]{10}$")


def _looks_like_pseudonym(token: str) -> bool:
    return bool(_PSEUDONYM.match(token))
