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


def test_dev_is_read_only_and_dev_shm_capped(sandbox: Sandbox) -> None:
    """bubblewrap's /dev is a tmpfs without a size; in a user namespace the sandbox's user could fill it."""
    result = sandbox.run("echo x > /dev/planted; echo rc=$?; echo x > /planted; echo rc=$?; "
                         "head -c 100000000 /dev/zero > /dev/shm/big; "
                         "echo shm=$?; du -sm /dev/shm | cut -f1")
    assert "rc=0" not in result.stdout and "shm=0" not in result.stdout, result.summary()
    assert int(result.stdout.split()[-1]) <= 64
    ok = sandbox.run(["python3", "-c", "import multiprocessing as m; m.Lock(); print('lock ok')"])
    assert ok.ok and "lock ok" in ok.stdout, ok.summary()  # POSIX semaphores still work


UNPRIVILEGED_SCRIPT = """
import pathlib, tempfile
from secops_ai.agents.sandbox import Sandbox, SandboxLimits
repo = pathlib.Path(tempfile.mkdtemp()); (repo / "a.py").write_text("x = 1\\n")
with Sandbox(SandboxLimits(wall_timeout=30)) as sb:
    sb.working_copy(repo)
    r = sb.run("unshare -Ur true; echo userns=$?; echo x > /dev/planted; echo dev=$?; echo x > /planted; "
               "echo root=$?; echo x > /work/planted; echo parent=$?; "
               "head -c 100000000 /dev/zero > /dev/shm/big; echo shm=$?; cat /proc/1/cmdline | tr '\\\\0' ' '")
    print("privileged", sb.privileged)
    print(r.stdout)
    print("ROOT", sb.root)
"""


def test_the_same_rails_hold_for_an_unprivileged_server(tmp_path: Path) -> None:
    """Run as a normal user, bubblewrap adds a user namespace, and /dev is the sandbox user's own tmpfs."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to start the check as an unprivileged user")
    home = Path(tempfile.mkdtemp(prefix="secops-unpriv-"))
    home.chmod(0o777)
    try:
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                               UNPRIVILEGED_SCRIPT], capture_output=True, text=True, timeout=120,
                              env={"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home)})
        if "cannot create a sandbox" in proc.stderr or "Permission denied" in proc.stderr:
            pytest.skip(f"this host cannot run the sandbox unprivileged: {proc.stderr[-300:]}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = proc.stdout
        assert "privileged False" in out
        for rail in ("userns", "dev", "shm", "root", "parent"):
            assert f"{rail}=0" not in out, out
        root = next(line for line in out.splitlines() if line.startswith("ROOT ")).split(" ", 1)[1]
        assert root not in out.split("ROOT ")[0]  # no host path of the copy in /proc/1/cmdline
    finally:
        shutil.rmtree(home, ignore_errors=True)
