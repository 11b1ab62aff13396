"""Short-term scratchpad, long-term vector memory (real MiniLM embeddings), critique cache, vector store."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from secops_ai.agents.memory import CritiqueCache, LongTermMemory, ShortTermMemory, content_hash
from secops_ai.agents.sandbox import Sandbox
from secops_ai.agents.tools import ToolContext, default_registry
from secops_ai.config import Workspace, get_settings
from secops_ai.knowledge.vectorstore import VectorStore, VectorStoreError

SNIPPETS = [
    ("Use parameterised queries: cursor.execute('SELECT * FROM users WHERE id = %s', (user_id,)) "
     "instead of formatting SQL strings.", "remediation"),
    ("Replace subprocess.call(cmd, shell=True) with subprocess.run(shlex.split(cmd)) to avoid shell injection.",
     "remediation"),
    ("Load YAML with yaml.safe_load, never yaml.load on untrusted input.", "remediation"),
    ("run_scanner bandit found 3 findings in payments/ (B602, B608, B105).", "action"),
]


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- short-term ----------------------------------------------------------------------------------------------------
def build_history(stm: ShortTermMemory) -> None:
    stm.add("task", "Triage the findings in repo/ and propose fixes.")
    for i in range(40):
        stm.add("action", f"run_scanner step {i} " + "x" * (i * 7))
        stm.add("observation", f"result {i}: " + "finding " * (i % 9))


def test_short_term_is_deterministic_and_fits_the_budget() -> None:
    a, b = ShortTermMemory(budget=1500), ShortTermMemory(budget=1500)
    build_history(a)
    build_history(b)
    context = a.render()
    assert context == b.render() and a.digest() == b.digest()
    assert len(context) <= 1500
    lines = context.splitlines()
    assert lines[0].startswith("[0] task: Triage")  # the task stays pinned
    assert "earlier entries omitted" in lines[1]
    assert lines[-1].startswith("[80] observation: result 39")  # the newest entry is kept
    a.add("critique", "score 0.4: scan the C files too")
    assert a.render() != b.render() and a.render().endswith("scan the C files too")


def test_short_term_clips_huge_entries_and_counts_tokens() -> None:
    stm = ShortTermMemory(budget=400, entry_budget=100)
    stm.add("task", "fix it")
    stm.add("observation", "A" * 5000 + "TAIL")
    context = stm.render()
    assert len(context) <= 400 and "chars cut" in context and context.endswith("TAIL")
    words = ShortTermMemory(budget=120, count=lambda s: len(s.split()))
    for i in range(100):
        words.add("note", f"word{i} " * 5)
    assert len(words.render().split()) <= 120
    with pytest.raises(ValueError, match="at least 64"):
        ShortTermMemory(budget=10)


# -- long-term -----------------------------------------------------------------------------------------------------
def test_long_term_memory_search_provenance_and_persistence(workspace: Workspace) -> None:
    mem = LongTermMemory.from_settings(get_settings())
    assert mem.path == workspace.memory / "long_term"
    records = mem.add_many([{"text": t, "kind": k, "source": "test", "run_id": "run-1"} for t, k in SNIPPETS])
    assert len(mem) == 4 and len({r.id for r in records}) == 4

    hits = mem.search("how do I fix SQL injection in a database query", k=2)
    assert hits[0].record.text.startswith("Use parameterised queries")
    assert hits[0].record.source == "test" and hits[0].record.run_id == "run-1" and hits[0].record.ts > 0
    assert hits[0].score > hits[1].score
    actions = mem.search("what did the scanner find", k=5, kind="action")
    assert [h.record.kind for h in actions] == ["action"]

    again = mem.add(SNIPPETS[0][0], kind="remediation", source="other", run_id="run-2")
    assert again.id == records[0].id and again.source == "test" and len(mem) == 4  # stored once, first provenance

    reopened = LongTermMemory.open(workspace.memory)  # a new process would see the same memories
    assert len(reopened) == 4
    assert reopened.search("shell injection subprocess", k=1)[0].record.text.startswith("Replace subprocess")
    with pytest.raises(ValueError, match=r"items\[0\]\.text"):
        reopened.add("   ", kind="note", source="x")


def test_two_writers_share_one_memory(workspace: Workspace) -> None:
    server, cli = LongTermMemory.open(workspace.memory), LongTermMemory.open(workspace.memory)
    server.add(SNIPPETS[0][0], kind="remediation", source="server")
    cli.add(SNIPPETS[1][0], kind="remediation", source="cli")  # reloads the server's snapshot first
    assert len(server) == 2 and server.search("shell injection", k=1)[0].record.source == "cli"

    def write(mem: LongTermMemory, who: str) -> None:
        for i in range(6):
            mem.add(f"{who} note {i}: rotate the leaked key", kind="note", source=who)

    threads = [threading.Thread(target=write, args=(m, w)) for m, w in ((server, "server"), (cli, "cli"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(LongTermMemory.open(workspace.memory)) == 14  # no writer overwrote the other's snapshot


def test_search_memory_tool(workspace: Workspace, tmp_path: Path) -> None:
    mem = LongTermMemory(workspace.memory / "long_term")
    mem.add(SNIPPETS[2][0], kind="remediation", source="playbook")
    (tmp_path / "repo").mkdir()
    with Sandbox() as sandbox:
        copy = sandbox.working_copy(tmp_path / "repo")
        ctx = ToolContext(run_id="r", workspace=copy, original=tmp_path / "repo", sandbox=sandbox, memory=mem)
        reg = default_registry()
        found = reg.execute("search_memory", {"query": "unsafe yaml loading", "k": 3}, ctx)
        assert found.ok and "yaml.safe_load" in found.output and found.data["hits"][0]["record"]["source"] == "playbook"
        ctx.memory = None
        assert not reg.execute("search_memory", {"query": "yaml"}, ctx).ok


# -- critique cache ------------------------------------------------------------------------------------------------
def test_critique_cache_reuses_and_survives_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "critiques.jsonl"
    cache = CritiqueCache(path)
    key = CritiqueCache.key("critique-v1", {"action": "run_scanner", "obs": "3 findings"})
    assert key == content_hash("critique-v1", {"obs": "3 findings", "action": "run_scanner"})
    assert cache.get(key) is None
    first = cache.put(key, {"score": 0.7, "critique": "also scan C files"})
    assert cache.get(key) == first == {"score": 0.7, "critique": "also scan C files"}

    with path.open("a") as fh:
        fh.write('{"key": "torn", "value": {"sco')  # a crash mid-write
    reloaded = CritiqueCache(path)
    assert reloaded.get(key) == first and "torn" not in reloaded
    reloaded.put("k2", {"score": 0.1})
    assert CritiqueCache(path).get("k2") == {"score": 0.1}
    assert all(json.loads(line) for line in path.read_text().splitlines()[-1:])


# -- vector store --------------------------------------------------------------------------------------------------
def test_vector_store_exact_and_hnsw_agree(tmp_path: Path) -> None:
    dim, n = 32, 3000
    data = unit(n, dim, seed=0)
    queries = unit(50, dim, seed=1)
    exact = VectorStore(dim, exact_threshold=10_000)
    approx = VectorStore(dim, exact_threshold=100)
    ids = [f"v{i}" for i in range(n)]
    exact.add(ids, data, [{"i": i} for i in range(n)])
    approx.add(ids[:2000], data[:2000], [{"i": i} for i in range(2000)])
    approx.search(queries[0], 3)  # builds the graph, then grows it incrementally
    approx.add(ids[2000:], data[2000:], [{"i": i} for i in range(2000, n)])
    assert approx.uses_index and not exact.uses_index
    recall = []
    for q in queries:
        truth = [h.id for h in exact.search(q, 10)]
        got = [h.id for h in approx.search(q, 10)]
        recall.append(len(set(truth) & set(got)) / 10)
        scores = [h.score for h in exact.search(q, 10)]
        assert scores == sorted(scores, reverse=True)
        assert abs(scores[0] - float(data[int(truth[0][1:])] @ q)) < 1e-5
    assert np.mean(recall) >= 0.95

    even = approx.search(queries[0], 5, where=lambda m: m["i"] % 2 == 0)
    assert len(even) == 5 and all(h.metadata["i"] % 2 == 0 for h in even)

    approx.save(tmp_path / "store")
    loaded = VectorStore.load(tmp_path / "store")
    assert len(loaded) == n and loaded._indexed == n  # the HNSW graph was saved, not rebuilt
    assert [h.id for h in loaded.search(queries[3], 10)] == [h.id for h in approx.search(queries[3], 10)]


def test_vector_store_rejects_bad_input_and_keeps_the_last_good_snapshot(tmp_path: Path) -> None:
    store = VectorStore(8)
    store.add(["a", "b"], unit(2, 8, 2), [{"n": 1}, {"n": 2}])
    with pytest.raises(VectorStoreError, match=r"shape \(n, 8\)"):
        store.add(["c"], unit(1, 4, 3))
    with pytest.raises(VectorStoreError, match="'a' is already in the store"):
        store.add(["a"], unit(1, 8, 3))
    with pytest.raises(VectorStoreError, match="NaN"):
        store.add(["z"], np.full((1, 8), np.nan))
    assert len(store) == 2

    path = tmp_path / "store"
    store.save(path)
    store.add(["c"], unit(1, 8, 4), [{"bad": object()}])  # not JSON-serialisable: the next save fails
    with pytest.raises(TypeError):
        store.save(path)
    loaded = VectorStore.load(path)
    assert len(loaded) == 2 and loaded.get("b")[1] == {"n": 2}  # the previous snapshot is still the live one
    assert sorted(p.name for p in path.iterdir()) == ["CURRENT", "snap-000001"]
    with pytest.raises(VectorStoreError, match="missing CURRENT"):
        VectorStore.load(tmp_path / "nothing")
