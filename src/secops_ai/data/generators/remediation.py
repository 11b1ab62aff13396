"""Concrete fixes for the weaknesses scanners report most, keyed by CWE id.

Triage answers use these (code-level advice a developer can apply) and fall back to the first mitigation in
the CWE catalog for any other id.
"""

from __future__ import annotations

FIXES: dict[int, str] = {
    20: "Parse untrusted XML with defusedxml (`defusedxml.ElementTree.fromstring`) and validate input against an "
        "allow-list schema before use.",
    22: "Resolve the path (`Path(base, name).resolve()`) and reject it unless it stays inside the allowed base "
        "directory; never pass user input straight to open().",
    78: "Avoid the shell: pass an argument list to subprocess without `shell=True` (e.g. "
        "`subprocess.run([\"ping\", \"-c\", \"1\", host], check=True)`), validate inputs against an allow-list, "
        "and use absolute executable paths.",
    79: "Encode output for its context (HTML-escape by default with an auto-escaping template engine), and add a "
        "Content-Security-Policy.",
    89: "Use parameterised queries (`conn.execute(\"SELECT ... WHERE name = ?\", (name,))`) or the ORM's query "
        "builder; never build SQL with string formatting or concatenation.",
    94: "Never execute code built from input; replace eval/exec with a parser for the data you expect "
        "(`ast.literal_eval`, `json.loads`) or an explicit dispatch table.",
    95: "Replace eval() with `ast.literal_eval` for literals or a small expression parser; never evaluate "
        "untrusted strings.",
    119: "Use bounded operations (`snprintf`, `strncpy` with explicit termination, `strlcpy`) and check lengths "
         "before copying; compile with -D_FORTIFY_SOURCE=2 and stack protection.",
    120: "Replace strcpy/strcat/gets with bounded calls that take the destination size and check the source "
         "length first.",
    134: "Never pass user input as the format string: write `printf(\"%s\", input)`.",
    259: "Remove the hard-coded password: read secrets from the environment or a secret manager at run time, "
         "rotate the exposed value, and add a secret scanner to CI.",
    295: "Keep certificate verification on (`verify=True`, the default) and pin a CA bundle if you need a private "
         "CA; never disable TLS checks in production code.",
    319: "Replace cleartext protocols (telnet, FTP, HTTP) with encrypted ones (SSH, SFTP/FTPS, HTTPS) and make "
         "sure credentials never cross the network in plain text.",
    327: "Use a modern algorithm: SHA-256 or better for integrity, and a slow password hash (argon2, scrypt, "
         "bcrypt) for passwords; if MD5/SHA1 is needed for a non-security purpose pass `usedforsecurity=False`.",
    328: "Use SHA-256 or better; for passwords use argon2/scrypt/bcrypt with a per-user salt.",
    330: "Use the `secrets` module (`secrets.token_urlsafe()`) for tokens, keys and anything security-relevant.",
    377: "Create temporary files atomically with `tempfile.NamedTemporaryFile` or `tempfile.mkstemp` instead of "
         "`mktemp()`, which is open to race conditions.",
    400: "Set timeouts on every network call (`requests.get(url, timeout=10)`) and bound request sizes and rates.",
    434: "Validate uploaded files by content type and size, store them outside the web root with generated "
         "names, and disable execution in the upload directory.",
    502: "Never unpickle or deserialize untrusted data: use a data-only format (JSON) or sign and verify the "
         "payload before loading it.",
    605: "Bind to the specific interface the service needs (e.g. 127.0.0.1 behind a reverse proxy) instead of "
         "0.0.0.0.",
    611: "Disable external entity resolution (use defusedxml, or configure the parser to forbid DTDs).",
    703: "Handle the specific exceptions you expect and log them; don't rely on `assert` for checks that must "
         "hold in production (asserts vanish under `python -O`).",
    732: "Give files the narrowest permissions that work (e.g. 0o600 for secrets, 0o644 for public files); never "
         "0o777.",
    798: "Remove embedded credentials, load them from a secret manager or environment at run time, and rotate "
         "the exposed ones.",
}
