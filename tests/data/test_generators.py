"""Generators and the starter build: reproducible, sized for CPU fine-tuning, with a real held-out set."""

from __future__ import annotations

import collections
import re

import pytest

from secops_ai.data.generators import SYSTEM_PROMPT, generate
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


def test_generators_teach_only_from_the_pool_evals_do_not_hold_out(starter_store: DatasetStore) -> None:
    """One held-out definition (secops_ai.evals.holdout): every CWE a generator teaches is outside it."""
    from secops_ai.evals.holdout import is_held_out, training_pool

    for ref in ("starter/security-sft@1", "starter/security-dpo@1"):
        ds = starter_store.get(ref)
        taught = ds.manifest.generator.config["cwe_ids"]
        assert taught and set(taught) <= training_pool()
        mentioned = {int(n) for n in re.findall(r"CWE-(\d+)", ds.records_path.read_text())}
        assert not [c for c in mentioned if is_held_out(c)]
        assert "heldout_cwe_ids" not in ds.manifest.generator.config  # no second, parallel held-out list


def test_recipe_data_varies_refusals_pairs_them_with_twins_and_repeats_facts(starter_store: DatasetStore) -> None:
    from secops_ai.data.generators.recipe import INTENTS
    from secops_ai.evals.refusal import is_refusal

    m = generate(starter_store, "recipe-sft", ["starter/cwe-catalog@1"], provider="recipe",
                 config={"refusal_templates": 3, "fact_phrasings": 2, "builder_requests": 0})
    records = list(starter_store.get(m.ref).iter_records())
    by_task = collections.defaultdict(list)
    for r in records:
        by_task[r["metadata"]["task"]].append(r)
    refusals = by_task["refusal"]
    assert len(refusals) == 3 * len(INTENTS)
    # each refusal turn opens with a refusal the gate recognises; multi-turn and other system prompts occur
    for r in refusals:
        turns = [m for m in r["messages"] if m["role"] == "assistant"]
        assert is_refusal(turns[-1]["content"]) or is_refusal(turns[-2]["content"])
    assert any(len(r["messages"]) > 3 for r in refusals)
    assert {r["messages"][0]["content"] for r in records} - {SYSTEM_PROMPT}
    def request(r: dict) -> str:  # the user turn the first refusal answers
        msgs = r["messages"]
        return next(msgs[i - 1]["content"] for i, m in enumerate(msgs)
                    if m["role"] == "assistant" and is_refusal(m["content"]))

    assert len({request(r) for r in refusals}) == len(refusals)  # no request twice
    assert len(by_task["defensive_help"]) >= len(INTENTS)
    assert not any(is_refusal(r["messages"][-1]["content"]) for r in by_task["defensive_help"])
    # every taught CWE is asked name -> id in 2 phrasings and id -> name once
    facts = [m["content"] for r in by_task["catalog_facts"] for m in r["messages"] if m["role"] == "user"]
    for cid in m.generator.config["cwe_ids"][:10]:
        assert sum(bool(re.search(rf"CWE-{cid}\b", q)) for q in facts) == 1
    assert len(facts) == 3 * len(m.generator.config["cwe_ids"]) + len(m.generator.config["fake_cwe_ids"])
    assert not any(cwe_exists(n) for n in m.generator.config["fake_cwe_ids"])
    dpo = generate(starter_store, "recipe-dpo", ["starter/cwe-catalog@1"], provider="recipe")
    pairs = list(starter_store.get(dpo.ref).iter_records())
    assert all(is_refusal(p["chosen"][0]["content"]) and not is_refusal(p["rejected"][0]["content"])
               for p in pairs if p["metadata"]["task"] == "refusal")
    assert all(is_refusal(p["rejected"][0]["content"]) for p in pairs if p["metadata"]["task"] == "defensive_help")


def test_recipe_teaches_defensive_tooling_requests_answered_in_full(starter_store: DatasetStore) -> None:
    """The counterweight to refusals: attack-sounding but defensive tooling requests, answered on topic."""
    from secops_ai.data.generators.builders import TASKS
    from secops_ai.evals.holdout import find_contamination
    from secops_ai.evals.refusal import is_refusal
    from secops_ai.evals.relevance import addresses
    from secops_ai.evals.suites.policy import load_benign

    m = generate(starter_store, "recipe-sft", ["starter/cwe-catalog@1"], provider="recipe",
                 config={"builder_requests": 40})
    records = [r for r in starter_store.get(m.ref).iter_records() if r["metadata"]["task"] == "benign_builder"]
    assert len(records) == 40
    assert {r["metadata"]["template"].split(":")[1] for r in records} == {t.id for t in TASKS}
    for r in records:
        request, answer = r["messages"][-2]["content"], r["messages"][-1]["content"]
        assert not is_refusal(answer) and addresses(request, answer), (request, answer)
        # code in the language asked for, before any prose: a reply cut at a token budget still has it
        lang = re.search(r"\b(Python|Bash)\b", request).group(1).lower()
        opener, fence, rest = answer.partition(f"\n\n```{lang}\n")
        assert fence and "\n" not in opener and "```" in rest, (request, answer)
    assert {r["metadata"]["template"].rsplit(":", 1)[1] for r in records} == {"python", "bash"}
    assert len({r["messages"][-2]["content"] for r in records}) == 40
    # written here, not taken from CyberSecEval's false-refusal prompts (the gate's benign items)
    assert not find_contamination([("builders", records)], [p["prompt"] for p in load_benign()])
    dpo = generate(starter_store, "recipe-dpo", ["starter/cwe-catalog@1"], provider="recipe",
                   config={"builder_requests": 20})
    pairs = [p for p in starter_store.get(dpo.ref).iter_records() if p["metadata"]["task"] == "benign_builder"]
    assert len(pairs) == 20
    assert all(len(p["chosen"][0]["content"]) > 3 * len(p["rejected"][0]["content"]) for p in pairs)


@pytest.mark.parametrize("id_answers", ["defer", "recall"])
def test_recipe_name_to_id_answers_point_to_the_catalog_unless_recall_is_asked(starter_store: DatasetStore,
                                                                             id_answers: str) -> None:
    """The default recipe does not teach guessed CWE numbers (its SFT model named a frequent wrong id for every
    weakness); name -> id questions get a pointer to the catalog that the gate scores as no claim at all, and
    DPO prefers it over a wrong id. ``recall`` keeps the id answers (bench/fact_recall.py measures them)."""
    from secops_ai.data.generators.recipe import NAME_TO_ID_Q
    from secops_ai.evals.identifiers import id_claims

    m = generate(starter_store, "recipe-sft", ["starter/cwe-catalog@1"], provider="recipe",
                 name=f"ids-{id_answers}", config={"id_answers": id_answers, "builder_requests": 0})
    stems = [q.split("{name}") for q in NAME_TO_ID_Q]
    asked = 0
    for r in starter_store.get(m.ref).iter_records():
        if r["metadata"]["task"] != "catalog_facts":
            continue
        msgs = r["messages"]
        for q, a in ((msgs[i]["content"], msgs[i + 1]["content"]) for i in range(len(msgs) - 1)
                     if msgs[i]["role"] == "user"):
            if not any(q.startswith(pre) and q.endswith(post) for pre, post in stems):
                continue
            asked += 1
            claims = id_claims(a, "cwe", q)
            if id_answers == "defer":
                assert not claims and "CWE catalog" in a, a
            else:
                assert [c.id for c in claims if c.exists], a
    assert asked >= 4 * 40
    dpo = generate(starter_store, "recipe-dpo", ["starter/cwe-catalog@1"], provider="recipe",
                   name=f"ids-{id_answers}-dpo", config={"id_answers": id_answers, "builder_requests": 0})
    facts = [p for p in starter_store.get(dpo.ref).iter_records() if p["metadata"]["task"] == "catalog_facts"]
    assert facts and all(bool(id_claims(p["chosen"][0]["content"], "cwe")) == (id_answers == "recall")
                         and id_claims(p["rejected"][0]["content"], "cwe") for p in facts)


def test_recipe_multiple_choice_is_balanced_taught_only_and_not_the_gates_wording(
        starter_store: DatasetStore) -> None:
    """The SFT model once answered every multiple-choice item "C)": the recipe's own choice questions cycle the
    right letter, use taught weaknesses only, and never the gate's items or wording."""
    from secops_ai.evals.holdout import find_contamination, is_held_out
    from secops_ai.evals.suites.base import SuiteConfig
    from secops_ai.evals.suites.task_accuracy import TaskAccuracySuite, parse_choice

    m = generate(starter_store, "recipe-sft", ["starter/cwe-catalog@1"], provider="recipe",
                 config={"builder_requests": 0})
    records = [r for r in starter_store.get(m.ref).iter_records() if r["metadata"]["template"].startswith("choice:")]
    assert len(records) >= len(m.generator.config["cwe_ids"])  # at least one per taught CWE
    letters = collections.Counter(parse_choice(r["messages"][-1]["content"]) for r in records)
    assert set(letters) == set("ABCD") and max(letters.values()) - min(letters.values()) <= 1
    for r in records:
        question, answer = r["messages"][-2]["content"], r["messages"][-1]["content"]
        option = next(line for line in question.splitlines() if line.startswith(f"{parse_choice(answer)}) "))
        assert option.split(") ", 1)[1].rstrip("…")[:30] in question  # the answer names one of its options
        assert not any(is_held_out(i) for i in r["metadata"]["ids"])
    gate = TaskAccuracySuite().build(SuiteConfig(samples=40), seed=1234)
    assert not find_contamination([("recipe", records)], [it.prompt for it in gate])
    assert not any("Answer with the letter of the correct option." in r["messages"][-2]["content"] for r in records)
    off = generate(starter_store, "recipe-sft", ["starter/cwe-catalog@1"], provider="recipe",
                   config={"builder_requests": 0, "choice_questions": False})
    assert not any(r["metadata"]["template"].startswith("choice:") for r in starter_store.get(off.ref).iter_records())


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


def test_one_system_prompt_policy_for_training_data_serving_and_the_gate(
        smollm2_tokenizer_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records start with the prompt the chat template adds to a conversation without one (SECOPS_SYSTEM_PROMPT),
    so a trained model is served and gated the way it was trained; an explicit system turn is kept; '' is off."""
    from transformers import AutoTokenizer

    from secops_ai.config import get_settings
    from secops_ai.inference.chat_template import apply_chat_template

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    user = [{"role": "user", "content": "What is CWE-79?"}]
    monkeypatch.delenv("SECOPS_SYSTEM_PROMPT", raising=False)
    get_settings.cache_clear()
    assert get_settings().system_prompt == SYSTEM_PROMPT
    trained = tok.apply_chat_template([{"role": "system", "content": SYSTEM_PROMPT}, *user], tokenize=False,
                                      add_generation_prompt=True)
    assert apply_chat_template(tok, user) == trained
    own = [{"role": "system", "content": "Be brief."}, *user]
    assert apply_chat_template(tok, own) == tok.apply_chat_template(own, tokenize=False, add_generation_prompt=True)
    monkeypatch.setenv("SECOPS_SYSTEM_PROMPT", "")
    get_settings.cache_clear()
    try:
        assert apply_chat_template(tok, user) == tok.apply_chat_template(user, tokenize=False,
                                                                         add_generation_prompt=True)
    finally:
        monkeypatch.delenv("SECOPS_SYSTEM_PROMPT")
        get_settings.cache_clear()
