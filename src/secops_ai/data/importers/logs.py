"""System, auth and web logs: syslog (BSD and RFC 3339 headers, so ``auth.log`` too) and nginx/apache
combined/common access logs, one :class:`LogRecord` per line.

Identifiers are pseudonymised by default with :class:`~secops_ai.data.obfuscation.Pseudonymizer` (the key
comes from the caller and is never stored); lines that match no known format are kept as ``raw``.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from secops_ai.data.obfuscation import Pseudonymizer
from secops_ai.data.schemas import LogRecord

_BSD = re.compile(r"^(?P<ts>[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2})\s+(?P<host>\S+)\s+"
                  r"(?P<prog>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?:\s?(?P<msg>.*)$")
_ISO = re.compile(r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\s+(?P<host>\S+)\s+"
                  r"(?P<prog>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?:\s?(?P<msg>.*)$")
_WEB = re.compile(r'^(?P<addr>\S+)\s+(?P<ident>\S+)\s+(?P<user>\S+)\s+\[(?P<ts>[^\]]+)\]\s+'
                  r'"(?P<request>[^"]*)"\s+(?P<status>\d{3}|-)\s+(?P<size>\d+|-)'
                  r'(?:\s+"(?P<referrer>[^"]*)"\s+"(?P<agent>[^"]*)")?')

# auth events worth a field of their own (detections and triage key off them)
_AUTH_EVENTS: list[tuple[str, re.Pattern[str]]] = [
    ("failed_password", re.compile(r"Failed (?:password|publickey) for (?:invalid user )?(?P<user>\S+) from "
                                   r"(?P<src>\S+)(?: port (?P<port>\d+))?")),
    ("accepted_login", re.compile(r"Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<src>\S+)"
                                  r"(?: port (?P<port>\d+))?")),
    ("invalid_user", re.compile(r"Invalid user (?P<user>\S+) from (?P<src>\S+)(?: port (?P<port>\d+))?")),
    ("sudo", re.compile(r"^\s*(?P<user>\S+) : .*COMMAND=(?P<command>.*)$")),
    ("session_opened", re.compile(r"session opened for user (?P<user>[^\s(]+)")),
    ("session_closed", re.compile(r"session closed for user (?P<user>[^\s(]+)")),
    ("auth_failure", re.compile(r"authentication failure;.*")),
    ("disconnect", re.compile(r"(?:Disconnected from|Connection closed by|Received disconnect from)"
                              r"(?: (?:invalid |authenticating )?user (?P<user>\S+))? (?P<src>[0-9a-fA-F.:]+)")),
]


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


# Parsed fields that hold one identifier of a known kind get that kind's pseudonym (the same one the line's
# text gets); every other string field is pseudonymised as free text. Nothing is stored unpseudonymised.
_IDENTIFIER_FIELDS = {"host": "host", "user": "user", "src_ip": "ip", "remote_addr": "ip", "remote_user": "user"}


def parse_line(line: str, pseudo: Pseudonymizer | None = None) -> LogRecord | None:
    """One log line → record (``None`` for blank lines).

    With ``pseudo``, EVERY string the record stores goes through it: ``text`` is exactly what
    ``secops-ai data obfuscate`` shows for the line, identifier fields get their kind's pseudonym, and all
    other strings (message, request, referrer, user agent, ...) are pseudonymised as text with the line's
    own identifiers as context.
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    raw = _parse(line)
    if pseudo is None:
        return LogRecord.model_validate(raw)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "text":
            out[key] = pseudo.text(line)
        elif key == "fields":
            out[key] = {k: _anon_field(pseudo, k, v, line) for k, v in value.items()}
        elif key in ("format", "pid"):
            out[key] = value
        else:
            out[key] = _anon_field(pseudo, key, value, line)
    return LogRecord.model_validate(out)


def _anon_field(pseudo: Pseudonymizer, key: str, value: Any, line: str) -> Any:
    kind = _IDENTIFIER_FIELDS.get(key)
    if isinstance(value, str) and kind is not None and value != "-":
        if kind == "ip" and not re.match(r"^[0-9a-fA-F.:]+$", value):
            kind = "host"
        return pseudo.value(kind, value)
    return pseudo.scrub(value, context=line)


def _parse(line: str) -> dict[str, Any]:
    """The record's fields as parsed from the raw line (no pseudonyms yet)."""
    m = _BSD.match(line) or _ISO.match(line)
    if m:
        msg = m.group("msg")
        fields: dict[str, Any] = {}
        for event, rx in _AUTH_EVENTS:
            em = rx.search(msg)
            if em:
                fields["event"] = event
                gd = em.groupdict()
                if gd.get("user"):
                    fields["user"] = gd["user"]
                if gd.get("src"):
                    fields["src_ip"] = gd["src"]
                if gd.get("port"):
                    fields["src_port"] = int(gd["port"])
                if gd.get("method"):
                    fields["method"] = gd["method"]
                if gd.get("command"):
                    fields["command"] = gd["command"]
                break
        return {"text": line, "format": "syslog", "timestamp": m.group("ts"), "host": m.group("host"),
                "program": m.group("prog"), "pid": int(m.group("pid")) if m.group("pid") else None,
                "message": msg, "fields": fields}
    m = _WEB.match(line)
    if m:
        request = m.group("request")
        parts = request.split(" ")
        fields = {"remote_addr": m.group("addr"),
                  "status": int(m.group("status")) if m.group("status").isdigit() else None,
                  "bytes": int(m.group("size")) if m.group("size").isdigit() else 0}
        if len(parts) == 3:
            fields.update(method=parts[0], path=parts[1], protocol=parts[2])
        else:
            fields["request"] = request
        if m.group("user") != "-":
            fields["remote_user"] = m.group("user")
        if m.group("agent") is not None:
            fields["referrer"] = m.group("referrer")
            fields["user_agent"] = m.group("agent")
        fmt = "combined" if m.group("agent") is not None else "common"
        return {"text": line, "format": fmt, "timestamp": m.group("ts"), "message": request, "fields": fields}
    return {"text": line, "format": "raw"}


def iter_logs(path: Path | str, *, pseudonymizer: Pseudonymizer | None) -> Iterator[LogRecord]:
    """Stream records from a log file (plain or ``.gz``), pseudonymised when a pseudonymizer is given."""
    with _open(Path(path)) as fh:
        for line in fh:
            rec = parse_line(line, pseudonymizer)
            if rec is not None:
                yield rec
