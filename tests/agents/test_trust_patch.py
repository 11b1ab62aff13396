"""Issue 10.1: host-side patch code never follows a link out of the working copy or the original.

Reproducers of the outside attack (a repository with ``d -> /etc``: one patch deletes the link, the next creates
``d/shadow``, and the host-side diff read ``original/d/shadow`` through the link) and of its variants. A host
secret planted beside the repository stands in for ``/etc/shadow``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secops_ai.agents.safe_paths import QuotaExceeded, copy_tree, read_inside
from secops_ai.agents.sandbox import Sandbox, SandboxLimits
from secops_ai.agents.tools import ToolContext, ToolRegistry, default_registry
from secops_ai.agents.tools.patch import PatchError, diff_paths, tree_diff

SECRET = "HOST-SECRET-7f3a9c"
APP = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"

DELETE_LINK = (
    "diff --git a/d b/d\n"
    "deleted file mode 120000\n"
    "--- a/d\n"
    "+++ /dev/null\n"
    "@@ -1 +0,0 @@\n"
    "-{target}\n"
    "\\ No newline at end of file\n"
)
DELETE_LINK_PLAIN = "--- a/d\n+++ /dev/null\n@@ -1 +0,0 @@\n-{target}\n\\ No newline at end of file\n"
CREATE_SHADOW = "--- /dev/null\n+++ b/d/shadow\n@@ -0,0 +1 @@\n+root:x:planted\n"
CREATE_LINK = (
    "diff --git a/leak b/leak\n"
    "new file mode 120000\n"
    "--- /dev/null\n"
    "+++ b/leak\n"
    "@@ -0,0 +1 @@\n"
    "+{target}\n"
    "\\ No newline at end of file\n"
)


@pytest.fixture
def host_secret(tmp_path: Path) -> Path:
    """A folder outside the repository holding a 'shadow' file the agent must never read."""
    folder = tmp_path / "host-etc"
    folder.mkdir()
    (folder / "shadow").write_text(f"root:{SECRET}:19000:0:99999:7:::\n")
    return folder


@pytest.fixture
def linked_repo(tmp_path: Path, host_secret: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "d").symlink_to(host_secret)  # the attack's `d -> /etc`
    (root / "secret.txt").symlink_to(host_secret / "shadow")  # a symlinked file pointing out
    return root


@pytest.fixture
def ctx(linked_repo: Path) -> Iterator[ToolContext]:
    sandbox = Sandbox(SandboxLimits(wall_timeout=60))
    copy = sandbox.working_copy(linked_repo)
    yield ToolContext(run_id="run-trust", workspace=copy, original=linked_repo, sandbox=sandbox)
    sandbox.cleanup()


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return default_registry()


def _no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text)


def test_the_reported_attack_never_reads_the_host_file(registry, ctx, host_secret) -> None:
    target = str(host_secret)
    results = []
    for diff in (DELETE_LINK.format(target=target), DELETE_LINK_PLAIN.format(target=target), CREATE_SHADOW):
        results.append(registry.execute("propose_patch", {"diff": diff, "scanner": "bandit", "keep": "always"}, ctx))
    delete, delete_plain, create = results
    assert not delete.ok and "symlink" in (delete.error or "")
    assert not delete_plain.ok and "'d' is a symlink" in (delete_plain.error or "")
    assert not create.ok and "goes through 'd'" in (create.error or "")
    assert (ctx.workspace / "d").is_symlink()  # the working copy is unchanged
    for result in results:
        _no_secret(result.error, result.output, result.data)


def test_tree_diff_does_not_follow_a_link_of_the_original(linked_repo: Path, tmp_path: Path) -> None:
    """The host-side half alone: a copy where `d` became a real folder (e.g. after an approved command)."""
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "app.py").write_text(APP)
    (copy / "d").mkdir()
    (copy / "d" / "shadow").write_text("planted by the agent\n")
    (copy / "secret.txt").write_text("replaced\n")
    diff = tree_diff(linked_repo, copy)
    _no_secret(diff)
    assert "+planted by the agent" in diff  # what the copy holds is still shown
    assert "# not diffed: d (link -> absent" in diff and "# not diffed: secret.txt (link -> file" in diff


def test_tree_diff_does_not_follow_links_of_the_copy(tmp_path: Path, host_secret: Path) -> None:
    original = tmp_path / "orig"
    (original / "d").mkdir(parents=True)
    (original / "d" / "shadow").write_text("ours\n")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "d").symlink_to(host_secret)  # a folder swapped for a link out
    (copy / "x.py").symlink_to(host_secret / "shadow")
    diff = tree_diff(original, copy)
    _no_secret(diff)
    assert "# not diffed: d (absent -> link" in diff and "-ours" in diff


def test_patches_that_create_links_are_refused(registry, ctx, host_secret) -> None:
    result = registry.execute("propose_patch", {"diff": CREATE_LINK.format(target=host_secret / "shadow"),
                                                "keep": "always"}, ctx)
    assert not result.ok and "symlink" in (result.error or "") and not (ctx.workspace / "leak").exists()
    with pytest.raises(PatchError, match="symlink"):
        diff_paths("diff --git a/x b/x\nold mode 100644\nnew mode 120000\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")


@pytest.mark.parametrize("diff", [
    "--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
    "--- /etc/passwd\t2020-01-01\n+++ /etc/passwd\t2020-01-01\n@@ -1 +1 @@\n-a\n+b\n",
    "--- a/ok file/../../x\t2020-01-01\n+++ b/ok file/../../x\n@@ -1 +1 @@\n-a\n+b\n",  # a name with a space
    "diff --git a/x b/y\nrename from ../../etc/passwd\nrename to y\n--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n",
    "Index: /etc/passwd\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
    '--- "a/\\056\\056/x"\n+++ "b/\\056\\056/x"\n@@ -1 +1 @@\n-a\n+b\n',  # git's C-quoted '..'
])
def test_absolute_and_parent_paths_are_refused(diff: str) -> None:
    with pytest.raises(PatchError, match=r"without '\.\.'"):
        diff_paths(diff)


def test_special_files_in_the_copy_never_block_the_host(registry, ctx) -> None:
    """A FIFO left by a sandboxed command: host-side copies and diffs skip it instead of blocking on a read."""
    os.mkfifo(ctx.workspace / "pipe")
    fix = ("--- a/app.py\n+++ b/app.py\n@@ -4,2 +4,2 @@\n def run(cmd):\n"
           "-    return subprocess.call(cmd, shell=True)\n+    return subprocess.call(cmd.split())\n")
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(r=registry.execute(
        "propose_patch", {"diff": fix, "scanner": "bandit", "keep": "always"}, ctx)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "propose_patch blocked on a FIFO"
    result = outcome["r"]
    assert result.ok, result.error
    assert "+    return subprocess.call(cmd.split())" in result.data["patch"]
    assert not (ctx.workspace / "pipe").exists()  # special files are not carried into the next working copy
    os.mkfifo(ctx.workspace / "pipe2")
    assert "# not diffed: pipe2 (absent -> special" in tree_diff(ctx.original, ctx.workspace)
    assert read_inside(ctx.workspace, "pipe", max_bytes=10).kind in ("special", "missing")


def test_reads_refuse_every_link_on_the_way(linked_repo: Path) -> None:
    assert read_inside(linked_repo, "d/shadow", max_bytes=1 << 20).kind == "unsafe"
    assert read_inside(linked_repo, "secret.txt", max_bytes=1 << 20).kind == "link"
    assert read_inside(linked_repo, "../repo/app.py", max_bytes=1 << 20).kind == "unsafe"
    assert read_inside(linked_repo, "app.py", max_bytes=1 << 20).data == APP.encode()


def test_copies_keep_links_as_links_and_stop_at_the_quota(linked_repo: Path, tmp_path: Path) -> None:
    copy_tree(linked_repo, tmp_path / "c1")
    assert os.readlink(tmp_path / "c1" / "d") == os.readlink(linked_repo / "d")
    (linked_repo / "big.bin").write_bytes(b"x" * 50_000)
    with pytest.raises(QuotaExceeded):
        copy_tree(linked_repo, tmp_path / "c2", max_bytes=10_000)
    sparse = linked_repo / "sparse.bin"
    with sparse.open("wb") as fh:  # a hole counts as what a copy of it would write
        fh.truncate(1 << 30)
    (linked_repo / "big.bin").unlink()
    with pytest.raises(QuotaExceeded):
        copy_tree(linked_repo, tmp_path / "c3", max_bytes=1 << 20)


def test_hard_links_in_the_original_are_not_copied(tmp_path: Path, host_secret: Path) -> None:
    """A file of the repository that is another name of a host file (same inode) stays out of the copy."""
    repo = tmp_path / "hl-repo"
    repo.mkdir()
    (repo / "app.py").write_text(APP)
    os.link(host_secret / "shadow", repo / "innocent.txt")
    with Sandbox() as sb:
        copy = sb.working_copy(repo)
        assert (copy / "app.py").read_text() == APP and not (copy / "innocent.txt").exists()
        result = sb.run("cat /workspace/innocent.txt; ls /workspace")
        _no_secret(result.stdout, result.stderr)
