"""The store: versions are immutable, atomic, verified and reproducible."""

from __future__ import annotations

import os
import stat

import pytest

from secops_ai.data.store import (
    DatasetError,
    DatasetExistsError,
    DatasetNotFoundError,
    DatasetStore,
    RecordValidationError,
    parse_ref,
)

from .conftest import chat


def _make(store: DatasetStore, n: int = 3, **kw):
    return store.create("acme", "triage", "chat", [chat(f"question {i}", f"answer {i}") for i in range(n)],
                        sources=[{"uri": "input.jsonl", "sha256": "0" * 64}],
                        generator={"name": "test", "config": {"k": 1}, "seed": 7}, license="MIT", **kw)


def test_create_writes_read_only_version_with_manifest(store: DatasetStore) -> None:
    m = _make(store)
    assert (m.ref, m.kind.value, m.record_count, m.schema_) == ("acme/triage@1", "chat", 3, "secops-ai/chat@1")
    ds = store.get("acme/triage@1")
    assert ds.path == store.root / "acme" / "triage-v1"
    assert sorted(p.name for p in ds.path.iterdir()) == ["manifest.json", "records.jsonl"]
    assert [r["messages"][1]["content"] for r in ds.iter_records()] == ["answer 0", "answer 1", "answer 2"]
    assert ds.manifest.generator.seed == 7 and ds.manifest.sources[0].uri == "input.jsonl"
    assert ds.manifest.license == "MIT"
    for p in (ds.path, ds.records_path, ds.path / "manifest.json"):
        assert not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not [p for p in ds.path.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_versions_refs_and_latest(store: DatasetStore) -> None:
    _make(store)
    m2 = _make(store, n=1, parent="acme/triage@1")
    assert m2.version == 2 and m2.parent == "acme/triage@1"
    assert store.get("acme/triage").manifest.version == 2
    assert store.get("acme/triage@latest").manifest.version == 2
    assert store.get("acme/triage@v1").manifest.record_count == 3
    assert [m.ref for m in store.list()] == ["acme/triage@1", "acme/triage@2"]
    assert parse_ref("p/n@3") == ("p", "n", 3)
    with pytest.raises(DatasetNotFoundError, match="versions present: 1, 2"):
        store.get("acme/triage@9")
    with pytest.raises(DatasetError, match="bad dataset reference"):
        store.get("no-slash")
    with pytest.raises(DatasetNotFoundError):
        _make(store, parent="acme/missing@1")


def test_existing_version_is_never_overwritten(store: DatasetStore) -> None:
    _make(store)
    before = store.get("acme/triage@1").records_path.read_bytes()
    with pytest.raises(DatasetExistsError, match=r"acme/triage@1 already exists"):
        _make(store, version=1)
    assert store.get("acme/triage@1").records_path.read_bytes() == before


def test_one_invalid_record_names_line_and_field_and_writes_nothing(store: DatasetStore) -> None:
    records = [chat("a", "b"), chat("c", "d"), {"messages": [{"role": "user", "content": 5}]}, chat("e", "f")]
    with pytest.raises(RecordValidationError) as exc:
        store.create("acme", "bad", "chat", records)
    assert (exc.value.file, exc.value.line, exc.value.field) == ("records.jsonl", 3, "messages.0.content")
    assert "records.jsonl:3" in str(exc.value)
    assert not (store.root / "acme").exists() or not list((store.root / "acme").iterdir())
    assert store.list() == []


def test_verify_names_the_changed_file(store: DatasetStore) -> None:
    _make(store)
    ds = store.get("acme/triage@1")
    assert store.verify("acme/triage@1") == []
    os.chmod(ds.path, 0o755)
    os.chmod(ds.records_path, 0o644)
    with ds.records_path.open("ab") as fh:
        fh.write(b'{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"injected"}]}\n')
    (ds.path / "notes.txt").write_text("extra")
    problems = store.verify("acme/triage@1")
    assert any(p.startswith("records.jsonl: sha256 mismatch") for p in problems), problems
    assert any(p.startswith("notes.txt: unexpected file") for p in problems), problems
    ds.records_path.unlink()
    assert "records.jsonl: missing" in store.verify("acme/triage@1")


def test_same_records_give_byte_identical_files(tmp_path) -> None:
    a, b = DatasetStore(tmp_path / "a"), DatasetStore(tmp_path / "b")
    ma, mb = _make(a), _make(b, created_at="2000-01-01T00:00:00Z")
    assert a.get(ma.ref).records_path.read_bytes() == b.get(mb.ref).records_path.read_bytes()
    assert ma.files == mb.files
    assert ma.model_dump(exclude={"created_at"}) == mb.model_dump(exclude={"created_at"})
