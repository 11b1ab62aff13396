"""The store under attack and faults: planted links out of SECOPS_HOME (10.9), tampered records (10.9),
imports killed with -9 (10.11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from secops_ai.api.app import create_app
from secops_ai.config import Workspace, get_settings
from secops_ai.data.store import DatasetIntegrityError, DatasetNotFoundError, DatasetStore

from .conftest import chat


def _outside_dataset(tmp_path: Path) -> Path:
    """A complete, valid dataset version OUTSIDE the workspace, holding a secret."""
    other = DatasetStore(Workspace(tmp_path / "elsewhere").ensure())
    other.create("evil", "loot", "chat", [chat("OUTSIDE-SECRET question", "OUTSIDE-SECRET answer")])
    return other.root / "evil"


def test_links_out_of_secops_home_are_never_listed_or_served(workspace: Workspace, tmp_path: Path) -> None:
    store = DatasetStore(workspace)
    store.create("acme", "sft", "chat", [chat()])
    evil = _outside_dataset(tmp_path)
    (store.root / "evil").symlink_to(evil, target_is_directory=True)  # a whole provider folder
    (store.root / "acme" / "loot-v1").symlink_to(evil / "loot-v1", target_is_directory=True)  # one version
    planted = store.root / "acme" / "mixed-v1"  # a real folder whose files are links
    planted.mkdir()
    (planted / "manifest.json").symlink_to(evil / "loot-v1" / "manifest.json")
    (planted / "records.jsonl").symlink_to(evil / "loot-v1" / "records.jsonl")

    assert [m.ref for m in store.list()] == ["acme/sft@1"]
    for ref in ("evil/loot@1", "acme/loot@1", "acme/loot", "acme/mixed@1"):
        with pytest.raises(DatasetNotFoundError):
            store.get(ref)
    with TestClient(create_app(get_settings(), load_model=False)) as client:
        listing = client.get("/datasets")
        assert [d["ref"] for d in listing.json()["data"]] == ["acme/sft@1"]
        for path in ("evil/loot/1", "acme/loot/1", "acme/loot/latest", "acme/mixed/1"):
            resp = client.get(f"/datasets/{path}")
            assert resp.status_code == 404, (path, resp.text)
            assert "OUTSIDE-SECRET" not in resp.text and str(tmp_path) not in resp.text


def test_only_records_matching_the_manifest_are_served(workspace: Workspace, tmp_path: Path) -> None:
    store = DatasetStore(workspace)
    store.create("acme", "sft", "chat", [chat("q0", "a0"), chat("q1", "a1")])
    ds = store.get("acme/sft@1")
    with TestClient(create_app(get_settings(), load_model=False)) as client:
        assert client.get("/datasets/acme/sft/1").json()["records"][0]["messages"][0]["content"] == "q0"
        # tampered in place (same size, so only the hash tells)
        ds.records_path.chmod(0o644)
        ds.records_path.write_text(ds.records_path.read_text().replace("q0", "XX"))
        resp = client.get("/datasets/acme/sft/1")
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "dataset_integrity_error"
        assert "XX" not in resp.text
        # swapped for a link to a file outside (with the right content even: links are refused as such)
        original = tmp_path / "copy.jsonl"
        original.write_text(ds.records_path.read_text().replace("XX", "q0"))
        ds.records_path.unlink()
        ds.records_path.symlink_to(original)
        resp = client.get("/datasets/acme/sft/1")
        assert resp.status_code == 409, resp.text
    with pytest.raises(DatasetIntegrityError, match="not a regular file"):
        ds.check_integrity()
    with pytest.raises(DatasetIntegrityError, match="symlink"):
        list(ds.iter_records())


_SLOW_IMPORT = textwrap.dedent("""
    import sys, time
    from secops_ai.data.store import DatasetStore

    def records():
        for i in range(3):
            yield {"messages": [{"role": "user", "content": "q" * 100000}, {"role": "assistant", "content": "a"}]}
        print("writing", flush=True)
        time.sleep(600)
        yield {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}

    DatasetStore(sys.argv[1]).create("imports", "big", "chat", records())
""")


def _start_writer(home: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_IMPORT, str(home)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    return proc


def _partials(store: DatasetStore) -> list[Path]:
    return sorted(store.root.glob("*/.*.partial"))


def test_killed_imports_are_cleaned_on_next_open_but_live_ones_are_kept(workspace: Workspace) -> None:
    store = DatasetStore(workspace)
    dead, live = _start_writer(workspace.root), _start_writer(workspace.root)
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(10)
        assert len(_partials(store)) == 2  # one dead writer's leftovers, one live writer's work in progress
        removed = store.clean_partials()  # what every store open does (once per process)
        assert len(removed) == 1 and len(_partials(store)) == 1  # the live writer's folder was left alone
        assert not removed[0].exists()
        os.kill(live.pid, signal.SIGKILL)
        live.wait(10)
        subprocess.run([sys.executable, "-c", f"from secops_ai.data.store import DatasetStore; "
                                              f"DatasetStore({str(workspace.root)!r})"], check=True, timeout=120)
        assert _partials(store) == []  # a fresh process opening the store swept the second one
    finally:
        for proc in (dead, live):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    # a lock-less leftover (died before taking the lock) is kept while young, removed once old
    young = store.root / "imports" / ".x-v1.abc.partial"
    young.mkdir(parents=True)
    assert store.clean_partials() == []
    old = time.time() - 7200
    os.utime(young, (old, old))
    assert store.clean_partials() == [young]
    # the store still works and versions numbering is unaffected
    assert store.create("imports", "big", "chat", [chat()]).version == 1
