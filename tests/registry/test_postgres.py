"""The registry on PostgreSQL (issue 15.1): a clear error without the driver, and a real server from Debian's
``postgresql`` package (initdb + pg_ctl in a temp folder, 127.0.0.1 only) receiving `secops-ai db migrate`."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secops_ai.cli.main import app
from secops_ai.config import Settings, Workspace
from secops_ai.registry import Registry, RegistryError


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1; yields its SQLAlchemy URL. Skipped (with the reason) only when
    the server binaries are not installed."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql (make setup)"
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    # not under pytest's tmp folder: that is private to its owner, and the server may run as another user
    root = Path(tempfile.mkdtemp(prefix="secops-pg-"))
    data = root / "data"
    # initdb refuses to run as root: drop to the package's `postgres` user when we are root (containers)
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = _free_port()
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "secops", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    log = root / "server.log"
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)
    try:
        url = f"postgresql+psycopg://secops@127.0.0.1:{port}/postgres"
        yield url
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_missing_driver_is_one_clear_line(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if `secops-ai[postgres]` were not installed
    url = "postgresql+psycopg://u:hunter2@127.0.0.1:1/db"
    with pytest.raises(RegistryError, match=r"pip install 'secops-ai\[postgres\]'"):
        Registry(Settings(home=workspace.root, DATABASE_URL=url))
    result = CliRunner().invoke(app, ["models", "list"], env={"DATABASE_URL": url})
    assert result.exit_code == 1 and "secops-ai[postgres]" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3
    with pytest.raises(RegistryError, match="psycopg 3"):
        Registry(Settings(home=workspace.root, DATABASE_URL="postgresql://u@127.0.0.1/db"))


def test_unreachable_database_names_it_without_the_password(workspace: Workspace) -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(RegistryError, match=r"cannot reach the registry database") as info:
        Registry(Settings(home=workspace.root, DATABASE_URL=f"postgresql+psycopg://u:hunter2@127.0.0.1:{port}/db"))
    assert "hunter2" not in str(info.value)


@pytest.mark.slow
def test_migrate_sqlite_registry_into_real_postgres(workspace: Workspace, add_run, postgres: str) -> None:
    a, b = add_run("run-a"), add_run("run-b")
    local = Registry(Settings(home=workspace.root))
    local.record_gate_result(a, True, {"message": "ok"})
    local.promote(a, actor="alice")
    local.promote(b, force=True, reason="hotfix", actor="bob")
    before = ([r.to_dict() | {"path": str(r.path)} for r in local.list()], local.history())

    runner = CliRunner()
    result = runner.invoke(app, ["db", "migrate", "--to", postgres])
    assert result.exit_code == 0, result.output
    assert '"registry_models": 2' in result.stdout and '"registry_gate_results": 1' in result.stdout
    again = runner.invoke(app, ["db", "migrate", "--to", postgres])
    assert again.exit_code == 1 and "already holds registry rows" in again.output

    remote = Registry(Settings(home=workspace.root, DATABASE_URL=postgres))
    assert remote.production() == b
    assert ([r.to_dict() | {"path": str(r.path)} for r in remote.list()], remote.history()) == before
    # the copied ids did not break the sequences: new events and gate results keep being written
    assert remote.rollback() == a
    remote.record_gate_result(b, False, {"message": "regressed"})
    assert remote.history()[-1]["action"] == "rollback" and remote.gate_result(b)["passed"] is False
    listed = runner.invoke(app, ["models", "list", "--json"], env={"DATABASE_URL": postgres})
    assert listed.exit_code == 0 and a in listed.stdout
    assert Registry(Settings(home=workspace.root)).production() == b  # the SQLite source was only read
