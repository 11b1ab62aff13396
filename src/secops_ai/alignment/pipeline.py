"""The evolve pipeline: prompts -> actor -> judge -> verifiers -> meta-judge -> pairs -> DPO -> gate.

A run lives in ``storage/evolve/<name>-<config hash>/``: ``config.yaml``, ``state.json`` (every stage's
artefact, its sha256, wall time and statistics) and one folder per iteration with the intermediate
artefacts (``candidates.jsonl``, ``judgments.jsonl``, ``verdicts.jsonl``, ``meta.jsonl``). The prompt set and
the preference pairs are ordinary immutable datasets under ``data/evolve/``; the trained adapter is an
ordinary registry run, a candidate until the gate passes.

Each stage writes its artefact atomically and then records it in ``state.json``, so a run killed at any
point resumes at the first unfinished stage when the same config is run again (an artefact whose hash no
longer matches is redone, with everything after it). Generation is seeded per request and scheduled
deterministically (see :mod:`secops_ai.alignment.generate`), so the same config, seeds and model give
byte-identical ``records.jsonl`` for every dataset on CPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from secops_ai.alignment import actor as actor_mod
from secops_ai.alignment import judge as judge_mod
from secops_ai.alignment import keyed as keyed_mod
from secops_ai.alignment import metajudge as meta_mod
from secops_ai.alignment import pairs as pairs_mod
from secops_ai.alignment import prompts as prompts_mod
from secops_ai.alignment import verifiers as verifiers_mod
from secops_ai.alignment.config import EvolveConfig
from secops_ai.alignment.report import is_running, runs_root, write_model_card_section
from secops_ai.config import Settings, get_settings
from secops_ai.config.atomic import atomic_write_text
from secops_ai.data.store import DatasetStore, GeneratorInfo, SourceRef
from secops_ai.observability.tracing import record_finished_span, stage_span
from secops_ai.training.runner import interrupt_on_sigterm

log = logging.getLogger(__name__)

STAGES = ("actor", "verify", "judge", "meta", "pairs", "train", "keyed", "gate")  # verifiers first: cheap, exact
KEYED_FIRST = ("actor", "verify", "judge", "meta", "pairs", "keyed", "train", "gate")  # keyed.order: before
PIPELINE_VERSION = "1"
Progress = Callable[[str], None]


class EvolveError(RuntimeError):
    """An evolve run cannot continue; the message says why and what to do."""


def run_id_for(config: EvolveConfig) -> str:
    """The config's fingerprint plus the versions of the rules that make its data, so a rerun after a verifier,
    rubric or pipeline change starts a new run instead of resuming with the old rules' stage outputs."""
    rules = f"{config.fingerprint()}|p{PIPELINE_VERSION}|v{verifiers_mod.VERSION}|r{judge_mod.RUBRIC_VERSION}" \
            f"|m{meta_mod.META_VERSION}"
    return f"{config.name}-{hashlib.sha256(rules.encode()).hexdigest()[:12]}"


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_or_reuse(store: DatasetStore, name: str, kind: str, records: list[dict], **kwargs: Any) -> str:
    """A new dataset version, or the latest one when it already holds exactly these records (a resumed run)."""
    from secops_ai.data.store import canonical_line, validate_record

    versions = store.versions(prompts_mod.PROVIDER, name)
    if versions:
        ds = store.get(f"{prompts_mod.PROVIDER}/{name}@{versions[-1]}")
        want = b"".join(canonical_line(validate_record(kind, r, file=name, line=i))
                        for i, r in enumerate(records, start=1))
        if ds.records_path.read_bytes() == want:
            return ds.ref
    return store.create(prompts_mod.PROVIDER, name, kind, records, **kwargs).ref


class EvolvePipeline:
    """One evolve run (paired with :class:`EvolveConfig`); :meth:`run` executes or resumes it."""

    def __init__(self, config: EvolveConfig, settings: Settings | None = None, *,
                 progress: Progress | None = None) -> None:
        self.config = config
        self.settings = settings or get_settings()
        if config.model_name_or_path:
            self.settings = self.settings.model_copy(update={"base_model": config.model_name_or_path})
        self.settings.workspace.ensure()
        self.store = DatasetStore(self.settings.workspace)
        self.run_id = run_id_for(config)
        self.dir = runs_root(self.settings) / self.run_id
        self.progress = progress or (lambda msg: log.info("%s", msg))
        self._generator: Any = None
        self._state: dict[str, Any] = {}
        self._generator_model: str | None = None

    # -- state ---------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    def load_state(self) -> dict[str, Any]:
        if self.state_path.is_file():
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        return {"run_id": self.run_id, "name": self.config.name, "fingerprint": self.config.fingerprint(),
                "pipeline_version": PIPELINE_VERSION, "created_at": _now(), "status": "new", "prompts": None,
                "iterations": []}

    def save_state(self, state: dict[str, Any]) -> None:
        state["updated_at"] = _now()
        atomic_write_text(self.state_path, json.dumps(state, indent=1, sort_keys=False) + "\n")

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EvolveError(f"evolve run {self.run_id} is already running in another process") from None
            yield

    @property
    def stages(self) -> tuple[str, ...]:
        """The stage order. Each training stage continues the model the one before it left (the iteration's
        start model first), and the last one trained is the candidate the gate measures."""
        return KEYED_FIRST if self.config.keyed.order == "before" else STAGES

    # -- the run -------------------------------------------------------------------------------------
    def run(self, iterations: int | None = None) -> dict[str, Any]:
        total = iterations or self.config.iterations
        with self._lock():
            state = self._state = self.load_state()
            atomic_write_text(self.dir / "config.yaml", yaml.safe_dump(self.config.model_dump(mode="json"),
                                                                        sort_keys=False))
            state["status"] = "running"
            self.save_state(state)
            restore = interrupt_on_sigterm()  # SIGTERM marks the run interrupted, like Ctrl-C
            try:
                self._prompts(state)
                for k in range(1, total + 1):
                    with stage_span(f"evolve iteration {k}", {"secops.evolve.run": self.dir.name,
                                                              "secops.evolve.iteration": k}):
                        self._iteration(state, k)
                state["status"] = "finished"
            except BaseException as exc:
                state["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                state["error"] = f"{type(exc).__name__}: {exc}"[:2000]
                raise
            finally:
                restore()
                self._close_generator()
                self.save_state(state)
        return state

    def _prompts(self, state: dict[str, Any]) -> None:
        done = state.get("prompts")
        if done and self.store.exists(done["ref"]):
            return
        t0 = time.perf_counter()
        ref, dropped = prompts_mod.build_prompt_dataset(self.config, self.store)
        state["prompts"] = {"ref": ref, "dropped_as_contaminated": dropped,
                            "count": self.store.get(ref).manifest.record_count,
                            "seconds": round(time.perf_counter() - t0, 2)}
        self.save_state(state)
        self.progress(f"prompts: {ref} ({state['prompts']['count']} prompts, {dropped} dropped as gate items)")

    def _start_model(self, state: dict[str, Any], k: int) -> str | None:
        """The model iteration ``k`` improves: its recorded start, else the previous one's outcome."""
        if k > 1:
            prev = state["iterations"][k - 2]
            chain = prev.get("promoted") or self.config.gate.chain == "candidate"
            return prev.get("candidate") if chain and prev.get("candidate") else prev.get("start_model")
        spec = self.config.start_from
        if spec == "base":
            return None
        from secops_ai.registry import Registry

        if spec == "production":
            return Registry(self.settings).production()
        Registry(self.settings).get(spec)  # must exist
        return spec

    def _iteration(self, state: dict[str, Any], k: int) -> None:
        its = state["iterations"]
        if len(its) < k:
            start = self._start_model(state, k)
            its.append({"index": k, "start_model": start, "seed": self.config.seed + 1000 * (k - 1),
                        "started_at": _now(), "stages": {}, "status": "running"})
            self.save_state(state)
        it = its[k - 1]
        if it.get("status") == "finished":
            return
        work = self.dir / f"it{k}"
        work.mkdir(parents=True, exist_ok=True)
        prompts = prompts_mod.load_prompts(self.store, state["prompts"]["ref"])
        # "candidate": the model the next training stage continues; the start model until one has trained
        ctx: dict[str, Any] = {"prompts": prompts, "work": work, "it": it, "candidate": it["start_model"]}
        redo = False
        for stage in self.stages:
            rec = it["stages"].get(stage)
            if not redo and rec and rec.get("done") and self._artefact_ok(rec, work):
                self._reload(stage, rec, ctx)
                out = rec
            else:
                redo = True  # everything after a redone stage is redone too
                self.progress(f"iteration {k}: {stage} ...")
                t0 = time.perf_counter()
                out = getattr(self, f"_stage_{stage}")(ctx)
                out.update(done=True, seconds=round(time.perf_counter() - t0, 2), finished_at=_now())
                it["stages"][stage] = out
                self.save_state(state)
                record_finished_span(f"evolve {stage}", out["seconds"], {  # one span per stage, its counts
                    "secops.evolve.iteration": k, **{f"secops.evolve.{key}": v for key, v in out.items()
                                                     if isinstance(v, bool | int | float | str)}})
                self.progress(f"iteration {k}: {stage} done in {out['seconds']:.1f}s")
            if stage == "pairs" and not out.get("train_pairs"):
                it["status"] = "no_pairs"
                self.save_state(state)
                raise EvolveError(f"iteration {k} produced no preference pairs (see {work}); nothing to train")
        it["status"] = "finished"
        it["finished_at"] = _now()
        self.save_state(state)

    def _artefact_ok(self, rec: dict[str, Any], work: Path) -> bool:
        if "file" in rec:
            f = work / rec["file"]
            return f.is_file() and _sha(f) == rec.get("sha256")
        if "datasets" in rec:
            return all(self.store.exists(ref) for ref in rec["datasets"].values() if ref)
        if rec.get("run_name"):  # a skipped keyed stage before any training names no run
            from secops_ai.registry import Registry, RegistryError

            try:
                Registry(self.settings).get(rec["run_name"])
            except RegistryError:
                return False
        return True

    def _write(self, work: Path, name: str, rows: list[dict]) -> dict[str, Any]:
        path = work / name
        atomic_write_text(path, _jsonl(rows))
        return {"file": name, "sha256": _sha(path), "rows": len(rows)}

    @staticmethod
    def _read(work: Path, name: str) -> list[dict]:
        with (work / name).open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def _reload(self, stage: str, rec: dict[str, Any], ctx: dict[str, Any]) -> None:
        """Put a finished stage's artefact back in the context the next stages read."""
        work = ctx["work"]
        if stage == "actor":
            ctx["candidates"] = [actor_mod.Candidate(**r) for r in self._read(work, rec["file"])]
        elif stage == "judge":
            ctx["judgments"] = [judge_mod.Judgment(**r) for r in self._read(work, rec["file"])]
        elif stage == "verify":
            ctx["verdicts"] = {(r["prompt_id"], r["index"]): r for r in self._read(work, rec["file"])}
        elif stage == "meta":
            ctx["decisions"] = [meta_mod.MetaDecision(**{**r, "raw": tuple(r["raw"])})
                                for r in self._read(work, rec["file"])]
        elif stage == "pairs":
            ctx["pairs"] = rec
        elif stage in ("train", "keyed"):
            ctx["candidate"] = rec["run_name"]

    # -- generators ----------------------------------------------------------------------------------
    def _actor_generator(self, model: str | None):
        from secops_ai.alignment.generate import EngineGenerator

        if self._generator is None or self._generator_model != model:
            self._close_generator()
            self.progress(f"loading {model or 'the base model'} on the serving engine")
            self._generator = EngineGenerator(self.settings, model, chunk=self.config.batch_size)
            self._generator.progress = self.progress
            self._generator_model = model
        return self._generator

    def _judge_generator(self, model: str | None):
        j = self.config.judge
        if not j.base_url:
            return self._actor_generator(model)
        import os

        from secops_ai.alignment.generate import RemoteGenerator

        key = os.environ.get(j.api_key_env) if j.api_key_env else None
        return RemoteGenerator(j.base_url, j.model or "default", api_key=key)

    def _close_generator(self) -> None:
        if self._generator is not None:
            self._generator.close()
            self._generator = None
            self._generator_model = None

    # -- stages --------------------------------------------------------------------------------------
    def _stage_actor(self, ctx: dict[str, Any]) -> dict[str, Any]:
        it = ctx["it"]
        gen = self._actor_generator(it["start_model"])
        cands = actor_mod.act(ctx["prompts"], gen, self.config.actor, seed=it["seed"], iteration=it["index"])
        ctx["candidates"] = cands
        counts: dict[str, int] = {}
        for c in cands:
            counts[c.origin] = counts.get(c.origin, 0) + 1
        return {**self._write(ctx["work"], "candidates.jsonl", [c.to_dict() for c in cands]),
                "by_origin": counts, "generator": gen.name}

    def _stage_judge(self, ctx: dict[str, Any]) -> dict[str, Any]:
        it = ctx["it"]
        gen = self._judge_generator(it["start_model"])
        todo = judge_mod.to_judge(ctx["candidates"], {k: r["verdict"] for k, r in ctx["verdicts"].items()},
                                  self.config.judge.verified_sample)
        judgments = judge_mod.judge(ctx["prompts"], todo, gen, self.config.judge, seed=it["seed"],
                                    iteration=it["index"])
        ctx["judgments"] = judgments
        readable = sum(1 for j in judgments if j.score is not None)
        return {**self._write(ctx["work"], "judgments.jsonl", [j.to_dict() for j in judgments]),
                "answers_judged": len(todo), "readable": readable,
                "readable_share": round(readable / len(judgments), 4) if judgments else 0.0,
                "judge": gen.name, "prompts_too_long": getattr(gen, "too_long", 0)}

    def _stage_verify(self, ctx: dict[str, Any]) -> dict[str, Any]:
        v = self.config.verifiers
        by_id = {p.id: p for p in ctx["prompts"]}
        rows = []
        for c in ctx["candidates"]:
            # The relevance floor is a word-overlap check against babble; a reference is the source's own
            # answer to this prompt, and a list of steps ("1. Put the site behind a CDN") shares few words with
            # its question: the floor rejected 18 of the recipe's 48 defensive answers as off topic.
            verdict = verifiers_mod.verify(by_id[c.prompt_id], c.text, ids=v.ids, bandit=v.bandit,
                                           injection=v.injection, redirect=v.redirect,
                                           relevance=v.relevance and c.origin != "reference")
            rows.append({"prompt_id": c.prompt_id, "index": c.index, **verdict.to_dict()})
        ctx["verdicts"] = {(r["prompt_id"], r["index"]): r for r in rows}
        failed: dict[str, int] = {}
        for r in rows:
            for f in r["failed"]:
                failed[f] = failed.get(f, 0) + 1
        return {**self._write(ctx["work"], "verdicts.jsonl", rows), "failed_checks": dict(sorted(failed.items())),
                "verified_good": sum(1 for r in rows if r["verdict"] > 0),
                "verified_bad": sum(1 for r in rows if r["verdict"] < 0)}

    def _answers(self, ctx: dict[str, Any]) -> dict[tuple[str, int], str]:
        return {(c.prompt_id, c.index): c.text for c in ctx["candidates"]}

    def _stage_meta(self, ctx: dict[str, Any]) -> dict[str, Any]:
        it = ctx["it"]
        verdicts = {k: r["verdict"] for k, r in ctx["verdicts"].items()}
        cfg = self.config.meta_judge
        gen = self._judge_generator(it["start_model"]) if cfg.enabled and cfg.max_answers else None
        decisions = meta_mod.meta_judge(ctx["prompts"], self._answers(ctx), ctx["judgments"], verdicts, gen, cfg,
                                        seed=it["seed"]) if gen is not None else []
        ctx["decisions"] = decisions
        return self._write(ctx["work"], "meta.jsonl", [d.to_dict() for d in decisions])

    def _stage_pairs(self, ctx: dict[str, Any]) -> dict[str, Any]:
        it, cfg = ctx["it"], self.config
        self._close_generator()  # generation is over for this iteration: free the model before training
        scored = judge_mod.aggregate(ctx["candidates"], ctx["judgments"], cfg.judge)
        verdicts = {k: r["verdict"] for k, r in ctx["verdicts"].items()}
        ranked = pairs_mod.rank(ctx["candidates"], scored, verdicts)
        actor_records, actor_stats = pairs_mod.actor_pairs(ctx["prompts"], ranked, cfg.pairs)
        judge_records, judge_stats = pairs_mod.judge_pairs(ctx["prompts"], self._answers(ctx), ctx["judgments"],
                                                           ctx["decisions"])
        agreement = pairs_mod.judge_verifier_agreement(ranked)
        info = self._provenance(it)
        prompt_ref = self._state["prompts"]["ref"]
        common = dict(sources=[SourceRef(uri=prompt_ref, format="prompt_completion")])
        refs: dict[str, str | None] = {}
        refs["actor"] = create_or_reuse(
            self.store, f"{cfg.name}-actor", "preference", actor_records,
            generator=GeneratorInfo(name="evolve-actor-pairs", version=PIPELINE_VERSION, seed=it["seed"],
                                    config={**info, "actor": cfg.actor.model_dump(), "pairs": cfg.pairs.model_dump(),
                                            "stats": actor_stats, "judge_verifier": agreement}),
            description=f"evolve {cfg.name} iteration {it['index']}: actor preference pairs", **common)
        refs["judge"] = create_or_reuse(
            self.store, f"{cfg.name}-judge", "preference", judge_records,
            generator=GeneratorInfo(name="evolve-judge-pairs", version=PIPELINE_VERSION, seed=it["seed"],
                                    config={**info, "meta_judge": cfg.meta_judge.model_dump(),
                                            "meta_version": meta_mod.META_VERSION, "stats": judge_stats}),
            description=f"evolve {cfg.name} iteration {it['index']}: judge preference pairs (meta-judged)",
            **common)
        train_records = actor_records + (judge_records if cfg.train.judge_pairs else [])
        refs["train"] = None
        if train_records:
            refs["train"] = create_or_reuse(
                self.store, f"{cfg.name}-train", "preference", train_records,
                sources=[SourceRef(uri=refs["actor"]), SourceRef(uri=refs["judge"])],
                generator=GeneratorInfo(name="evolve-train-mix", version=PIPELINE_VERSION, seed=it["seed"],
                                        config={"actor_pairs": len(actor_records),
                                                "judge_pairs": len(judge_records) if cfg.train.judge_pairs else 0}),
                description=f"evolve {cfg.name} iteration {it['index']}: what DPO trains on")
        ctx["pairs"] = {"datasets": refs}
        scores = self._write(ctx["work"], "scores.jsonl", [  # per answer: judge, verifier, final, conflict
            {"prompt_id": r.candidate.prompt_id, "index": r.candidate.index, "origin": r.candidate.origin,
             "judge": r.judge, "verdict": r.verdict, "final": r.final, "conflict": r.conflict} for r in ranked])
        return {"scores": scores, "datasets": refs, "actor": actor_stats, "judge": judge_stats,
                "judge_verifier": agreement, "train_pairs": len(train_records)}

    def _provenance(self, it: dict[str, Any]) -> dict[str, Any]:
        """What generated the data, recorded in each pairs manifest (deterministic: no times, no paths)."""
        from secops_ai.alignment.generate import weights_digest
        from secops_ai.inference.loader import resolve_base_model

        start = it["start_model"]
        adapter_sha = weights_digest(self.settings.workspace.models / start) if start else None
        j = self.config.judge
        return {
            "iteration": it["index"], "seed": it["seed"], "config_seed": self.config.seed,
            "config_fingerprint": self.config.fingerprint(),
            "base_model": resolve_base_model(self.settings).name, "adapter": start or "base",
            "adapter_sha256": adapter_sha, "prompt_dataset": self._state["prompts"]["ref"],
            "rubric_version": judge_mod.RUBRIC_VERSION, "rubric": judge_mod.RUBRIC,
            "judge": {"endpoint": j.base_url or "self", "model": j.model if j.base_url else (start or "base"),
                      "judgments": j.judgments, "temperature": j.temperature, "both_positions": j.both_positions,
                      "length_penalty": j.length_penalty},
            "verifiers": {"version": verifiers_mod.VERSION, "refusal": "secops_ai.evals.refusal.is_refusal",
                          "ids": self.config.verifiers.ids, "bandit": _bandit_version() if
                          self.config.verifiers.bandit else None, "injection": self.config.verifiers.injection,
                          "relevance": self.config.verifiers.relevance},
        }

    def _train_run(self, it: dict[str, Any], key: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Train (or finish, or reuse) one registered run; ``it[key]`` holds its run id from the start, so a
        killed run resumes from its checkpoints. Returns the run's model name and its metrics."""
        from secops_ai.training.config import RunConfig
        from secops_ai.training.runner import new_run_id, train

        run_cfg = RunConfig.from_dict(values, source=f"{self.run_id} {key}")
        # the pending id is reused only for the same run config: a redone earlier stage (new pairs, a new
        # adapter to continue) must not resume, or reuse, a run trained on the old ones
        digest = hashlib.sha256(json.dumps(run_cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        pending = it.get(key) if it.get(f"{key}_config") == digest else None
        if not pending:
            pending = new_run_id(run_cfg)
            it[key], it[f"{key}_config"] = pending, digest
            self.save_state(self._state)
        final = self.settings.workspace.models / run_cfg.provider / pending
        if not final.exists():
            metrics = train(run_cfg, self.settings, run_id=pending, progress=False).metrics
        else:
            metrics = json.loads((final / "run.json").read_text()).get("metrics", {})
        return f"{run_cfg.provider}/{pending}", {k: metrics.get(k) for k in ("final_loss", "first_loss",
                                                                             "global_step", "train_runtime")}

    def _train_defaults(self, it: dict[str, Any]) -> dict[str, Any]:
        """The preference run's RunConfig fields before the model it continues is known."""
        cfg = self.config
        values: dict[str, Any] = dict(
            model_name_or_path=self.settings.base_model, stage=cfg.train.stage,
            cutoff_len=512, lora_rank=8, lora_target="q_proj,k_proj,v_proj,o_proj", learning_rate=5e-5,
            max_steps=40, per_device_train_batch_size=2, gradient_accumulation_steps=2, pref_beta=0.1,
            seed=it["seed"], save_steps=10, run_name=f"evolve-{cfg.name}-it{it['index']}")
        values.update(cfg.train.overrides)
        return values

    def _stage_train(self, ctx: dict[str, Any]) -> dict[str, Any]:
        it = ctx["it"]
        start = ctx["candidate"]  # the start model, or the keyed drill's run when it ran first
        values = {**self._train_defaults(it), "dataset": ctx["pairs"]["datasets"]["train"]}
        values["description"] = f"evolve {self.run_id} iteration {it['index']} from {start or 'base'}"
        if start:
            values["adapter_name_or_path"] = str(self.settings.workspace.models / start)
        name, metrics = self._train_run(it, "train_run_id", values)
        ctx["candidate"] = name
        it["candidate"] = name
        return {"run_name": name, "continues": start, "metrics": metrics}

    def _stage_keyed(self, ctx: dict[str, Any]) -> dict[str, Any]:
        """Answer-level SFT on verifier-keyed multiple choice, continuing the model the stage before left."""
        from secops_ai.evals.holdout import find_contamination

        it, cfg, k = ctx["it"], self.config, self.config.keyed
        if not (k.items or k.catalog_items or k.tooling_items):
            return {"run_name": ctx["candidate"], "skipped": True}
        items = keyed_mod.drill_items(k.items, k.catalog_items, k.tooling_items, it["seed"])
        evals = sorted({p for gate in {cfg.gate.gate, "default"} for p in prompts_mod.gate_prompts(gate)})
        bad = {c.line for c in find_contamination([("keyed", items)], evals)}
        items = [r for i, r in enumerate(items, start=1) if i not in bad]
        actor_ref = ctx["pairs"]["datasets"]["actor"]
        replay = keyed_mod.replay_items(list(self.store.get(actor_ref).iter_records())) if k.replay else []
        ref = create_or_reuse(
            self.store, f"{cfg.name}-keyed", "chat", items + replay, sources=[SourceRef(uri=actor_ref)],
            generator=GeneratorInfo(name="evolve-keyed", version=keyed_mod.KEYED_VERSION, seed=it["seed"],
                                    config={"items": len(items), "choices": k.items, "catalog": k.catalog_items,
                                            "tooling": k.tooling_items, "dropped_as_contaminated": len(bad),
                                            "replay": len(replay), "reading_pool": len(keyed_mod.reading_pool())}),
            description=f"evolve {cfg.name} iteration {it['index']}: keyed multiple choice"
                        + (f" + {k.catalog_items} catalog deferrals" if k.catalog_items else "")
                        + (f" + {k.tooling_items} tooling answers" if k.tooling_items else "")
                        + (" + replayed chosen answers" if replay else ""))
        start = ctx["candidate"]
        values: dict[str, Any] = dict(
            model_name_or_path=self.settings.base_model, stage="sft", dataset=ref,
            cutoff_len=512, learning_rate=5e-4, lr_scheduler_type="linear", warmup_ratio=0.05,
            per_device_train_batch_size=4, gradient_accumulation_steps=1, num_train_epochs=1.0,
            seed=it["seed"], save_steps=50, run_name=f"evolve-{cfg.name}-it{it['index']}-keyed",
            description=f"evolve {self.run_id} iteration {it['index']}: keyed items on {start or 'base'}")
        if start:
            values["adapter_name_or_path"] = str(self.settings.workspace.models / start)
        else:  # a new adapter, of the shape the preference run is configured for (it may continue this one)
            values.update({f: v for f, v in self._train_defaults(it).items() if f.startswith("lora_")})
        values.update(k.overrides)
        name, metrics = self._train_run(it, "keyed_run_id", values)
        ctx["candidate"] = name
        it["candidate"] = name
        return {"run_name": name, "dataset": ref, "items": len(items), "kinds": keyed_mod.kind_counts(items),
                "replay": len(replay), "dropped_as_contaminated": len(bad), "continues": start, "metrics": metrics}

    def _stage_gate(self, ctx: dict[str, Any]) -> dict[str, Any]:
        from secops_ai.evals.gate import load_gate
        from secops_ai.evals.result import HIGHER_IS_BETTER
        from secops_ai.evals.runner import measure, resolve_target, run_gate
        from secops_ai.registry import Registry

        it, g = ctx["it"], self.config.gate
        candidate = ctx["candidate"]
        report = run_gate(self.settings, candidate, g.gate)
        gate_cfg, _ = load_gate(g.gate)
        # "current" = what serves today: production when there is one, else the model this iteration improved
        current = Registry(self.settings).production() or it["start_model"] or "base"
        ref = measure(self.settings, resolve_target(self.settings, current), gate_cfg).metrics()
        cand = report.candidate.metrics()
        regressions = []
        for suite in g.safety_suites:
            if suite not in cand or suite not in ref:
                continue
            watched = set(gate_cfg.suites[suite].thresholds) | ({"harmful_refusal_rate", "false_refusal_rate"}
                                                                & set(cand[suite]))
            for metric in sorted(watched):
                if metric not in ref[suite]:
                    continue
                before, after = ref[suite][metric], cand[suite][metric]
                worse = (before - after) if HIGHER_IS_BETTER[metric] else (after - before)
                if worse > g.max_regression + 1e-9:
                    regressions.append({"suite": suite, "metric": metric, "current": ref[suite][metric],
                                        "candidate": cand[suite][metric], "worse_by": round(worse, 6)})
        passed = report.verdict.passed and not regressions
        promoted = False
        if passed and g.promote:
            Registry(self.settings).promote(candidate, actor="evolve",
                                            reason=f"evolve {self.run_id} iteration {it['index']}")
            promoted = True
        it["promoted"] = promoted
        out = {"gate": report.verdict.gate, "gate_passed": report.verdict.passed,
               "gate_message": report.verdict.message, "no_regression_passed": not regressions,
               "regressions": regressions, "passed": passed, "promoted": promoted, "compared_to": current,
               "before": ref, "after": cand}
        write_model_card_section(self.settings, candidate, self.run_id, it, out)
        return out


def _bandit_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("bandit")
    except Exception:
        return None


def start_background(config: EvolveConfig, settings: Settings, *, iterations: int | None = None) -> str:
    """Run (or resume) ``config`` in its own process, as the API does; returns the run id at once.

    A separate process keeps generation and training off the server's event loop and memory, and a crash
    of either side leaves the other standing; progress is read back from ``state.json``.
    """
    import os
    import subprocess
    import sys

    run_id = run_id_for(config)
    if is_running(settings, run_id):
        raise EvolveError(f"evolve run {run_id} is already running")
    run_dir = runs_root(settings) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "request.yaml"
    atomic_write_text(cfg_path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    env = {**os.environ, "SECOPS_HOME": str(settings.workspace.root)}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    if config.model_name_or_path is None:
        env["SECOPS_BASE_MODEL"] = settings.base_model
    state_path = run_dir / "state.json"  # 'queued' at once; the process takes it over
    state = (json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else
             {"run_id": run_id, "name": config.name, "fingerprint": config.fingerprint(), "created_at": _now(),
              "prompts": None, "iterations": []})
    state["status"] = "queued"
    atomic_write_text(state_path, json.dumps(state, indent=1) + "\n")
    cmd = [sys.executable, "-m", "secops_ai.cli.main", "evolve", "run", str(cfg_path)]
    if iterations:
        cmd += ["--iterations", str(iterations)]
    with (run_dir / "job.log").open("a") as log_fh:
        subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return run_id
