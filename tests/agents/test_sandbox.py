"""Safety rails of the bubblewrap sandbox: every test makes the attempt for real and asserts the outcome."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secops_ai.agents.sandbox import Sandbox, SandboxLimits, SandboxUnavailable


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file() and not path.is_symlink():
            h.update(path.read_bytes())
    return h.hexdigest()


def procs_of_uid(uid: int) -> list[int]:
    """Host pids whose real uid is ``uid`` (to prove nothing from a sandbox outlives it)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            out.append(int(entry))
                        break
        except OSError:
            continue
    return out


@pytest.fixture
def original(tmp_path: Path) -> Path:
    root = tmp_path / "original"
    root.mkdir()
    (root / "main.py").write_text("print('hello from the copy')\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "mod.py").write_text("X = 1\n")
    return root


@pytest.fixture
def sandbox(original: Path) -> Iterator[Sandbox]:
    sb = Sandbox(SandboxLimits(wall_timeout=30, cpu_seconds=20))
    sb.working_copy(original)
    yield sb
    sb.cleanup()


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_missing_bubblewrap_fails_with_install_hint() -> None:
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        Sandbox(bwrap="definitely-not-bwrap")


def test_runs_command_in_private_copy_and_reports_streams(sandbox: Sandbox, original: Path) -> None:
    result = sandbox.run("python3 main.py; echo oops >&2; exit 3")
    assert result.exit_code == 3 and not result.timed_out and not result.killed
    assert result.stdout == "hello from the copy\n"
    assert result.stderr == "oops\n"
    argv_result = sandbox.run(["cat", "mod.py"], cwd="pkg")
    assert argv_result.ok and argv_result.stdout == "X = 1\n"
    assert sandbox.root is not None and sandbox.root != original and (sandbox.root / "main.py").is_file()


def test_cwd_outside_the_copy_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escapes"):
        sandbox.run(["true"], cwd="../..")
    with pytest.raises(ValueError, match="outside the sandbox's working copy"):
        sandbox.run(["true"], cwd=tmp_path)


def test_network_egress_is_blocked(sandbox: Sandbox) -> None:
    # A real listener on the host's loopback: the sandbox must not reach it (own network namespace).
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    result = sandbox.run(py(f"""
        import socket
        for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 80), ("example.com", 443)):
            try:
                socket.create_connection((host, port), timeout=2).close()
                print("CONNECTED", host)
            except OSError as exc:
                print("BLOCKED", host, type(exc).__name__)
    """))
    thread.join()
    server.close()
    assert result.ok, result.stderr
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("BLOCKED") == 3
    assert accepted == []  # the host listener never saw a connection
    interfaces = sandbox.run(["cat", "/proc/net/dev"]).stdout
    assert [line.split(":")[0].strip() for line in interfaces.splitlines()[2:]] == ["lo"]


def test_writing_outside_the_working_copy_fails(sandbox: Sandbox, original: Path, tmp_path: Path) -> None:
    host_target = tmp_path / "planted.txt"
    result = sandbox.run(py(f"""
        for path in ("/usr/planted", "/etc/planted", "/planted", {str(host_target)!r}, {str(original / 'x')!r}):
            try:
                open(path, "w").write("pwned")
                print("WROTE", path)
            except OSError as exc:
                print("DENIED", path, exc.strerror)
        open("inside.txt", "w").write("ok")
        print("INSIDE OK")
    """))
    assert result.ok, result.stderr
    assert "WROTE" not in result.stdout and result.stdout.count("DENIED") == 5
    assert "INSIDE OK" in result.stdout
    assert not host_target.exists() and not Path("/usr/planted").exists() and not (original / "x").exists()
    assert sandbox.root is not None and (sandbox.root / "inside.txt").read_text() == "ok"
    assert not (original / "inside.txt").exists()


def test_secret_outside_the_copy_is_not_visible(original: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN")
    (original / "link_to_secret").symlink_to(secret)  # a planted symlink must not reach it either
    with Sandbox(SandboxLimits(wall_timeout=20)) as sb:
        sb.working_copy(original)
        result = sb.run(f"cat {secret}; cat link_to_secret; ls /work /root /home {tmp_path} 2>&1; cat /etc/shadow")
        assert "TOP-SECRET-TOKEN" not in result.stdout + result.stderr
        assert "No such file or directory" in result.stderr
        listing = sb.run(["ls", "/"]).stdout.split()
        assert "home" not in listing and "srv" not in listing and "workspace" in listing
        assert not sb.run(["test", "-e", __file__]).ok  # the project's own sources are out of view
        assert not sb.run(["test", "-e", str(secret)]).ok
        assert not sb.run(["test", "-e", "/etc/shadow"]).ok and not sb.run(["test", "-e", "/etc/ssl/private"]).ok
        assert secret.read_text() == "TOP-SECRET-TOKEN"


def test_fork_bomb_is_contained(original: Path) -> None:
    limit = 24
    with Sandbox(SandboxLimits(max_processes=limit, wall_timeout=20)) as sb:
        sb.working_copy(original)
        result = sb.run(py("""
            import os, time
            children = 0
            error = None
            for _ in range(500):
                try:
                    pid = os.fork()
                except OSError as exc:
                    error = exc.strerror
                    break
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
            print(children, error)
        """))
        assert result.ok, result.stderr
        children, _, error = result.stdout.strip().partition(" ")
        assert int(children) < limit  # the 500-fork loop was stopped by RLIMIT_NPROC
        assert error == "Resource temporarily unavailable"
        # the sleeping children were killed with the sandbox, not left on the host
        if os.geteuid() == 0:
            assert procs_of_uid(sb.uid) == []

        bomb = sb.run("bomb() { bomb | bomb & }; bomb; sleep 1",
                      limits=SandboxLimits(max_processes=limit, wall_timeout=5))
        assert "Cannot fork" in bomb.stderr  # the classic bomb hit the process limit...
        assert not bomb.timed_out and bomb.duration_s < 5  # ...and did not stall the sandbox
        if os.geteuid() == 0:
            assert procs_of_uid(sb.uid) == []
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


def test_gigabytes_of_output_are_capped_and_killed(sandbox: Sandbox) -> None:
    limits = SandboxLimits(output_cap=4096, output_kill_bytes=8 << 20, wall_timeout=30)
    result = sandbox.run("head -c 4G /dev/zero | tr '\\0' x", limits=limits)
    assert result.killed and not result.timed_out
    assert result.kill_reason is not None and "output exceeded" in result.kill_reason
    assert len(result.stdout) == 4096 and result.stdout_truncated and result.truncated
    assert 8 << 20 < result.output_bytes < 1 << 30  # stopped long before 4 GiB
    assert result.duration_s < 20


def test_large_output_under_the_kill_threshold_is_truncated_not_killed(sandbox: Sandbox) -> None:
    result = sandbox.run("head -c 3000000 /dev/zero | tr '\\0' y", limits=SandboxLimits(output_cap=1000))
    assert result.ok and result.output_bytes == 3_000_000
    assert result.stdout == "y" * 1000 and result.stdout_truncated


def test_sleeping_past_the_timeout_kills_the_whole_sandbox(sandbox: Sandbox) -> None:
    result = sandbox.run("sleep 60 & setsid sleep 60 & nohup sleep 60 >/dev/null 2>&1 & sleep 60",
                         limits=SandboxLimits(wall_timeout=1.5))
    assert result.timed_out and result.killed and result.exit_code is None
    assert 1.4 < result.duration_s < 10
    if os.geteuid() == 0:
        assert procs_of_uid(sandbox.uid) == []  # daemons in their own session died with the PID namespace


def test_memory_file_size_and_cpu_limits(sandbox: Sandbox) -> None:
    mem = sandbox.run(py("""
        try:
            block = bytearray(1 << 30)
            print("ALLOCATED")
        except MemoryError:
            print("MEMORY LIMIT")
    """), limits=SandboxLimits(memory_bytes=256 << 20))
    assert mem.stdout.strip() == "MEMORY LIMIT"

    big = sandbox.run("head -c 5000000 /dev/zero > big.bin", limits=SandboxLimits(max_file_size=1 << 20))
    assert not big.ok
    assert sandbox.root is not None and (sandbox.root / "big.bin").stat().st_size <= 1 << 20

    cpu = sandbox.run(py("while True: pass"), limits=SandboxLimits(cpu_seconds=1, wall_timeout=30))
    assert not cpu.ok and not cpu.timed_out
    assert cpu.kill_reason in ("cpu limit", "killed by SIGKILL")
    assert cpu.duration_s < 15


def test_commands_cannot_change_the_original(sandbox: Sandbox, original: Path) -> None:
    before = tree_digest(original)
    result = sandbox.run("rm -rf ./* && echo gone > main.py && ls")
    assert result.ok
    assert tree_digest(original) == before
    assert (original / "pkg" / "mod.py").read_text() == "X = 1\n"


def test_stdin_and_output_flow_together(sandbox: Sandbox) -> None:
    # writes 200 kB before reading 500 kB of stdin: both pipes overflow unless stdin is fed concurrently
    result = sandbox.run("head -c 200000 /dev/zero | tr '\\0' a; wc -c", stdin=b"x" * 500_000,
                         limits=SandboxLimits(output_cap=300_000, wall_timeout=20))
    assert result.ok and not result.timed_out
    assert result.stdout.endswith("500000\n") and result.stdout.count("a") == 200_000


def test_host_without_namespaces_fails_at_construction(tmp_path: Path) -> None:
    # stands in for a bwrap that runs but may not create namespaces (an unprivileged container)
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match=r"Creating new namespace failed.*--privileged"):
        Sandbox(bwrap=str(fake))
