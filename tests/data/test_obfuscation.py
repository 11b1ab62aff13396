"""Keyed pseudonyms: stable per key, shape-preserving, and no original identifier survives."""

from __future__ import annotations

import ipaddress
import re

import pytest

from secops_ai.data.obfuscation import Pseudonymizer

AUTH_LOG = "".join(line + "\n" for line in (
    'Nov 25 17:46:56 bastion01 sshd[1234]: Failed password for invalid user oracle from '
    '203.0.113.7 port 52211 ssh2',
    'Nov 25 17:46:58 bastion01 sshd[1234]: Invalid user mallory from 198.51.100.23 port 40022',
    'Nov 25 17:47:03 bastion01 sshd[1240]: Accepted publickey for alice from '
    '2001:db8:85a3::8a2e:370:7334 port 50122 ssh2',
    'Nov 25 17:47:03 bastion01 sshd[1240]: pam_unix(sshd:session): session opened for user '
    'alice by (uid=0)',
    'Nov 25 17:48:10 db01.corp.acme.com sudo:    bobsmith : TTY=pts/0 ; PWD=/home/bobsmith ; '
    'USER=root ; COMMAND=/bin/cat /etc/shadow',
    '2026-11-25T17:49:00.123+00:00 web-02 app[77]: login ok user=carol '
    'email=carol.jones@acme.com token=tk_9f8e7d6c5b4a api_key=AKIAIOSFODNN7EXAMPLE',
    '2026-11-25T17:49:01Z web-02 app[77]: upstream '
    'postgres://svc_app:Pa55w0rd!@10.20.30.40:5432/orders password=hunter2',
    '2026-11-25T17:49:02Z web-02 app[77]: Authorization: Bearer '
    'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkYXZlIn0.c2lnbmF0dXJlX2hlcmU',
    'Nov 25 17:49:30 bastion01 useradd[812]: new user: name=sysupd, UID=1001, GID=1001, shell=/bin/bash',
    '192.0.2.44 - erin [25/Nov/2026:17:50:01 +0000] "GET /reset?session=5a7c9e1f&next=/home '
    'HTTP/1.1" 302 0 "https://portal.acme.io/login" "Mozilla/5.0"',
))

IDENTIFIERS = ["bastion01", "oracle", "203.0.113.7", "mallory", "198.51.100.23", "2001:db8:85a3::8a2e:370:7334",
               "alice", "db01.corp.acme.com", "bobsmith", "web-02", "carol", "carol.jones@acme.com", "acme.com",
               "tk_9f8e7d6c5b4a", "AKIAIOSFODNN7EXAMPLE", "svc_app", "Pa55w0rd!", "10.20.30.40", "hunter2",
               "eyJhbGciOiJIUzI1NiJ9", "192.0.2.44", "erin", "5a7c9e1f", "portal.acme.io", "sysupd"]


def test_no_original_identifier_survives() -> None:
    out = Pseudonymizer("test-key").text(AUTH_LOG)
    for ident in IDENTIFIERS:
        assert ident not in out, f"{ident!r} leaked:\n{out}"
    # what is not an identifier stays readable
    for keep in ("Failed password for invalid user", "sshd[1234]", "USER=root", "COMMAND=/bin/cat /etc/shadow",
                 "GET /reset", "Mozilla/5.0", "port 52211", "new user: name="):
        assert keep in out
    assert "test-key" not in out


def test_pseudonyms_are_stable_keyed_and_shape_preserving() -> None:
    p1, p1_again, p2 = Pseudonymizer("k1"), Pseudonymizer(b"k1"), Pseudonymizer("k2")
    line = "Failed password for alice from 203.0.113.7 port 22 ssh2"
    assert p1.text(line) == p1_again.text(line)
    assert p1.text(line) != p2.text(line)
    ip = p1.value("ipv4", "203.0.113.7")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.0.0.0/8")
    assert ipaddress.ip_address(p1.value("ipv6", "2001:db8::1")).version == 6
    assert re.fullmatch(r"host-[0-9a-f]{6}\.example", p1.value("host", "db01.corp.acme.com"))
    assert re.fullmatch(r"user-[0-9a-f]{6}", p1.value("user", "alice"))
    assert re.fullmatch(r"user-[0-9a-f]{6}@example\.com", p1.value("email", "alice@acme.com"))
    assert re.fullmatch(r"secret-[0-9a-f]{10}", p1.value("secret", "hunter2"))
    # the same user gets the same pseudonym in every phrasing, so sessions can still be followed
    a = p1.value("user", "alice")
    assert a in p1.text("Accepted publickey for alice from 198.51.100.1 port 1 ssh2")
    assert a in p1.text("session opened for user alice by (uid=0)")
    assert p1.text("Nov 25 17:46:56 bastion01 sshd[1]: x").split()[3] == p1.value("host", "bastion01")
    assert "key" not in repr(p1).replace("key_id", "")


def test_code_and_timestamps_are_not_mangled() -> None:
    p = Pseudonymizer("k")
    text = "vuln.py:12 os.path.join(base, name) at 17:46:56 version 1.2.3 uses hashlib.md5"
    assert p.text(text) == text


def test_empty_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Pseudonymizer("")
