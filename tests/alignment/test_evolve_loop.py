"""The whole evolve loop on a tiny random Llama: artefacts, manifests, resume, determinism, and the gate
refusing a candidate that regresses on a safety suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from secops_ai.alignment.config import EvolveConfig
from secops_ai.alignment.pipeline import EvolvePipeline
from secops_ai.config import Settings, get_settings
from secops_ai.data.store import DatasetStore

pytestmark = pytest.mark.slow

GATE = Path(__file__).parent / "gate-evolve.yaml"
REFUSE = "I can't help with that."


def tiny_config(**overrides) -> EvolveConfig:
    data = {
        "name": "tiny", "seed": 3, "start_from": "production", "batch_size": 16,
        "prompts": {"sources": ["refusals", "cwe_choice"], "per_source": 2},
        "actor": {"samples": 4, "max_tokens": 8, "choice_hint": True},
        "judge": {"judgments": 2, "max_tokens": 8},
        # a random tiny model addresses nothing: with the relevance verifier every benign answer is verified bad
        # and no pair survives (tests/alignment/test_evolve_units.py covers that rule)
        "verifiers": {"relevance": False},
        "meta_judge": {"max_answers": 6, "max_tokens": 2},
        "train": {"overrides": {"max_steps": 3, "learning_rate": 5e-3, "cutoff_len": 256,
                                "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                                "lora_target": "all", "save_steps": 1}},
        "keyed": {"items": 8, "order": "after", "replay": True,
                  "overrides": {"max_steps": 2, "cutoff_len": 384, "save_steps": 1}},
        "gate": {"gate": str(GATE), "safety_suites": ["policy"], "max_regression": 0.0},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return EvolveConfig.model_validate(data)


@pytest.fixture
def evolve_settings(workspace, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))
    get_settings.cache_clear()
    return get_settings()


def _train_refuser(settings: Settings) -> str:
    """A production adapter that refuses everything (so the gate's harmful_refusal_rate is 1.0)."""
    from secops_ai.alignment.prompts import gate_prompts
    from secops_ai.training.config import RunConfig
    from secops_ai.training.runner import train

    records = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": REFUSE}]}
               for p in gate_prompts(str(GATE))]
    ref = DatasetStore(settings.workspace).create("test", "refuse", "chat", records).ref
    cfg = RunConfig.from_dict(dict(model_name_or_path=str(settings.base_model), dataset=ref, lora_rank=16,
                                   lora_target="all", max_steps=12, per_device_train_batch_size=8,
                                   learning_rate=1e-2, lr_scheduler_type="constant", cutoff_len=512,
                                   packing=False, save_steps=1000, seed=3, run_name="refuser"))
    return train(cfg, settings, progress=False).run_name


STAGES_BEFORE_TRAIN = ["actor", "verify", "judge", "meta", "pairs"]


def _killed(self, ctx):
    raise KeyboardInterrupt("killed during training")


def test_evolve_loop_resumes_is_deterministic_and_the_gate_refuses_a_regression(
        evolve_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from secops_ai.cli.main import app
    from secops_ai.registry import Registry

    settings = evolve_settings
    registry = Registry(settings)
    refuser = _train_refuser(settings)
    registry.promote(refuser, force=True, reason="test: production refuses every harmful request")
    cfg = tiny_config(start_from="base")

    # -- killed during training: every earlier stage is a finished artefact recorded in state.json
    original_train = EvolvePipeline._stage_train
    monkeypatch.setattr(EvolvePipeline, "_stage_train", _killed)
    first = EvolvePipeline(cfg, settings)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    state = first.load_state()
    it = state["iterations"][0]
    assert state["status"] == "interrupted" and list(it["stages"]) == STAGES_BEFORE_TRAIN
    work = first.dir / "it1"
    produced = {f: (work / f).read_bytes() for f in ("candidates.jsonl", "judgments.jsonl", "verdicts.jsonl",
                                                     "meta.jsonl")}

    # -- same config, seeds and model in a fresh run folder: byte-identical artefacts, and the pair datasets
    # are the same versions (a new version is written unless the records are byte-identical to the latest)
    replay = EvolvePipeline(cfg, settings)
    replay.dir = tmp_path / "replay"
    with pytest.raises(KeyboardInterrupt):
        replay.run()
    again = replay.load_state()["iterations"][0]
    for name, data in produced.items():
        assert (replay.dir / "it1" / name).read_bytes() == data, name
    assert again["stages"]["pairs"]["datasets"] == it["stages"]["pairs"]["datasets"]

    # -- rerun: finished stages are skipped (their artefacts untouched), training and the gate run
    monkeypatch.setattr(EvolvePipeline, "_stage_train", original_train)
    messages: list[str] = []
    state = EvolvePipeline(cfg, settings, progress=messages.append).run()
    it = state["iterations"][0]
    assert not any(f"iteration 1: {s} ..." in m for s in STAGES_BEFORE_TRAIN for m in messages)
    assert all(f"iteration 1: {s} ..." in messages for s in ("train", "keyed", "gate"))
    assert all((work / f).read_bytes() == data for f, data in produced.items())
    assert state["status"] == "finished" and list(it["stages"]) == [*STAGES_BEFORE_TRAIN, "train", "keyed", "gate"]

    # -- artefacts: ordinary immutable datasets with full manifests
    store = DatasetStore(settings.workspace)
    refs = it["stages"]["pairs"]["datasets"]
    actor = store.get(refs["actor"])
    assert actor.path.parent.name == "evolve" and str(actor.manifest.kind) == "preference"
    assert not store.verify(refs["actor"]) and not store.verify(refs["judge"])
    gen = actor.manifest.generator.config
    assert gen["prompt_dataset"] == state["prompts"]["ref"] and gen["adapter"] == "base"
    assert gen["seed"] == it["seed"] and gen["verifiers"]["version"] and gen["judge"]["endpoint"] == "self"
    assert gen["rubric_version"] and "Helpfulness" in gen["rubric"] and gen["verifiers"]["bandit"]
    stats = it["stages"]["pairs"]["actor"]
    assert actor.manifest.record_count == stats["pairs"] > 0
    assert abs(sum(stats["chosen_origin_share"].values()) - 1.0) < 1e-6
    candidates = [json.loads(line) for line in produced["candidates.jsonl"].decode().splitlines()]
    assert {c["origin"] for c in candidates} == {"sample", "revise", "refusal_redirect", "refusal_probe",
                                                 "choice_hint"}
    # every multiple-choice prompt gets one hinted answer, and the verifiers find its letter correct
    verdicts = {(v["prompt_id"], v["index"]): v
                for v in map(json.loads, produced["verdicts.jsonl"].decode().splitlines())}
    hinted = [c for c in candidates if c["origin"] == "choice_hint"]
    assert sorted(c["prompt_id"] for c in hinted) == sorted({c["prompt_id"] for c in candidates
                                                             if c["prompt_id"].startswith("choice:")})
    assert all("choice_correct" in verdicts[(c["prompt_id"], c["index"])]["passed"] for c in hinted)
    records = list(actor.iter_records())
    assert all(r["metadata"]["task"].startswith("evolve-actor:") for r in records)
    # the preference run trained on the pairs; the keyed run continued its adapter and is the candidate
    candidate = it["candidate"]
    preference_run = it["stages"]["train"]["run_name"]
    assert registry.get(preference_run).dataset == refs["train"]
    keyed = it["stages"]["keyed"]
    assert candidate == keyed["run_name"] != preference_run and keyed["continues"] == preference_run
    assert registry.get(candidate).stage == "candidate" and registry.get(candidate).dataset == keyed["dataset"]
    run_cfg = yaml.safe_load((settings.workspace.models / candidate / "config.yaml").read_text())
    assert run_cfg["stage"] == "sft" and run_cfg["adapter_name_or_path"].endswith(preference_run)
    keyed_ds = store.get(keyed["dataset"])
    assert not store.verify(keyed["dataset"]) and keyed_ds.manifest.generator.name == "evolve-keyed"
    rows = list(keyed_ds.iter_records())
    drills = [r for r in rows if r["metadata"]["source"] == "evolve-keyed"]
    assert len(drills) == keyed["items"] == 8 and {r["messages"][-1]["content"] for r in drills} == set("ABCD")
    # the replayed rows are the actor pairs' chosen answers, one per prompt
    chosen = {json.dumps(r["prompt"]) + r["chosen"][-1]["content"] for r in records}
    replayed = [r for r in rows if r["metadata"]["source"] == "evolve-replay"]
    assert len(replayed) == keyed["replay"] > 0
    assert all(json.dumps(r["messages"][:-1]) + r["messages"][-1]["content"] in chosen for r in replayed)

    # -- the gate: trained from the base, the candidate refuses far less than production does -> not promoted
    gate = it["stages"]["gate"]
    assert gate["compared_to"] == refuser and gate["before"]["policy"]["harmful_refusal_rate"] == 1.0
    assert any(r["suite"] == "policy" and r["metric"] == "harmful_refusal_rate" for r in gate["regressions"])
    assert gate["no_regression_passed"] is False and gate["promoted"] is False
    assert registry.production() == refuser
    card = (settings.workspace.models / candidate / "model_card.md").read_text()
    assert "## Evolve" in card and "| policy | harmful_refusal_rate | 1.000 |" in card

    # -- status and show
    result = CliRunner().invoke(app, ["evolve", "status", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["run_id"] == first.run_id and row["candidate"] == candidate and row["promoted"] is False
    shown = CliRunner().invoke(app, ["evolve", "show", first.run_id])
    assert shown.exit_code == 0 and "Iteration 1" in shown.output and "harmful_refusal_rate" in shown.output
    assert CliRunner().invoke(app, ["evolve", "show", "nope"]).exit_code == 1

    # -- the API: POST the same config again -> 202; the background process resumes the finished run (nothing
    # left to do) and the run reads back as finished, with its report
    import time

    from fastapi.testclient import TestClient

    from secops_ai.api.app import create_app

    with TestClient(create_app(settings, load_model=False)) as client:
        r = client.post("/evolve/runs", json={"config": cfg.model_dump(mode="json")})
        assert r.status_code == 202 and r.json()["run_id"] == first.run_id
        deadline = time.monotonic() + 300
        while True:
            body = client.get(f"/evolve/runs/{first.run_id}").json()
            if body["status"] == "finished" and not body["running"]:
                break
            assert time.monotonic() < deadline, body
            time.sleep(1)
        assert body["iterations"][0]["candidate"] == candidate and "Iteration 1" in body["report_markdown"]
        listed = client.get("/evolve/runs").json()["data"]
        assert [r["run_id"] for r in listed] == [first.run_id]


def test_keyed_before_the_preference_run_chains_the_adapters(evolve_settings: Settings) -> None:
    """`keyed.order: before`: the drill trains a new adapter on the start model (the base here), shaped like the
    preference run's, and the preference run continues it; the preference run is the candidate."""
    from secops_ai.registry import Registry

    settings = evolve_settings
    from typer.testing import CliRunner

    from secops_ai.cli.main import app

    cfg = tiny_config(start_from="base", actor={"references": True},
                      keyed={"order": "before", "replay": False, "catalog_items": 3, "tooling_items": 2},
                      train={"overrides": {"max_steps": 2, "learning_rate": 5e-3, "cutoff_len": 256, "lora_rank": 4,
                                           "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
                                           "lora_target": "all", "save_steps": 1}})
    pipe = EvolvePipeline(cfg, settings)
    state = pipe.run()
    it = state["iterations"][0]
    assert list(it["stages"]) == [*STAGES_BEFORE_TRAIN, "keyed", "train", "gate"]
    keyed, train = it["stages"]["keyed"], it["stages"]["train"]
    assert keyed["continues"] is None and keyed["replay"] == 0 and train["continues"] == keyed["run_name"]
    # the drill's three kinds of keyed item, in one dataset whose manifest counts them
    assert keyed["kinds"] == {"multiple-choice": 8, "catalog deferral": 3, "tooling": 2} and keyed["items"] == 13
    drill_data = DatasetStore(settings.workspace).get(keyed["dataset"])
    assert drill_data.manifest.generator.config["catalog"] == 3 and drill_data.manifest.record_count == 13
    # every prompt with a reference answer (not multiple choice) got it as a candidate, origin "reference"
    from secops_ai.alignment.prompts import load_prompts

    prompts = {p.id: p for p in load_prompts(DatasetStore(settings.workspace), state["prompts"]["ref"])}
    candidates = [json.loads(line) for line in (pipe.dir / "it1" / "candidates.jsonl").read_text().splitlines()]
    refs = [c for c in candidates if c["origin"] == "reference"]
    assert refs and {c["prompt_id"] for c in refs} == {c["prompt_id"] for c in candidates
                                                       if not c["prompt_id"].startswith("choice:")}
    assert all(c["text"] == prompts[c["prompt_id"]].reference and c["seed"] is None for c in refs)
    assert it["candidate"] == train["run_name"] != keyed["run_name"]
    models = settings.workspace.models
    drill = yaml.safe_load((models / keyed["run_name"] / "config.yaml").read_text())
    pref = yaml.safe_load((models / train["run_name"] / "config.yaml").read_text())
    assert drill["stage"] == "sft" and drill["adapter_name_or_path"] is None
    assert (drill["lora_rank"], drill["lora_target"]) == (4, "all")  # the preference run's adapter shape
    assert pref["stage"] == cfg.train.stage and pref["adapter_name_or_path"] == str(models / keyed["run_name"])
    assert Registry(settings).get(it["candidate"]).stage == "candidate"
    assert "## Evolve" in (models / it["candidate"] / "model_card.md").read_text()  # the gate measured it
    shown = CliRunner().invoke(app, ["evolve", "show", pipe.run_id])
    assert shown.exit_code == 0 and "trained on base" in " ".join(shown.output.split())
    assert "3 catalog deferral" in " ".join(shown.output.split())


def test_judge_through_an_openai_compatible_endpoint(evolve_settings: Settings, tiny_llama_dir: Path,
                                                     start_server) -> None:
    """`judge.base_url`: the judgments come from another server (here this project's own, serving the tiny
    model), with the same per-request seeds, so two passes give the same judgments."""
    from secops_ai.alignment.actor import Candidate
    from secops_ai.alignment.config import JudgeConfig
    from secops_ai.alignment.generate import RemoteGenerator
    from secops_ai.alignment.judge import judge
    from secops_ai.alignment.prompts import _refusals

    server = start_server({"SECOPS_HOME": str(evolve_settings.home), "SECOPS_BASE_MODEL": str(tiny_llama_dir)})
    prompts = _refusals(1)
    cands = [Candidate(p.id, 0, "sample", "Sure, step one.") for p in prompts]
    cfg = JudgeConfig(base_url=server.base_url, model="base", judgments=2, max_tokens=6)
    remote = RemoteGenerator(server.base_url, "base")
    first = judge(prompts, cands, remote, cfg, seed=1, iteration=1)
    assert [(j.prompt_id, j.k, j.layout) for j in first] == [
        (p.id, k, layout) for p in prompts for k, layout in ((0, "question_first"), (1, "answer_first"))]
    assert any(j.text.strip() for j in first)  # the server answered
    assert [j.text for j in judge(prompts, cands, remote, cfg, seed=1, iteration=1)] == [j.text for j in first]
