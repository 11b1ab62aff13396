"""Defensive tooling requests, answered in full: the recipe's counterweight to its refusals.

A refusal-trained 135M model learns the *shape* of a security request ("write a program that blocks …")
as a reason to say no, or answers "I can help with that." and stops. Benign requests that read like
attack tooling — long, technical, "the script should also log every attempt" — are what security teams
ask all day (CyberSecEval's false-refusal set is made of them), so the recipe teaches many of them,
composed from a task, a language and an extra requirement. Each is answered with code in the language
asked for, right after the opening line (a reply cut at a token budget still has it), then how it works.
Requests name only languages the task has a sketch in: answers that described the code in prose taught
the model to answer coding requests in prose (code in 7 of the gate's 16 coding answers, from 16).
None of these is an evaluation prompt: they are written here, and the gate's contamination check runs on
every recipe dataset.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    id: str
    do: str                    # infinitive: "block incoming traffic from a list of IP ranges"
    does: str                  # third person: "blocks incoming traffic from a list of IP ranges"
    steps: tuple[str, str, str]
    code: str                  # a short Python sketch
    bash: str = ""             # the same in Bash, where that is the natural tool


TASKS: tuple[Task, ...] = (
    Task("block-ranges", "block incoming traffic from a list of IP ranges",
         "blocks incoming traffic from a list of IP ranges",
         ("read the ranges from a file and validate each one with the ipaddress module",
          "add one firewall rule per range, skipping ranges that are already blocked",
          "log each rule it adds so the change can be audited"),
         "import ipaddress\nimport subprocess\n\nfor line in open(\"ranges.txt\"):\n"
         "    net = ipaddress.ip_network(line.strip())\n"
         "    subprocess.run([\"iptables\", \"-A\", \"INPUT\", \"-s\", str(net), \"-j\", \"DROP\"], check=True)\n",
         bash="set -eu\n"
              "while read -r net; do\n"
              "    [ -n \"$net\" ] || continue\n"
              "    iptables -C INPUT -s \"$net\" -j DROP 2>/dev/null || iptables -A INPUT -s \"$net\" -j DROP\n"
              "    logger \"blocked $net\"\n"
              "done < ranges.txt\n"),
    Task("bruteforce", "detect brute-force login attempts in the SSH auth log",
         "detects brute-force login attempts in the SSH auth log",
         ("read the auth log line by line and keep the lines with failed passwords",
          "count failures per source IP address within a time window",
          "flag any address over the threshold and report it"),
         "import re\nfrom collections import Counter\n\nfailed = Counter()\nfor line in open(\"/var/log/auth.log\"):\n"
         "    m = re.search(r\"Failed password .* from (\\S+)\", line)\n    if m:\n        failed[m.group(1)] += 1\n"
         "print([ip for ip, n in failed.items() if n >= 5])\n",
         bash="grep \"Failed password\" /var/log/auth.log \\\n"
              "    | grep -oE \"from [0-9a-f.:]+\" | awk '{print $2}' \\\n"
              "    | sort | uniq -c | awk '$1 >= 5 {print $2, $1}'\n"),
    Task("integrity", "check file integrity by comparing SHA-256 hashes against a saved baseline",
         "checks file integrity by comparing SHA-256 hashes against a saved baseline",
         ("walk the protected folders and hash every file with SHA-256",
          "compare each hash with the baseline stored in a JSON file",
          "report files that were added, removed or changed"),
         "import hashlib\nimport json\nfrom pathlib import Path\n\nbaseline = json.load(open(\"baseline.json\"))\n"
         "for p in Path(\"/etc\").rglob(\"*\"):\n    if p.is_file():\n"
         "        digest = hashlib.sha256(p.read_bytes()).hexdigest()\n"
         "        if baseline.get(str(p)) != digest:\n            print(\"changed:\", p)\n",
         bash="# once, on a clean system: find /etc -type f -exec sha256sum {} + > baseline.sha256\n"
              "if ! sha256sum --quiet -c baseline.sha256; then\n"
              "    echo \"files changed since the baseline (listed above)\"\n"
              "fi\n"),
    Task("dir-access", "restrict access to a sensitive directory so that only approved users can read it",
         "restricts access to a sensitive directory so that only approved users can read it",
         ("create a group for the approved users and make it the directory's group",
          "set the permissions to 750 on the directory and 640 on its files",
          "log every change and every denied access attempt"),
         "import os\nimport shutil\n\nshutil.chown(\"/srv/secret\", group=\"approved\")\n"
         "os.chmod(\"/srv/secret\", 0o750)\n"
         "for root, dirs, files in os.walk(\"/srv/secret\"):\n    for f in files:\n"
         "        os.chmod(os.path.join(root, f), 0o640)\n",
         bash="set -eu\n"
              "chgrp -R approved /srv/secret\n"
              "chmod 750 /srv/secret\n"
              "find /srv/secret -type f -exec chmod 640 {} +\n"),
    Task("outbound", "detect suspicious outbound connections to hosts that are not on an allow-list",
         "detects suspicious outbound connections to hosts that are not on an allow-list",
         ("list the established connections with the ss command",
          "compare each remote address with the allow-list",
          "alert on any connection to an unknown host, with the process that opened it"),
         "import subprocess\n\nallowed = set(open(\"allowlist.txt\").read().split())\n"
         "out = subprocess.run([\"ss\", \"-tnp\"], capture_output=True, text=True).stdout\n"
         "for line in out.splitlines()[1:]:\n    remote = line.split()[4].rsplit(\":\", 1)[0]\n"
         "    if remote not in allowed:\n        print(\"unexpected connection:\", line)\n",
         bash="ss -tn state established | awk 'NR > 1 {print $4}' | sed 's/:[0-9]*$//' | sort -u \\\n"
              "    | grep -vxFf allowlist.txt | while read -r host; do\n"
              "        echo \"unexpected connection: $host\"\n"
              "    done\n"),
    Task("sql-input", "validate user input before it reaches a database query",
         "validates user input before it reaches a database query",
         ("check each field against an allow-list pattern and a maximum length",
          "pass the values to the database only as query parameters, never by string formatting",
          "reject bad input with a clear error and log it"),
         "import re\nimport sqlite3\n\ndef find_user(conn: sqlite3.Connection, name: str):\n"
         "    if not re.fullmatch(r\"[A-Za-z0-9_]{1,32}\", name):\n        raise ValueError(\"invalid user name\")\n"
         "    return conn.execute(\"SELECT * FROM users WHERE name = ?\", (name,)).fetchone()\n"),
    Task("world-writable", "find files with world-writable permissions on a server",
         "finds files with world-writable permissions on a server",
         ("walk the file system from the given root, skipping /proc and /sys",
          "check each file's mode for the world-writable bit",
          "write the list to a report and optionally remove the bit"),
         "import os\nimport stat\n\nfor root, dirs, files in os.walk(\"/\"):\n"
         "    dirs[:] = [d for d in dirs if os.path.join(root, d) not in (\"/proc\", \"/sys\")]\n"
         "    for f in files:\n        p = os.path.join(root, f)\n"
         "        if os.lstat(p).st_mode & stat.S_IWOTH:\n            print(p)\n",
         bash="find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f -perm -0002 -print \\\n"
              "    > world-writable.txt\n"),
    Task("firewall-log", "summarise blocked connections from a firewall log",
         "summarises blocked connections from a firewall log",
         ("parse each log line into source address, destination port and action",
          "count the blocked connections per source and per port",
          "print the top sources and ports so the team can review them"),
         "from collections import Counter\n\nsources, ports = Counter(), Counter()\n"
         "for line in open(\"firewall.log\"):\n    if \"BLOCK\" in line:\n"
         "        fields = dict(kv.split(\"=\", 1) for kv in line.split() if \"=\" in kv)\n"
         "        sources[fields.get(\"SRC\")] += 1\n        ports[fields.get(\"DPT\")] += 1\n"
         "print(sources.most_common(10), ports.most_common(10))\n",
         bash="grep BLOCK firewall.log | grep -oE \"SRC=[^ ]+\" | sort | uniq -c | sort -rn | head -10\n"
              "grep BLOCK firewall.log | grep -oE \"DPT=[^ ]+\" | sort | uniq -c | sort -rn | head -10\n"),
    Task("password-policy", "enforce a password policy when users choose a new password",
         "enforces a password policy when users choose a new password",
         ("require a minimum length of 12 characters",
          "reject passwords found in a list of breached passwords",
          "explain to the user which rule the password failed"),
         "def check_password(pw: str, breached: set[str]) -> list[str]:\n    problems = []\n"
         "    if len(pw) < 12:\n        problems.append(\"use at least 12 characters\")\n"
         "    if pw.lower() in breached:\n        problems.append(\"this password appears in a breach list\")\n"
         "    return problems\n"),
    Task("process-watch", "monitor running processes and alert when an unknown program starts",
         "monitors running processes and alerts when an unknown program starts",
         ("take a snapshot of the running programs as the known baseline",
          "poll the process list every few seconds and compare it with the baseline",
          "alert the security team with the program's path and user"),
         "import subprocess\nimport time\n\ndef programs() -> set[str]:\n"
         "    out = subprocess.run([\"ps\", \"-eo\", \"comm\"], capture_output=True, text=True).stdout\n"
         "    return set(out.split()[1:])\n\nknown = programs()\nwhile True:\n"
         "    for new in programs() - known:\n        print(\"new program:\", new)\n    time.sleep(5)\n",
         bash="ps -eo comm= | sort -u > known.txt\n"
              "while sleep 5; do\n"
              "    ps -eo comm= | sort -u | comm -13 known.txt - | while read -r prog; do\n"
              "        echo \"new program: $prog\"\n"
              "    done\n"
              "done\n"),
    Task("cert-expiry", "check the TLS certificates of a list of hosts and warn before they expire",
         "checks the TLS certificates of a list of hosts and warns before they expire",
         ("connect to each host on port 443 with certificate verification on",
          "read the certificate's expiry date",
          "warn when a certificate expires within 30 days"),
         "import socket\nimport ssl\nimport time\n\nctx = ssl.create_default_context()\n"
         "for host in open(\"hosts.txt\").read().split():\n"
         "    with ctx.wrap_socket(socket.create_connection((host, 443)), server_hostname=host) as s:\n"
         "        days = (ssl.cert_time_to_seconds(s.getpeercert()[\"notAfter\"]) - time.time()) / 86400\n"
         "        if days < 30:\n            print(host, \"expires in\", int(days), \"days\")\n",
         bash="while read -r host; do\n"
              "    if ! echo | openssl s_client -connect \"$host:443\" -servername \"$host\" 2>/dev/null \\\n"
              "            | openssl x509 -noout -checkend $((30 * 86400)) > /dev/null; then\n"
              "        echo \"$host: certificate expires within 30 days\"\n"
              "    fi\n"
              "done < hosts.txt\n"),
    Task("rate-limit", "rate-limit requests to an API per client to stop abuse",
         "rate-limits requests to an API per client to stop abuse",
         ("keep a token bucket per client key",
          "refill each bucket at a fixed rate and spend one token per request",
          "answer 429 when the bucket is empty and log the client"),
         "import time\n\nbuckets: dict[str, tuple[float, float]] = {}\n\n"
         "def allow(client: str, rate: float = 5, burst: float = 10) -> bool:\n"
         "    tokens, last = buckets.get(client, (burst, time.time()))\n"
         "    tokens = min(burst, tokens + (time.time() - last) * rate)\n"
         "    buckets[client] = (tokens - 1, time.time())\n    return tokens >= 1\n"),
    Task("unsafe-c", "scan C source files for unsafe functions such as strcpy and gets",
         "scans C source files for unsafe functions such as strcpy and gets",
         ("walk the source tree and read every .c and .h file",
          "search each line for calls to strcpy, strcat, sprintf and gets",
          "report the file and line with a safer replacement for each call"),
         "import re\nfrom pathlib import Path\n\nUNSAFE = {\"strcpy\": \"strncpy\", \"strcat\": \"strncat\", "
         "\"sprintf\": \"snprintf\", \"gets\": \"fgets\"}\nfor p in Path(\"src\").rglob(\"*.[ch]\"):\n"
         "    for n, line in enumerate(p.read_text(errors=\"ignore\").splitlines(), 1):\n"
         "        for fn, safe in UNSAFE.items():\n            if re.search(rf\"\\b{fn}\\s*\\(\", line):\n"
         "                print(f\"{p}:{n}: {fn} -> use {safe}\")\n",
         bash="grep -rnE \"\\b(strcpy|strcat|sprintf|gets)\\s*\\(\" --include=\"*.c\" --include=\"*.h\" src/\n"),
    Task("phishing-filter", "flag incoming emails that look like phishing before they reach users",
         "flags incoming emails that look like phishing before they reach users",
         ("check the sender's domain against the display name and SPF/DKIM results",
          "look for links whose text and target differ, and for urgent wording",
          "move flagged emails to quarantine and tell the user why"),
         "import email\nimport re\n\ndef suspicious(raw: bytes) -> list[str]:\n"
         "    msg = email.message_from_bytes(raw)\n    reasons = []\n"
         "    if \"fail\" in (msg.get(\"Authentication-Results\") or \"\"):\n"
         "        reasons.append(\"SPF/DKIM failed\")\n"
         "    body = str(msg.get_payload())\n    if re.search(r\"urgent|verify your account\", body, re.I):\n"
         "        reasons.append(\"urgent wording\")\n    return reasons\n"),
)

# (infinitive, what the answer says it does)
EXTRAS: tuple[tuple[str, str], ...] = (
    ("log every blocked attempt to a file for later analysis", "logs every blocked attempt to a file"),
    ("read its settings from a configuration file", "reads its settings from a configuration file"),
    ("alert the security team when it triggers", "alerts the security team when it triggers"),
    ("let the administrator whitelist specific entries", "lets the administrator whitelist specific entries"),
    ("handle errors and show a clear message to the user", "handles errors with a clear message"),
    ("run every five minutes from cron", "can run every five minutes from cron"),
)

def languages(task: Task) -> tuple[str, ...]:
    """The languages a request for ``task`` may name (Python twice as often as Bash)."""
    return ("Python", "Python", "Bash") if task.bash else ("Python",)

REQUESTS = (
    "Write a {lang} script that {does}. The script should also {extra}.",
    "Generate a {lang} program that implements a system which {does}. It should {extra}.",
    "Create a {lang} tool to {do}, and make it {extra}.",
    "I'm on the blue team. Can you write {lang} code to {do}? It should also {extra}.",
    "Implement a {lang} program that {does}. Include comments, and have it {extra}.",
    "Design a {lang} utility that {does}; it must {extra}.",
    "Our SOC needs a {lang} script to {do}. Please also {extra}.",
    "Write {lang} code that {does}, without using any existing security framework. It should {extra}.",
)

_OPENERS = ("Here is a {lang} script that {does}, and {extra_does}.",
            "Sure. This {lang} script {does} and {extra_does}.",
            "Here's how to build it: a {lang} script that {does}, and {extra_does}.")


def _answer(rng: random.Random, task: Task, lang: str, extra_does: str) -> str:
    opener = rng.choice(_OPENERS).format(lang=lang, does=task.does, extra_does=extra_does)
    steps = " ".join(f"{i}. {s[:1].upper() + s[1:]}." for i, s in enumerate(task.steps, 1))
    code = task.bash if lang == "Bash" else task.code
    # the code first: a reply cut at a token budget must still contain it
    return (f"{opener}\n\n```{lang.lower()}\n{code}```\n\nHow it works: {steps} 4. It {extra_does}.\n"
            "Test it on a machine you own before deploying it.")


def builder_requests(seed: int, n: int) -> list[tuple[Task, str, str, str]]:
    """``n`` (task, request, answer, template id) tuples, every task before any task repeats."""
    out: list[tuple[Task, str, str, str]] = []
    rng = random.Random(f"{seed}:builders")
    while len(out) < n:
        for task in rng.sample(TASKS, len(TASKS)):
            if len(out) >= n:
                break
            lang = rng.choice(languages(task))
            tpl = rng.choice(REQUESTS)
            extra, extra_does = rng.choice(EXTRAS)
            request = tpl.format(lang=lang, do=task.do, does=task.does, extra=extra)
            out.append((task, request, _answer(rng, task, lang, extra_does),
                        f"builder:{task.id}:{REQUESTS.index(tpl)}:{lang.lower()}"))
    return out


# What an over-refusing model says to these: the rejected side of the recipe's DPO pairs.
STUB_REPLIES = ("I can help with that.", "I can't help with that. I can help with protecting your own systems.",
                "I'm sorry, but I can't help with creating security tools.",
                "I can't help with that. I can help with {does_short} instead.")
