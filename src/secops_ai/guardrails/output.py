"""Output checks on a model's answer: malware-like code, insecure code, toxicity, secrets, pseudonym leaks.

Every check runs in-process and is cheap enough to repeat on a growing stream (about 1-3 ms for a
512-token answer on one core):

- ``malicious_code``: behaviour signatures in code blocks (shadow-copy deletion, keyboard hooks, process
  injection, reverse shells, credential dumping, MBR writes, ransom notes next to file encryption...). One
  *strong* signature, or two *weak* ones in the same answer, make it malware-like; a single weak hit (a
  detection script may quote ``vssadmin delete shadows``) is reported but does not count.
- ``insecure_code``: bandit's own tests on Python blocks (severity medium or high), CodeShield's regex rules
  (CyberSecEval's insecure code detector) on other languages.
- ``toxicity``: the evals' classifier (alt-profanity-check), on the whole answer and on each line.
- ``secrets``: private keys, cloud/API tokens, JWTs, passwords in URLs, quoted credential literals.
- ``pseudonym_leak``: the workspace's pseudonyms (``host-1a2b3c.example``, ``user-1a2b3c``,
  ``secret-1a2b3c4d5e``: identifiers of pseudonymised training data) and the obfuscation key itself.

Findings carry the span they cover so that ``redact`` can replace exactly that text.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_HINT = re.compile(r"^\s*(?:def |import |from \w+ import|#include|int main|function |const |let |var |"
                        r"public |class |<\?php|package |using |\$\w+ *=|#!/)", re.MULTILINE)


@dataclass(frozen=True)
class Finding:
    category: str
    rule: str
    message: str
    start: int
    end: int
    severity: str = "medium"

    def public(self) -> dict[str, Any]:
        return {"category": self.category, "rule": self.rule, "message": self.message, "severity": self.severity}


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str
    start: int  # span of the whole block (fences included) in the answer
    end: int
    code_start: int


def code_blocks(text: str) -> list[CodeBlock]:
    """Fenced blocks (an unclosed last fence counts: a stream may still be inside it), else the whole text
    when it starts like code."""
    blocks = [CodeBlock(m.group(1).lower(), m.group(2), m.start(), m.end(), m.start(2))
              for m in FENCE.finditer(text) if m.group(2).strip()]
    if blocks or not _CODE_HINT.search(text):
        return blocks
    return [CodeBlock("", text, 0, len(text), 0)]


# -- malicious code ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    id: str
    message: str
    patterns: tuple[re.Pattern[str], ...]  # all must match somewhere in the block
    strong: bool


def _sig(id: str, message: str, *patterns: str, strong: bool = True) -> Signature:
    return Signature(id, message, tuple(re.compile(p, re.IGNORECASE) for p in patterns), strong)


SIGNATURES: tuple[Signature, ...] = (
    _sig("ransomware-encrypt-and-note", "encrypts files across folders and leaves a ransom demand (T1486)",
         r"\b(?:os\.walk|glob|rglob|FindFirstFile|Get-ChildItem|readdir|filepath\.Walk|WalkDir)\b",
         r"\b(?:encrypt|Fernet|AES|ChaCha|Cipher)", r"ransom|bitcoin|\bBTC\b|monero|decrypt(?:ion)? key.{0,40}pay|"
         r"your files (?:have been|are) encrypted"),
    _sig("inhibit-recovery", "deletes shadow copies or disables recovery (T1490)",
         r"vssadmin(?:\.exe)?\W+delete\W+shadows|wmic\W+shadowcopy\W+delete|recoveryenabled\W+no|"
         r"wbadmin\W+delete\W+catalog", strong=False),
    _sig("keylogger-hook", "captures keystrokes system-wide (T1056.001)",
         r"SetWindowsHookEx\w*\s*\(\s*WH_KEYBOARD_LL|GetAsyncKeyState|pynput\.keyboard|keyboard\.on_press|"
         r"from pynput import keyboard|CGEventTapCreate|/dev/input/event", strong=False),
    _sig("exfil-channel", "sends captured data to an attacker-controlled channel",
         r"api\.telegram\.org/bot|discord(?:app)?\.com/api/webhooks|smtplib\.SMTP|pastebin\.com/api", strong=False),
    _sig("browser-credential-theft", "reads browsers' saved passwords or cookies (T1555.003)",
         r"Login Data|logins\.json|key4\.db|Cookies['\"]?\s*\)|Local State",
         r"CryptUnprotectData|sqlite3|decrypt|os_crypt"),
    _sig("process-injection", "injects code into another process (T1055)",
         r"VirtualAllocEx", r"WriteProcessMemory", r"CreateRemoteThread|NtCreateThreadEx|QueueUserAPC"),
    _sig("reverse-shell", "opens a reverse shell to a remote host (T1059)",
         r"bash\s+-i\s*>&\s*/dev/tcp/|\bnc(?:at)?\b[^\n]*\s-[ec]\s+/bin/(?:ba)?sh|"
         r"(?:os\.dup2\([^)]*\)[\s\S]{0,200}){2}(?:pty\.spawn|subprocess\.call|/bin/(?:ba)?sh)|"
         r"New-Object\s+System\.Net\.Sockets\.TCPClient[\s\S]{0,400}iex"),
    _sig("disable-defences", "disables antivirus/EDR protections (T1562.001)",
         r"Set-MpPreference\s+-Disable(?:RealtimeMonitoring|IOAVProtection|BehaviorMonitoring|ScriptScanning)"
         r"\s+\$?true|DisableAntiSpyware|sc(?:\.exe)?\s+(?:stop|delete)\s+(?:WinDefend|Sense|windefend)",
         strong=False),
    _sig("credential-dumping", "dumps OS credentials (T1003)",
         r"sekurlsa::|lsadump::|mimikatz|comsvcs(?:\.dll)?\W+MiniDump|procdump\S*\s+-ma\s+lsass|"
         r"reg(?:\.exe)?\s+save\s+hklm\\sam", strong=False),
    _sig("disk-wipe", "overwrites the boot record or whole disks (T1561)",
         r"\\\\\.\\PhysicalDrive\d|of=/dev/(?:sd[a-z]|nvme\d|hd[a-z])\b|shred\s+[^\n]*/dev/sd|"
         r"rm\s+-rf\s+/(?:\s|$|\*)|--no-preserve-root"),
    _sig("fork-bomb", "exhausts the machine with a fork bomb", r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"),
    _sig("log-wiping", "clears event logs to hide activity (T1070.001)",
         r"wevtutil(?:\.exe)?\s+cl\b|Clear-EventLog|rm\s+-[rf]+\s+/var/log|history\s+-c", strong=False),
    _sig("cryptominer", "mines cryptocurrency with someone else's resources (T1496)",
         r"stratum\+tcp://|xmrig|coinhive|CoinImp", strong=False),
    _sig("self-propagation", "copies itself to other machines over admin shares or SMB (T1021.002)",
         r"\\\\[^\\\n]+\\(?:ADMIN|C)\$|psexec|smbclient|SMBConnection", r"copy|upload|putFile|shutil\.copy|Copy-Item",
         r"for\s|foreach|range\(|ipaddress|\.hosts\(\)", strong=False),
    _sig("persistence-hidden", "installs itself to run at logon while hiding (T1547.001)",
         r"CurrentVersion\\\\?Run|schtasks\s+/create|crontab|LaunchAgents",
         r"hidden|attrib\s+\+h|SW_HIDE|CREATE_NO_WINDOW|nohup|-WindowStyle\s+Hidden", strong=False),
)
_DETECTION_LANGS = {"yaml", "yml", "sigma", "spl", "kql", "kusto", "sql", "json", "text", "txt", "log",
                    "markdown", "md", "yara"}


def malicious_findings(text: str, blocks: list[CodeBlock]) -> list[Finding]:
    found: list[Finding] = []
    for block in blocks:
        if block.language in _DETECTION_LANGS:
            continue  # detection rules and logs quote attack commands by design
        hits = [s for s in SIGNATURES if all(p.search(block.code) for p in s.patterns)]
        strong = [s for s in hits if s.strong]
        if strong or len(hits) >= 2:
            why = "; ".join(s.message for s in hits)
            found.append(Finding("malicious_code", "+".join(s.id for s in hits), f"malware-like code: {why}",
                                 block.start, block.end, "high"))
    return found


# -- insecure code -------------------------------------------------------------------------------------------
_PY_LANGS = {"python", "py", "python3", ""}
_CODESHIELD_LANGS = {"c": "c", "cpp": "cpp", "c++": "cpp", "cc": "cpp", "java": "java", "javascript": "javascript",
                     "js": "javascript", "typescript": "javascript", "ts": "javascript", "php": "php", "rust": "rust",
                     "rs": "rust", "swift": "swift", "csharp": "csharp", "cs": "csharp", "c#": "csharp",
                     "ruby": "ruby", "rb": "ruby", "objc": "objective_c", "objective-c": "objective_c", "xml": "xml"}


@lru_cache(maxsize=1)
def _codeshield_rules() -> dict[str, list[tuple[str, str, re.Pattern[str]]]]:
    """CodeShield's regex rules per language (loaded once from the installed package; {} if absent)."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("codeshield")
    if spec is None or not spec.submodule_search_locations:
        return {}
    root = Path(next(iter(spec.submodule_search_locations))) / "insecure_code_detector" / "rules" / "regex"
    rules: dict[str, list[tuple[str, str, re.Pattern[str]]]] = {}
    for file in sorted(root.glob("*.yaml")):
        for r in yaml.safe_load(file.read_text(encoding="utf-8")) or []:
            try:
                pattern = re.compile(r["rule"])
            except (re.error, KeyError, TypeError):
                continue
            rules.setdefault(file.stem, []).append((str(r.get("pattern_id") or r.get("cwe_id")),
                                                    f"{r.get('cwe_id', '')}: {str(r.get('description', '')).strip()}",
                                                    pattern))
    return rules


@lru_cache(maxsize=1)
def _bandit_config() -> Any:
    from bandit.core import config

    logging.getLogger("bandit").setLevel(logging.ERROR)
    return config.BanditConfig()


def _bandit(code: str) -> list[tuple[str, str, int]]:
    from bandit.core import manager

    m = manager.BanditManager(_bandit_config(), "file", quiet=True)
    m._parse_file("answer.py", io.BytesIO(code.encode("utf-8", "replace")), [])  # in-process, no temp file
    return [(f"bandit-{i.test_id}", i.text, i.lineno) for i in m.results
            if str(i.severity).upper() in ("MEDIUM", "HIGH")]


def insecure_findings(blocks: list[CodeBlock]) -> list[Finding]:
    found: list[Finding] = []
    rules = _codeshield_rules()
    for block in blocks:
        lang = block.language
        if lang in _PY_LANGS:
            try:
                hits = _bandit(block.code)
            except Exception:  # a half-written block in a stream does not parse; bandit reports, we skip
                hits = []
            for rule, msg, _line in hits:
                found.append(Finding("insecure_code", rule, msg, block.start, block.end))
        cs_lang = _CODESHIELD_LANGS.get(lang)
        for rules_of in ([cs_lang] if cs_lang else []) + ["language_agnostic"]:
            for rid, msg, pattern in rules.get(rules_of, []):
                if pattern.search(block.code):
                    found.append(Finding("insecure_code", f"codeshield-{rid}", msg, block.start, block.end))
    return found


# -- toxicity ------------------------------------------------------------------------------------------------
_LINE = re.compile(r"[^\n.!?]+[\n.!?]*")


def toxicity_findings(text: str, cutoff: float) -> list[Finding]:
    """Lines (and the whole answer) that alt-profanity-check scores at or above ``cutoff``."""
    from profanity_check import predict_prob

    spans = [(m.start(), m.end()) for m in _LINE.finditer(text) if m.group().strip()]
    if not spans:
        return []
    probs = predict_prob([text] + [text[s:e] for s, e in spans])
    found = [Finding("toxicity", "alt-profanity-check", f"toxic language (p={p:.2f})", s, e)
             for (s, e), p in zip(spans, probs[1:], strict=True) if p >= cutoff]
    if not found and probs[0] >= cutoff:
        found.append(Finding("toxicity", "alt-profanity-check", f"toxic language (p={probs[0]:.2f})", 0, len(text)))
    return found


# -- secrets and pseudonyms ----------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"(?i)^(?:x+|\*+|\.+|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|your[_-]?\w*|changeme|example\w*|"
                          r"redacted|secret|password|token|dummy|test\w*|placeholder|none|null|\w*here)$")
_SECRETS: tuple[tuple[str, str, re.Pattern[str], int], ...] = (
    ("private-key", "a private key", re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*\Z)", re.S), 0),
    ("aws-access-key", "an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), 0),
    ("github-token", "a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"), 0),
    ("slack-token", "a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), 0),
    ("api-key", "an API key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|\bAIza[0-9A-Za-z_-]{35}\b|"
                                         r"\b(?:sk|rk)_live_[0-9A-Za-z]{20,}"), 0),
    ("jwt", "a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), 0),
    ("url-password", "a password in a URL", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]{3,})@"), 1),
    ("credential-literal", "a credential literal", re.compile(
        r"""(?ix)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|secret[_-]?key|auth[_-]?token|token|
        client[_-]?secret|aws_secret_access_key)\b["']?\s*[:=]\s*["']([^"'\s]{8,})["']"""), 1),
)
_PSEUDONYM = re.compile(r"\b(?:host-[0-9a-f]{6}\.example|user-[0-9a-f]{6}@example\.com|user-[0-9a-f]{6}|"
                        r"secret-[0-9a-f]{10})\b")


def secret_findings(text: str) -> list[Finding]:
    found: list[Finding] = []
    for rule, what, pattern, group in _SECRETS:
        for m in pattern.finditer(text):
            value = m.group(group)
            if group and _PLACEHOLDER.match(value):
                continue
            found.append(Finding("secrets", rule, f"{what} in the answer", m.start(group), m.end(group), "high"))
    return found


def pseudonym_findings(text: str, keys: tuple[str, ...] = ()) -> list[Finding]:
    found = [Finding("pseudonym_leak", "workspace-pseudonym", "a pseudonymised identifier from the workspace's data",
                     m.start(), m.end()) for m in _PSEUDONYM.finditer(text)]
    for key in keys:
        if len(key) >= 6:
            for m in re.finditer(re.escape(key), text):
                found.append(Finding("pseudonym_leak", "obfuscation-key", "the workspace's pseudonymisation key",
                                     m.start(), m.end(), "high"))
    return found


def redact(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding's span replaced by a marker naming its category (overlaps merged)."""
    spans = sorted((f.start, f.end, f.category) for f in findings)
    merged: list[list[Any]] = []
    for s, e, c in spans:
        if merged and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
            if c not in merged[-1][2]:
                merged[-1][2].append(c)
        else:
            merged.append([s, e, [c]])
    out, pos = [], 0
    for s, e, cats in merged:
        out.append(text[pos:s])
        out.append(f"[redacted by guardrails: {', '.join(cats)}]")
        pos = e
    out.append(text[pos:])
    return "".join(out)
