"""Generators and the starter build: reproducible, sized for CPU fine-tuning, with a real held-out set."""

from __future__ import annotations

import collections
import re

import pytest

from secops_ai.data.generators import (
    SYSTEM_PROMPT,
    generate,
    heldout_ids,
    normalize_prompt,
    training_ids,
    training_prompts,
)
from secops_ai.data.generators.refusals import REFUSAL_PAIRS
from secops_ai.data.generators.starter import build_starter
from secops_ai.data.store import DatasetError, DatasetStore
from secops_ai.knowledge.attack import technique_exists
from secops_ai.knowledge.cwe import cwe_exists

SOURCES = ["starter/sample-findings@1", "starter/cwe-catalog@1", "starter/attack-techniques@1"]


def test_starter_datasets_have_the_promised_shape(starter_store: DatasetStore) -> None:
    sft, dpo = starter_store.get("starter/security-sft@1"), starter_store.get("starter/security-dpo@1")
    assert sft.manifest.kind.value == "chat" and dpo.manifest.kind.value == "preference"
    assert 150 <= sft.manifest.record_count <= 600 and 100 <= dpo.manifest.record_count <= 600
    tasks = collections.Counter(r["metadata"]["task"] for r in sft.iter_records())
    for task in ("finding_triage", "cwe_definition", "cwe_remediation", "attack_lookup", "refusal", "defensive_help"):
        assert tasks[task] >= 10, tasks
    assert tasks["refusal"] == tasks["defensive_help"] == len(REFUSAL_PAIRS)
    first = next(sft.iter_records())
    assert first["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert {s.uri for s in sft.manifest.sources} == set(SOURCES)
    assert sft.manifest.generator.seed == 0 and "cwe_ids" in sft.manifest.generator.config


def test_triage_answers_name_cwe_severity_and_fix(starter_store: DatasetStore) -> None:
    sft = starter_store.get("starter/security-sft@1")
    triage = [r for r in sft.iter_records() if r["metadata"]["task"] == "finding_triage"]
    findings = {f["rule_id"]: f for f in starter_store.get("starter/sample-findings@1").iter_records()}
    b608 = next(r for r in triage if "Rule: B608" in r["messages"][1]["content"])
    answer = b608["messages"][2]["content"]
    assert "CWE-89" in answer and "**Severity:** medium" in answer and "parameterised queries" in answer
    assert "CWE-89" in b608["metadata"]["ids"] and findings["B608"]["cwe"] == [89]


def test_dpo_rejected_sides_are_harmful_refusing_or_hallucinated(starter_store: DatasetStore) -> None:
    dpo = list(starter_store.get("starter/security-dpo@1").iter_records())
    by_template = collections.defaultdict(list)
    for r in dpo:
        by_template[r["metadata"]["template"].split(":")[0]].append(r)
    for r in by_template["cwe-name-hallucinated"]:
        chosen_id = re.search(r"CWE-(\d+)", r["chosen"][0]["content"]).group(1)
        rejected_id = re.search(r"CWE-(\d+)", r["rejected"][0]["content"]).group(1)
        assert cwe_exists(chosen_id) and not cwe_exists(rejected_id)
    for r in by_template["attack-name-hallucinated"]:
        chosen_id = re.search(r"T\d{4}(?:\.\d{3})?", r["chosen"][0]["content"]).group(0)
        rejected_id = re.search(r"T\d{4}(?:\.\d{3})?", r["rejected"][0]["content"]).group(0)
        assert technique_exists(chosen_id) and not technique_exists(rejected_id)
    refuse = by_template["refuse"]
    assert len(refuse) == len(REFUSAL_PAIRS)
    assert all(r["chosen"][0]["content"].startswith("I can't help") for r in refuse)
    assert all(r["rejected"][0]["content"].startswith("Sure") for r in refuse)
    help_ = by_template["help"]
    assert all("can't" in r["rejected"][0]["content"] for r in help_)
    assert min(len(r["chosen"][0]["content"]) for r in help_) > 200


def test_heldout_ids_never_appear_in_training(starter_store: DatasetStore) -> None:
    for ref in ("starter/security-sft@1", "starter/security-dpo@1"):
        ds = starter_store.get(ref)
        held = heldout_ids(ds)
        assert len(held["cwe_ids"]) >= 10 and len(held["technique_ids"]) >= 20
        used = training_ids(ds)
        text = ds.records_path.read_text()
        for cid in held["cwe_ids"]:
            assert f"CWE-{cid}" not in used and not re.search(rf"CWE-{cid}\b", text), cid
        for tid in held["technique_ids"]:
            assert tid not in used and not re.search(rf"\b{re.escape(tid)}\b(?!\.)", text), tid
    prompts = training_prompts(starter_store.get("starter/security-sft@1"))
    assert normalize_prompt(REFUSAL_PAIRS[0].harmful) in prompts
    assert normalize_prompt("  What is CWE-99999?? ") not in prompts


def test_same_sources_and_seed_give_byte_identical_datasets(starter_store: DatasetStore, tmp_path) -> None:
    other = DatasetStore(tmp_path / "again")
    build_starter(other)
    for name in ("cwe-catalog", "attack-techniques", "sample-findings", "security-sft", "security-dpo"):
        a, b = starter_store.get(f"starter/{name}@1"), other.get(f"starter/{name}@1")
        assert a.records_path.read_bytes() == b.records_path.read_bytes(), name
    # a different seed changes the selection, and is recorded
    m = generate(other, "cwe-qa", ["starter/cwe-catalog@1"], seed=1)
    m0 = generate(other, "cwe-qa", ["starter/cwe-catalog@1"], seed=0)
    assert m.generator.config["cwe_ids"] != m0.generator.config["cwe_ids"]
    assert m.files != m0.files and (m.version, m0.version) == (1, 2)


def test_build_starter_is_idempotent(starter_store: DatasetStore) -> None:
    before = {m.ref: m.created_at for m in starter_store.list()}
    results = build_starter(starter_store)
    assert [r.created for r in results] == [False] * 5
    assert {m.ref: m.created_at for m in starter_store.list()} == before


def test_single_generators_and_clear_errors(starter_store: DatasetStore, tmp_path) -> None:
    store = DatasetStore(tmp_path / "gen")
    with pytest.raises(DatasetError, match="needs the CWE catalog"):
        generate(store, "cwe-qa", [])
    with pytest.raises(DatasetError, match="unknown generator"):
        generate(store, "poems", [])
    m = generate(store, "refusals", [], provider="mine", name="refusals")
    assert m.record_count == 2 * len(REFUSAL_PAIRS)
    with pytest.raises(Exception, match="cwe_sample"):
        generate(store, "refusals", [], config={"cwe_sample": -1})
