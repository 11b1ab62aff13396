"""Run untrusted commands (scanners, agent shell commands, patched code) inside a bubblewrap sandbox.

What a sandboxed process sees and may do:

- a private, writable working copy mounted at ``/workspace`` (never the user's original folder);
- read-only system folders (``/usr``, ``/bin``, ``/lib*``, ``/sbin``, a few ``/etc`` files) and the read-only
  Python prefixes the scanners need; nothing else of the host (``/work``, ``/root``, ``/home``, the host ``/tmp``
  are absent), so secrets outside the copy cannot be read;
- a small private ``/tmp`` (tmpfs with a size cap), a minimal ``/dev``, its own ``/proc``;
- no network (own network namespace: loopback only), own PID/IPC/UTS namespaces;
- an unprivileged uid with no capabilities and ``no_new_privs``;
- rlimits on CPU seconds, address space, processes, file size and open files; a wall-clock timeout that kills
  the whole sandbox; stdout/stderr capped while they are read (a flood is drained then killed, never buffered);
- a disk quota over everything the sandbox's working copies hold (watched while a command runs: the command is
  killed when the copies pass it);
- no new user namespaces: a seccomp filter makes ``unshare(CLONE_NEWUSER)``/``clone(CLONE_NEWUSER)`` fail with
  EPERM (``clone3`` with ENOSYS, so libc falls back to ``clone``), so ``unshare -Ur`` cannot give uid 0 inside;
- bubblewrap's options (host paths of the copy and the bound prefixes) are passed through a file descriptor
  (``--args``), so ``/proc/1/cmdline`` inside shows no host path.

Why an unprivileged uid: Linux never enforces ``RLIMIT_NPROC`` for the root user, so a fork bomb run as root is
only stopped by the timeout. When we run as root, each :class:`Sandbox` picks its own unused uid and drops to it
inside the namespaces (``setpriv``), which makes the process limit real and private to that sandbox. Run as a
normal user, bubblewrap adds a user namespace and the caller's uid is used.

The PID namespace is what makes "kill the process group" complete: bubblewrap's init is pid 1 inside, it dies
with its parent (``--die-with-parent``), and when pid 1 of a namespace dies the kernel kills every process in it,
including daemons that called ``setsid``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import platform
import secrets
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from secops_ai.agents.safe_paths import QuotaExceeded, copy_tree, tree_usage

log = logging.getLogger(__name__)

SANDBOX_ROOT = "/workspace"
INSTALL_HINT = "install it with `apt-get install bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap`"

# /etc entries programs commonly need; the rest of /etc (shadow, ssh keys, machine config) stays out of view.
_ETC_ENTRIES = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
    "localtime", "ssl", "ca-certificates", "mime.types", "python3", "python3.11",
)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or util-linux's setpriv/prlimit) is missing or cannot create namespaces here."""


class SandboxLimits(BaseModel):
    """Resource limits for one sandboxed command (paired with :class:`Sandbox`, TRL-style)."""

    model_config = ConfigDict(frozen=True)

    cpu_seconds: int = Field(default=60, ge=1, description="RLIMIT_CPU: CPU seconds before SIGXCPU/SIGKILL.")
    memory_bytes: int = Field(default=2 << 30, ge=16 << 20, description="RLIMIT_AS: address space per process.")
    max_processes: int = Field(default=64, ge=1, description="RLIMIT_NPROC for the sandbox's own uid.")
    max_file_size: int = Field(default=64 << 20, ge=1024, description="RLIMIT_FSIZE: largest file one write may make.")
    max_open_files: int = Field(default=256, ge=16, description="RLIMIT_NOFILE.")
    wall_timeout: float = Field(default=120.0, gt=0, description="Seconds before the whole sandbox is killed.")
    output_cap: int = Field(default=64 << 10, ge=256, description="Bytes of stdout and of stderr kept.")
    output_kill_bytes: int = Field(
        default=32 << 20, ge=1024, description="Total output after which the command is killed (a flood)."
    )
    tmp_bytes: int = Field(default=128 << 20, ge=1 << 20, description="Size of the private /tmp tmpfs.")


class SandboxResult(BaseModel):
    """What a sandboxed command did. ``stdout``/``stderr`` are decoded (UTF-8, replacement) and capped."""

    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    killed: bool = False
    kill_reason: str | None = None
    duration_s: float
    output_bytes: int = Field(description="Bytes the command wrote to stdout+stderr, kept or not.")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.killed

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    def summary(self, limit: int = 4000) -> str:
        """A short human/LLM-readable account (exit status, then capped stdout and stderr)."""
        status = f"exit {self.exit_code}"
        if self.timed_out:
            status = f"timed out after {self.duration_s:.1f}s (killed)"
        elif self.killed:
            status = f"killed ({self.kill_reason})"
        parts = [status]
        if self.stdout:
            cut = "\n[stdout truncated]" if self.stdout_truncated else ""
            parts.append("stdout:\n" + _clip(self.stdout, limit) + cut)
        if self.stderr:
            cut = "\n[stderr truncated]" if self.stderr_truncated else ""
            parts.append("stderr:\n" + _clip(self.stderr, limit) + cut)
        return "\n".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters]"


def find_bwrap(bwrap: str = "bwrap") -> str:
    """Absolute path of bubblewrap, or :class:`SandboxUnavailable` with the install command."""
    path = shutil.which(bwrap)
    if path is None:
        raise SandboxUnavailable(f"{bwrap!r} not found on PATH; {INSTALL_HINT}")
    for tool in ("prlimit", "setpriv") if os.geteuid() == 0 else ("prlimit",):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"{tool!r} not found on PATH; install util-linux")
    return path


def _python_prefixes() -> list[Path]:
    """Folders the project's interpreters live in: this venv, its base Python, semgrep's venv."""
    prefixes = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)}
    semgrep = Path(sys.prefix) / "bin" / "semgrep"
    if semgrep.exists():
        prefixes.add(semgrep.resolve().parent.parent)
    return sorted(p.resolve() for p in prefixes if p.exists())


class Sandbox:
    """A bubblewrap jail around one writable working copy.

    >>> sb = Sandbox()
    >>> copy = sb.working_copy(Path("repo"))      # private copy, mounted at /workspace inside
    >>> sb.run(["bandit", "-r", "."]).stdout        # runs in /workspace with the default limits
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        root: Path | None = None,
        ro_paths: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        bwrap: str = "bwrap",
        disk_quota: int | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        # Bytes all of this sandbox's working copies (and the roots it ran in) may hold together; None: no cap.
        self.disk_quota = disk_quota
        self._roots: set[Path] = set()
        self.bwrap = find_bwrap(bwrap)
        self.root = Path(root).resolve() if root is not None else None
        self.ro_paths = [*_python_prefixes(), *(Path(p).resolve() for p in ro_paths)]
        self.env = dict(env or {})
        self.privileged = os.geteuid() == 0
        # A uid of our own makes RLIMIT_NPROC both enforced (never for root) and private to this sandbox.
        self.uid = 200_000 + secrets.randbelow(800_000) if self.privileged else os.geteuid()
        self.gid = self.uid if self.privileged else os.getegid()
        self._own_dirs: list[Path] = []
        _self_test(self)


    # -- working copies ---------------------------------------------------------------------------------------
    def working_copy(self, original_dir: Path, dest: Path | None = None, *, max_bytes: int | None = None,
                     max_files: int | None = None) -> Path:
        """Copy ``original_dir`` into a private folder the sandbox may write, and make it this sandbox's root.

        The original is only read. Symlinks are copied as links (they resolve inside the sandbox's view, so a
        link to a host file outside the copy points at nothing there); FIFOs, sockets, devices and files with
        several hard links (possibly a host file's inode) are skipped.
        :class:`~secops_ai.agents.safe_paths.QuotaExceeded` when the original holds more than ``max_bytes``
        (default: the disk quota) or ``max_files``; nothing is left behind then.
        """
        src = Path(original_dir).resolve()
        if not src.is_dir():
            raise NotADirectoryError(f"workspace {original_dir} is not a directory")
        if dest is None:
            parent = Path(tempfile.mkdtemp(prefix="secops-sandbox-"))
            self._own_dirs.append(parent)
            dest = parent / "workspace"
        dest = Path(dest).resolve()
        if dest == src or src in dest.parents:
            raise ValueError(f"working copy {dest} must not be inside the original {src}")
        limit = max_bytes if max_bytes is not None else self.disk_quota
        try:
            copy_tree(src, dest, max_bytes=limit, max_files=max_files, skip=frozenset({".git"}), skip_hardlinks=True)
        except QuotaExceeded:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        self._roots.add(dest)
        self.adopt(dest)
        if self.root is None:
            self.root = dest
        return dest

    def adopt(self, folder: Path) -> None:
        """Give the sandbox's uid ownership of ``folder`` so sandboxed commands may write in it."""
        if not self.privileged:
            return
        for dirpath, dirnames, filenames in os.walk(folder):
            os.chown(dirpath, self.uid, self.gid, follow_symlinks=False)
            for name in (*dirnames, *filenames):
                os.chown(os.path.join(dirpath, name), self.uid, self.gid, follow_symlinks=False)

    def cleanup(self) -> None:
        """Remove the temporary folders :meth:`working_copy` made."""
        for path in self._own_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._own_dirs.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- running ----------------------------------------------------------------------------------------------
    def command(
        self, argv: Sequence[str], root: Path, cwd: str, limits: SandboxLimits, ro_paths: Sequence[Path] = ()
    ) -> list[str]:
        """The full bwrap command line (exposed for docs and debugging; :meth:`run` passes the options by fd)."""
        options, tail = self._parts(argv, root, cwd, limits, ro_paths)
        return [self.bwrap, *options, *tail]

    def _parts(
        self, argv: Sequence[str], root: Path, cwd: str, limits: SandboxLimits, ro_paths: Sequence[Path] = ()
    ) -> tuple[list[str], list[str]]:
        """(bubblewrap's options, the command after them: setpriv/prlimit wrappers and ``argv``)."""
        cmd = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        if not self.privileged:
            cmd.append("--unshare-user")
        cmd += ["--die-with-parent", "--new-session", "--clearenv"]
        for d in _SYSTEM_DIRS:
            p = Path(d)
            if p.is_symlink():
                cmd += ["--symlink", os.readlink(p), d]
            elif p.is_dir():
                cmd += ["--ro-bind", d, d]
        cmd += ["--ro-bind", str(_minimal_etc()), "/etc"]
        # The private /tmp goes first: a venv that lives under the host's /tmp (a CI checkout there) is then
        # bound on top of it below, instead of being hidden by it.
        cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        made: set[str] = {"/", "/usr", "/etc", "/tmp"}
        for path in [*self.ro_paths, *(Path(p).resolve() for p in ro_paths)]:
            for parent in reversed(path.parents):  # world-traversable parents, so the dropped uid can reach it
                if str(parent) not in made:
                    made.add(str(parent))
                    cmd += ["--perms", "0755", "--dir", str(parent)]
            cmd += ["--ro-bind", str(path), str(path)]
        # /dev is a tmpfs of bubblewrap's, writable (and unbounded) for the sandbox's user in a user namespace:
        # give /dev/shm its own capped tmpfs and make the rest of /dev read-only.
        shm = min(limits.tmp_bytes, 64 << 20)
        cmd += ["--dev", "/dev", "--perms", "1777", "--size", str(shm), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
                "--proc", "/proc"]
        # bubblewrap's own root is a tmpfs without a size, which the sandbox's user owns in a user namespace:
        # read-only, so only /workspace (quota), /tmp and /dev/shm (capped tmpfs) take writes.
        cmd += ["--bind", str(root), SANDBOX_ROOT, "--remount-ro", "/", "--chdir", cwd]
        env = {
            "PATH": f"{Path(sys.prefix).resolve()}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
            **self.env,
        }
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        tail: list[str] = []
        if self.privileged:
            tail += ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        cpu = limits.cpu_seconds
        tail += ["prlimit", f"--cpu={cpu}:{cpu + 1}", f"--as={limits.memory_bytes}",
                 f"--nproc={limits.max_processes}", f"--fsize={limits.max_file_size}",
                 f"--nofile={limits.max_open_files}", "--core=0", "--"]
        return cmd, [*tail, *argv]

    def _launch(self, options: list[str], tail: list[str]) -> tuple[list[str], list[int]]:
        """The argv to exec and the fds it must inherit: options through ``--args`` and the seccomp program.

        Passing the options by fd keeps host paths (the copy's folder, bound prefixes) out of bubblewrap's own
        argv, which is what ``/proc/1/cmdline`` shows inside the sandbox.
        """
        fds = [_memfd("secops-bwrap-args", b"".join(o.encode() + b"\0" for o in options))]
        argv = [self.bwrap, "--args", str(fds[0])]
        program = _seccomp_program()
        if program is not None:
            fds.append(_memfd("secops-bwrap-seccomp", program))
            argv += ["--seccomp", str(fds[1])]
        elif not self.privileged:
            argv.append("--disable-userns")
        return [*argv, *tail], fds

    def _inner_cwd(self, root: Path, cwd: Path | str | None) -> str:
        if cwd is None:
            return SANDBOX_ROOT
        cwd_path = Path(cwd)
        if cwd_path.is_absolute():
            if str(cwd_path).startswith(SANDBOX_ROOT):
                return str(cwd_path)
            try:
                rel = cwd_path.resolve().relative_to(root)
            except ValueError:
                raise ValueError(f"cwd {cwd} is outside the sandbox's working copy {root}") from None
        else:
            rel = Path(os.path.normpath(cwd_path))
            if rel.parts and rel.parts[0] == "..":
                raise ValueError(f"cwd {cwd} escapes the sandbox's working copy")
        return str(Path(SANDBOX_ROOT) / rel)

    def run(
        self,
        argv: Sequence[str] | str,
        cwd: Path | str | None = None,
        *,
        root: Path | None = None,
        limits: SandboxLimits | None = None,
        stdin: bytes | None = None,
        ro_paths: Sequence[Path] = (),
    ) -> SandboxResult:
        """Run ``argv`` (a list, or a string given to ``/bin/sh -c``) inside the sandbox.

        ``root`` is the writable folder mounted at ``/workspace`` (default: this sandbox's working copy);
        ``cwd`` is a folder inside it (relative, ``/workspace/...`` or a host path under ``root``);
        ``ro_paths`` are extra host folders shown read-only at the same path (e.g. a scanner's rules).
        Never raises for what the command does; raises only for bad arguments or a missing sandbox.
        """
        limits = limits or self.limits
        run_root = Path(root).resolve() if root is not None else self.root
        if run_root is None:
            raise ValueError("the sandbox has no working copy: call Sandbox.working_copy(original_dir) first")
        if not run_root.is_dir():
            raise NotADirectoryError(f"sandbox root {run_root} does not exist")
        args = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
        if not args:
            raise ValueError("empty command")
        full, fds = self._launch(*self._parts(args, run_root, self._inner_cwd(run_root, cwd), limits, ro_paths))
        roots = {*self._roots, run_root}
        quota = self.disk_quota
        start = time.monotonic()
        proc = _spawn(full, fds, stdin)
        try:
            out = _drain(proc, limits, start + limits.wall_timeout, roots, quota)
        finally:
            self._reap(proc)
        if quota is not None and not (out.killed or out.timed_out) and _usage(roots, quota) > quota:
            out.killed, out.kill_reason = True, f"disk quota: the working copies passed {quota} bytes"
        exit_code = proc.returncode
        if exit_code is not None and exit_code < 0:  # killed by a signal before bwrap could report
            exit_code = 128 - exit_code
        if not out.killed and not out.timed_out and exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
            # RLIMIT_CPU sends SIGXCPU at the soft limit and SIGKILL at the hard one.
            out.kill_reason = "cpu limit" if exit_code == 128 + signal.SIGXCPU else "killed by SIGKILL"
        return SandboxResult(
            argv=args,
            exit_code=None if (out.timed_out or out.killed) else exit_code,
            stdout=out.kept["stdout"].decode("utf-8", "replace"),
            stderr=out.kept["stderr"].decode("utf-8", "replace"),
            stdout_truncated=out.truncated["stdout"],
            stderr_truncated=out.truncated["stderr"],
            timed_out=out.timed_out,
            killed=out.killed or out.timed_out,
            kill_reason=out.kill_reason,
            duration_s=time.monotonic() - start,
            output_bytes=out.total,
        )

    def _reap(self, proc: subprocess.Popen) -> None:
        """Kill what is left of the sandbox's process group and wait until none of its processes runs."""
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
        # pid 1 of the namespace dies asynchronously (PDEATHSIG after a kill; and bubblewrap may report a
        # normal exit before the kernel has torn down the rest): wait until every process of the sandbox's
        # own uid is gone, so that when run() returns nothing of this sandbox is still running.
        if self.privileged:
            _wait_for_uid_exit(self.uid)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def _spawn(argv: list[str], fds: list[int], stdin: bytes | None) -> subprocess.Popen:
    """Start bubblewrap with the fds it reads its options from (closed here once it has them)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # bwrap leads its own process group: one killpg reaches it
            close_fds=True,
            pass_fds=fds,
            env=_BWRAP_ENV,  # bwrap's init is pid 1 inside: the host's environment must not be in its environ
        )
    finally:
        for fd in fds:
            os.close(fd)
    if stdin is not None:  # fed from a thread: a command that writes before it reads must not deadlock us
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    return proc


@dataclass
class _Output:
    """What a run printed (capped per stream) and why it was stopped, if it was."""

    kept: dict[str, bytearray] = field(default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()})
    truncated: dict[str, bool] = field(default_factory=lambda: {"stdout": False, "stderr": False})
    total: int = 0
    timed_out: bool = False
    killed: bool = False
    kill_reason: str | None = None


def _drain(proc: subprocess.Popen, limits: SandboxLimits, deadline: float, roots: set[Path],
           quota: int | None) -> _Output:
    """Read both pipes until the command ends, keeping ``output_cap`` bytes of each; stop at the wall
    deadline, at ``output_kill_bytes`` in all, or when the working copies pass the disk quota."""
    out = _Output()
    next_check, check_every = 0.0, 0.25
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    try:
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                out.timed_out, out.kill_reason = True, f"wall timeout {limits.wall_timeout}s"
                return out
            if quota is not None and time.monotonic() >= next_check:
                t0 = time.monotonic()
                if _usage(roots, quota) > quota:
                    out.killed, out.kill_reason = True, f"disk quota: the working copies passed {quota} bytes"
                    return out
                check_every = max(0.25, 5 * (time.monotonic() - t0))  # big trees: walk less often
                next_check = time.monotonic() + check_every
            for key, _ in sel.select(timeout=min(remaining, check_every if quota is not None else 1.0)):
                chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                out.total += len(chunk)
                buf = out.kept[key.data]
                room = limits.output_cap - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > max(room, 0):
                    out.truncated[key.data] = True
            if out.total > limits.output_kill_bytes:
                out.killed, out.kill_reason = True, f"output exceeded {limits.output_kill_bytes} bytes"
                return out
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            out.timed_out, out.kill_reason = True, f"wall timeout {limits.wall_timeout}s"
        return out
    finally:
        sel.close()


_WORKING: set[tuple[str, bool]] = set()
_ETC_DIR: Path | None = None
_ETC_LOCK = threading.Lock()


def _minimal_etc() -> Path:
    """A private copy of the few /etc entries programs need, made once per process.

    One bind of this folder replaces a dozen single-file binds (each a mount in every sandbox start), and the
    sandbox's /etc holds exactly these entries: no shadow, no ssh keys, no host configuration.
    """
    global _ETC_DIR
    with _ETC_LOCK:
        if _ETC_DIR is not None and _ETC_DIR.is_dir():
            return _ETC_DIR
        etc = Path(tempfile.mkdtemp(prefix="secops-sandbox-etc-"))
        for name in _ETC_ENTRIES:
            src = Path("/etc") / name
            if src.is_symlink():
                (etc / name).symlink_to(os.readlink(src))
            elif src.is_dir():
                shutil.copytree(src, etc / name, symlinks=True, ignore=shutil.ignore_patterns("private"))
            elif src.is_file():
                shutil.copy2(src, etc / name)
        etc.chmod(0o755)
        atexit.register(shutil.rmtree, etc, True)
        _ETC_DIR = etc
        return etc
_NAMESPACE_HINT = (
    "in a container, run it with --privileged (or --cap-add SYS_ADMIN plus an unconfined seccomp/apparmor "
    "profile); as a normal user, allow user namespaces (sysctl kernel.unprivileged_userns_clone=1, and on "
    "Ubuntu 24.04+ kernel.apparmor_restrict_unprivileged_userns=0)"
)


def _self_test(sandbox: Sandbox) -> None:
    """Run ``true`` once per process and bwrap binary, so a host that cannot create namespaces fails here,
    with bubblewrap's own message, rather than as a mysterious exit 1 from every tool later."""
    key = (sandbox.bwrap, sandbox.privileged)
    if key in _WORKING:
        return
    with tempfile.TemporaryDirectory(prefix="secops-sandbox-check-") as tmp:
        argv, fds = sandbox._launch(*sandbox._parts(["true"], Path(tmp), SANDBOX_ROOT, SandboxLimits(wall_timeout=30)))
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=30, pass_fds=fds, env=_BWRAP_ENV)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap could not start a sandbox: {exc}") from None
        finally:
            for fd in fds:
                os.close(fd)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip() or f"exit code {proc.returncode}"
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox on this host: {message}; {_NAMESPACE_HINT}")
    _WORKING.add(key)


_BWRAP_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _usage(roots: set[Path], quota: int) -> int:
    return sum(tree_usage(r, max_bytes=quota + 1)[0] for r in roots if r.is_dir())


def _memfd(name: str, data: bytes) -> int:
    """An anonymous file holding ``data``, positioned at its start (what ``--args``/``--seccomp`` read)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# seccomp: refuse new user namespaces. (AUDIT_ARCH, {syscall: number}) per architecture.
_SECCOMP_ARCH = {
    "x86_64": (0xC000003E, {"unshare": 272, "clone": 56, "clone3": 435}),
    "aarch64": (0xC00000B7, {"unshare": 97, "clone": 220, "clone3": 435}),
}
_CLONE_NEWUSER = 0x10000000
_warned_no_seccomp = False


def _seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter: ``unshare``/``clone`` with ``CLONE_NEWUSER`` fail with EPERM, ``clone3``
    with ENOSYS (its flags sit in memory a filter cannot read; libc then falls back to ``clone``), and every
    syscall of a foreign ABI (i386 ``int 0x80``, x32) fails, so none of them reaches around the filter."""
    global _warned_no_seccomp
    arch = _SECCOMP_ARCH.get(platform.machine())
    if arch is None:
        if not _warned_no_seccomp:
            log.warning("no seccomp filter for %s: nested user namespaces are only blocked by --disable-userns "
                        "(non-root) here", platform.machine())
            _warned_no_seccomp = True
        return None
    audit, nr = arch
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    program = [
        (ld, 0, 0, 4),                      # 0  A = arch
        (jeq, 1, 0, audit),                 # 1  native ABI -> 3
        (ret, 0, 0, eperm),                 # 2  foreign ABI: refuse
        (ld, 0, 0, 0),                      # 3  A = syscall number
        (jge, 7, 0, 0x40000000),            # 4  x32 ABI -> 12
        (jeq, 3, 0, nr["unshare"]),         # 5  -> 9
        (jeq, 2, 0, nr["clone"]),           # 6  -> 9
        (jeq, 5, 0, nr["clone3"]),          # 7  -> 13
        (ret, 0, 0, allow),                 # 8
        (ld, 0, 0, 16),                     # 9  A = low 32 bits of args[0] (the flags)
        (jset, 1, 0, _CLONE_NEWUSER),       # 10 CLONE_NEWUSER -> 12
        (ret, 0, 0, allow),                 # 11
        (ret, 0, 0, eperm),                 # 12
        (ret, 0, 0, enosys),                # 13
    ]
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in program)


def _feed(pipe: Any, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


def _uid_alive(uid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    return True
            except OSError:
                continue
    return False


def _wait_for_uid_exit(uid: int, timeout: float = 3.0) -> None:
    """After a kill, wait (briefly) until the kernel has torn down every process of the sandbox's own uid."""
    deadline = time.monotonic() + timeout
    while _uid_alive(uid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL bwrap's process group; the PID namespace takes every sandboxed process down with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
