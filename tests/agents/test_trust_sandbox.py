"""Issue 10.10: no nested user namespaces, no host paths through /proc/1, total bytes written per run capped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from secops_ai.agents.safe_paths import QuotaExceeded
from secops_ai.agents.sandbox import Sandbox, SandboxLimits


@pytest.fixture
def original(tmp_path: Path) -> Path:
    root = tmp_path / "original-repo-path"
    root.mkdir()
    (root / "main.py").write_text("print('hi')\n")
    return root


@pytest.fixture
def sandbox(original: Path) -> Iterator[Sandbox]:
    sb = Sandbox(SandboxLimits(wall_timeout=30, cpu_seconds=20), disk_quota=8 << 20)
    sb.working_copy(original)
    yield sb
    sb.cleanup()


def test_nested_user_namespaces_are_refused(sandbox: Sandbox) -> None:
    """`unshare -Ur` used to give uid 0 (and every capability) inside a new user namespace."""
    result = sandbox.run("unshare -Ur id -u; echo rc=$?")
    assert "rc=0" not in result.stdout and "Operation not permitted" in result.stderr, result.summary()
    direct = sandbox.run(["python3", "-c", "import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
                                           "print(libc.unshare(0x10000000), ctypes.get_errno())"])
    assert direct.stdout.split() == ["-1", "1"], direct.summary()  # unshare(CLONE_NEWUSER) -> EPERM
    # an ordinary program that forks and spawns still works under the filter
    spawned = sandbox.run(["python3", "-c", "import subprocess; print(subprocess.run(['echo', 'ok'], "
                                            "capture_output=True, text=True).stdout.strip())"])
    assert spawned.ok and spawned.stdout.strip() == "ok", spawned.summary()


def test_no_host_path_or_environment_through_proc_1(sandbox: Sandbox, monkeypatch, original: Path) -> None:
    monkeypatch.setenv("SECOPS_PLANTED_HOST_SECRET", "env-secret-5b1e")
    assert sandbox.root is not None
    result = sandbox.run("cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/1/environ 2>/dev/null | tr '\\0' ' '")
    assert result.ok, result.summary()
    assert str(sandbox.root) not in result.stdout  # the working copy's host folder
    assert str(sandbox.root.parent) not in result.stdout
    assert "env-secret-5b1e" not in result.stdout and str(original) not in result.stdout


def test_total_bytes_written_per_run_are_capped(sandbox: Sandbox) -> None:
    """Each file stays under RLIMIT_FSIZE, but together they pass the run's disk quota: the command is killed."""
    result = sandbox.run("i=0; while [ $i -lt 400 ]; do head -c 1048576 /dev/zero > f$i || exit 3; i=$((i+1)); "
                         "done; echo wrote-all")
    assert result.killed and "disk quota" in (result.kill_reason or ""), result.summary()
    assert "wrote-all" not in result.stdout
    # a second command starting over quota is stopped at once, not allowed to add more
    again = sandbox.run("echo more > more.txt")
    assert again.killed and "disk quota" in (again.kill_reason or "")


def test_working_copy_larger_than_the_quota_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob.bin").write_bytes(b"\1" * (3 << 20))
    with Sandbox(disk_quota=1 << 20) as sb, pytest.raises(QuotaExceeded):
        sb.working_copy(big)
    with Sandbox() as sb, pytest.raises(QuotaExceeded):
        sb.working_copy(big, max_files=0)
