"""Deliberately vulnerable sample code that the starter build scans with the real ``bandit``.

It is kept as a string (not an importable module) so nothing ever executes it and linters skip it.
"""

from __future__ import annotations

SAMPLE_FILES: dict[str, str] = {
    "webapp/views.py": '''\
import hashlib
import os
import pickle
import random
import sqlite3
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import requests
import yaml

SECRET_KEY = "s3cr3t-dev-key"
DB_PASSWORD = "hunter2"


def search_users(conn: sqlite3.Connection, name: str):
    query = "SELECT id, email FROM users WHERE name = '%s'" % name
    return conn.execute(query).fetchall()


def ping(host: str) -> int:
    return subprocess.call("ping -c 1 " + host, shell=True)


def archive(path: str) -> None:
    os.system("tar czf /tmp/backup.tgz " + path)


def load_session(blob: bytes):
    return pickle.loads(blob)


def load_config(text: str):
    return yaml.load(text)


def password_hash(password: str) -> str:
    return hashlib.md5(password.encode()).hexdigest()


def reset_token() -> str:
    return str(random.random())


def calculator(expression: str):
    return eval(expression)


def run_plugin(code: str) -> None:
    exec(code)


def fetch(url: str) -> bytes:
    return requests.get(url, verify=False).content


def scratch_file() -> str:
    return tempfile.mktemp()


def parse_invoice(xml_text: str):
    return ET.fromstring(xml_text)


def make_world_writable(path: str) -> None:
    os.chmod(path, 0o777)


def debug_server(app) -> None:
    app.run(host="0.0.0.0", debug=True)
''',
    "webapp/jobs.py": '''\
import subprocess
import telnetlib
from ftplib import FTP


def convert(filename: str) -> None:
    subprocess.Popen("convert %s out.png" % filename, shell=True)


def legacy_login(host: str) -> None:
    session = telnetlib.Telnet(host)
    session.write(b"admin\\n")


def upload(host: str, user: str, password: str = "changeme") -> None:
    ftp = FTP(host)
    ftp.login(user, password)


def check(flag: bool) -> None:
    assert flag, "flag must be set"
    try:
        subprocess.check_call(["true"])
    except Exception:
        pass
''',
}
