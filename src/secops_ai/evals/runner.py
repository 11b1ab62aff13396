"""Run a gate: evaluate a model on every suite, compare with production and base, record the verdict.

Data flows one way: resolve the target -> build each suite's fixed items -> generate replies in batches
(greedy, fixed seed) -> score -> decide against the gate config and production -> write ``evals.json`` +
``evals.md`` in the run folder, fill the model card's evals section, record the verdict in the registry.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from secops_ai.config import Settings
from secops_ai.config.atomic import atomic_write_text
from secops_ai.evals.gate import GateConfig, decide, load_gate
from secops_ai.evals.gate_report import ComparedModel, GateReport, ModelEval
from secops_ai.evals.holdout import ContaminationCheck
from secops_ai.evals.report import render_report
from secops_ai.evals.result import SuiteResult, make_result
from secops_ai.evals.suites import SUITES, ScoreContext
from secops_ai.inference.types import ChatBackend, GenerationParams
from secops_ai.observability.tracing import record_finished_span, stage_span

log = logging.getLogger(__name__)

EVALS_FILE = "evals.json"
REPORT_FILE = "evals.md"
BASE = "base"

# (label, done, total) after every batch; the CLI turns it into a rich progress bar.
ProgressFn = Callable[[str, int, int], None]


class EvalsError(ValueError):
    """An evaluation cannot run (unknown target, missing files); the message says why."""


@dataclass
class Target:
    """What is evaluated: its registry name (``base`` for the base model), where results go, how to load it."""

    name: str
    out_dir: Path
    kind: str  # "base", "adapter" or "full"
    path: Path | None


def evaluate_model(backend: ChatBackend, config: GateConfig, model: str, *, progress: ProgressFn | None = None,
                   judge: ChatBackend | None = None, suites: list[str] | None = None) -> ModelEval:
    """Every suite of ``config`` (or the named subset) on ``backend``: batched, greedy, fixed seed.

    Traced as one ``evaluate <model>`` span with an ``eval <suite>`` child per suite (scores as attributes).
    """
    with stage_span(f"evaluate {model}", {"gen_ai.request.model": model, "secops.eval.gate": config.name}):
        return _evaluate_model(backend, config, model, progress=progress, judge=judge, suites=suites)


def _evaluate_model(backend: ChatBackend, config: GateConfig, model: str, *, progress: ProgressFn | None,
                    judge: ChatBackend | None, suites: list[str] | None) -> ModelEval:
    names = suites or list(config.suites)
    unknown = [n for n in names if n not in config.suites]
    if unknown:
        raise EvalsError(f"suite(s) {unknown} are not in gate {config.name} (it has {', '.join(config.suites)})")
    built = {n: SUITES[n].build(config.suites[n], config.seed) for n in names}
    total = sum(len(v) for v in built.values())
    done = 0
    started = time.perf_counter()
    results: dict[str, SuiteResult] = {}
    for name in names:
        cfg, items = config.suites[name], built[name]
        params = GenerationParams(max_tokens=cfg.max_new_tokens, temperature=0.0, seed=config.seed)
        suite_start = time.perf_counter()
        # Batch prompts of similar length together (less left padding to compute), then restore item order.
        # The order is a pure function of the items, so batches, and thus replies, are the same on every run.
        order = sorted(range(len(items)), key=lambda i: (sum(len(m["content"]) for m in items[i].messages), i))
        replies: list[str] = [""] * len(items)
        if progress:  # the suite's bar starts (and its clock with it) before the first batch
            progress(f"{model}: {name}", 0, len(items))
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            for i, reply in zip(batch, backend.chat([items[i].messages for i in batch], params), strict=True):
                replies[i] = reply
            done += len(batch)
            if progress:  # per suite: the bar shows items done, items/s and the ETA of this suite
                progress(f"{model}: {name}", min(start + config.batch_size, len(order)), len(items))
        metrics, records, notes = SUITES[name].score(items, replies, cfg, ScoreContext(judge=judge, seed=config.seed))
        result = make_result(name, SUITES[name].description, metrics, records, cfg.thresholds,
                             settings={"samples": cfg.samples, "max_new_tokens": cfg.max_new_tokens,
                                       "seed": config.seed, **cfg.options}, notes=notes)
        result.duration_s = round(time.perf_counter() - suite_start, 3)
        results[name] = result
        record_finished_span(f"eval {name}", result.duration_s, {
            "gen_ai.request.model": model, "secops.eval.suite": name, "secops.eval.items": len(items),
            "secops.eval.passed": result.passed, **{f"secops.eval.{k}": v for k, v in result.metrics.items()}})
    elapsed = time.perf_counter() - started
    return ModelEval(model=model, backend=getattr(backend, "name", "?"), gate=config.name,
                     gate_version=config.version, fingerprint=config.fingerprint(),
                     created_at=datetime.now(UTC).isoformat(timespec="seconds"), duration_s=round(elapsed, 3),
                     items=total, items_per_s=round(total / elapsed, 3) if elapsed > 0 else 0.0, suites=results)


# -- targets and backends ---------------------------------------------------------------------------------

def base_eval_dir(settings: Settings, base_dir: Path) -> Path:
    """Where the base model's results live (its own folder may be a user's read-only model folder)."""
    return settings.workspace.storage / "evals" / BASE / base_dir.name


def resolve_target(settings: Settings, spec: str) -> Target:
    """``base``, ``production`` or ``<provider>/<run-id>`` -> :class:`Target`."""
    from secops_ai.inference.loader import resolve_base_model

    spec = spec.strip()
    if spec == BASE or spec.startswith(f"{BASE}/"):
        base_dir = resolve_base_model(settings)
        return Target(BASE, base_eval_dir(settings, base_dir), BASE, base_dir)
    from secops_ai.registry import Registry, RegistryError

    registry = Registry(settings)
    if spec == "production":
        name = registry.production()
        if name is None:
            raise EvalsError("no model is in production yet; evaluate `base` or a `<provider>/<run-id>`")
        spec = name
    try:
        record = registry.get(spec)
    except RegistryError as exc:
        raise EvalsError(str(exc)) from exc
    return Target(record.name, Path(record.path), "adapter" if record.kind == "adapter" else "full", Path(record.path))


def make_backend(settings: Settings, target: Target, *, endpoint: str | None = None,
                 api_key: str | None = None) -> ChatBackend:
    """The model behind ``target``: a remote OpenAI-compatible endpoint when given, else loaded locally."""
    from secops_ai.inference.backend import LocalBackend, RemoteBackend
    from secops_ai.inference.loader import pick_device, resolve_base_model

    url = endpoint or settings.llm_base_url
    if url:
        model = BASE if target.kind == BASE else target.name  # the names this project's server resolves
        return RemoteBackend(url, model, api_key=api_key or settings.llm_api_key)
    device = pick_device(settings.device)
    # reproducible: the same model gets the same replies on every run, whatever the engine batches together
    if target.kind == BASE:
        return LocalBackend.load(target.path, device=device, name=f"{BASE}:{target.path.name}", reproducible=True)
    if target.kind == "full":
        return LocalBackend.load(target.path, device=device, name=target.name, reproducible=True)
    from secops_ai.inference.loader import check_adapter_base, read_adapter

    base_dir = resolve_base_model(settings)
    info = read_adapter(target.path)
    check_adapter_base(info, base_dir)  # refuse an adapter trained on another base, as the server does
    return LocalBackend.load(base_dir, target.path, device=device, name=target.name, reproducible=True)


# Bumped when scoring changes what a cached evaluation holds (2: per-item outcomes, identifier claims).
SCORING_VERSION = 2


def _cache_path(target: Target, config: GateConfig) -> Path:
    # The system prompt the server adds changes every reply, so it is part of what was measured.
    import hashlib

    from secops_ai.config import get_settings
    from secops_ai.inference.engines import engine_tag

    policy = hashlib.sha256(get_settings().system_prompt.encode()).hexdigest()[:8]
    # The engine and its quantisation decide the answers too (issue 17): "" for transformers, "-llamacpp-q4_1"...
    return target.out_dir / "evals" / f"{config.fingerprint()}-s{SCORING_VERSION}-{policy}{engine_tag()}.json"


def measure(settings: Settings, target: Target, config: GateConfig, *, endpoint: str | None = None,
            api_key: str | None = None, reuse: bool = True, progress: ProgressFn | None = None) -> ModelEval:
    """``target``'s results under ``config``: reused from its cache when measured the same way, else run."""
    cache = _cache_path(target, config)
    remote = bool(endpoint or settings.llm_base_url)
    if reuse and not remote and cache.is_file():
        try:
            cached = ModelEval.model_validate_json(cache.read_text(encoding="utf-8"))
            if set(cached.suites) == set(config.suites):
                return _rethreshold(cached, config)
        except ValueError:
            log.warning("ignoring unreadable eval cache %s", cache)
    backend = make_backend(settings, target, endpoint=endpoint, api_key=api_key)
    judge = _judge_backend(settings, config, endpoint=endpoint, api_key=api_key)
    try:
        result = evaluate_model(backend, config, target.name, progress=progress, judge=judge)
    finally:
        del backend
        gc.collect()
    if not remote:
        atomic_write_text(cache, result.model_dump_json(indent=1))
    return result


def _rethreshold(cached: ModelEval, config: GateConfig) -> ModelEval:
    """Cached measurements judged against the (possibly edited) thresholds of ``config``."""
    suites = {name: make_result(name, r.description, r.metrics, r.items, config.suites[name].thresholds,
                                settings=r.settings, notes=r.notes).model_copy(update={"duration_s": r.duration_s})
              for name, r in cached.suites.items()}
    return cached.model_copy(update={"suites": suites, "gate": config.name, "gate_version": config.version})


def _judge_backend(settings: Settings, config: GateConfig, *, endpoint: str | None,
                   api_key: str | None) -> ChatBackend | None:
    pi = config.suites.get("prompt_injection")
    if pi is None or pi.options.get("judge", "rules") == "rules":
        return None
    spec = pi.options.get("judge_model")
    if not spec:
        raise EvalsError("prompt_injection.options.judge is 'rules+model' but options.judge_model is not set")
    return make_backend(settings, resolve_target(settings, str(spec)), endpoint=endpoint, api_key=api_key)


# -- the gate -------------------------------------------------------------------------------------------

def run_gate(settings: Settings, spec: str, gate: str | Path | None = None, *, endpoint: str | None = None,
             api_key: str | None = None, compare_base: bool = True, reuse: bool = True, record: bool = True,
             progress: ProgressFn | None = None) -> GateReport:
    """Evaluate ``spec`` (``base`` | ``production`` | ``<provider>/<run-id>``) and decide its gate.

    Production and base are measured with the same gate (or reused from their caches) for the comparison
    table and the regression check. Results are written atomically; on any error nothing is recorded.
    """
    config, gate_path = load_gate(gate)
    target = resolve_target(settings, spec)
    candidate = measure(settings, target, config, endpoint=endpoint, api_key=api_key, reuse=reuse,
                        progress=progress)

    production: ComparedModel | None = None
    if target.kind != BASE:
        from secops_ai.registry import Registry

        prod_name = Registry(settings).production()
        if prod_name and prod_name != target.name:
            prod = measure(settings, resolve_target(settings, prod_name), config, endpoint=endpoint,
                           api_key=api_key, reuse=True, progress=progress)
            production = ComparedModel.of(prod_name, prod, candidate)
    base: ComparedModel | None = None
    if target.kind == BASE:
        base = ComparedModel.of(BASE, candidate)
    elif compare_base or config.improve_over_base:
        b = measure(settings, resolve_target(settings, BASE), config, endpoint=endpoint, api_key=api_key,
                    reuse=True, progress=progress)
        base = ComparedModel.of(f"{BASE}:{b.backend.split(':')[-1]}", b, candidate)

    contamination = check_contamination(settings, config)
    verdict = decide(config, candidate.suites, production.paired if production else None,
                     production.model if production else None,
                     base=base.paired if base is not None and target.kind != BASE else None,
                     contamination=contamination.found)
    report = GateReport(target=target.name, gate_path=str(gate_path), candidate=candidate, production=production,
                        base=base, contamination=contamination, verdict=verdict)
    report.report_markdown = render_report(report)
    if record:
        write_results(settings, target, report)
    return report


def gate_prompts(config: GateConfig) -> list[str]:
    """Every prompt the gate sends (last user turn and any system turn), for the contamination check."""
    prompts = []
    for name, cfg in config.suites.items():
        for it in SUITES[name].build(cfg, config.seed):
            prompts += [m["content"] for m in it.messages if m["role"] in ("user", "system")]
    return prompts


def check_contamination(settings: Settings, config: GateConfig) -> ContaminationCheck:
    """The gate's items against every training dataset of the workspace (each finding fails the gate)."""
    from secops_ai.data.store import DatasetStore
    from secops_ai.evals.holdout import gate_contamination

    return gate_contamination(DatasetStore(settings.workspace), gate_prompts(config))


def write_results(settings: Settings, target: Target, report: GateReport) -> None:
    """evals.json + evals.md in the run folder, the model card's evals section, the registry's verdict."""
    atomic_write_text(target.out_dir / EVALS_FILE, report.model_dump_json(indent=1))
    atomic_write_text(target.out_dir / REPORT_FILE, report.report_markdown)
    if target.kind == BASE:
        return
    from secops_ai.registry import Registry
    from secops_ai.registry.model_card import update_evals_section

    card_results = {"gate": report.verdict.gate, "gate_version": report.verdict.gate_version,
                    "passed": report.verdict.passed, "suites": report.candidate.metrics()}
    update_evals_section(target.out_dir, report.report_markdown, card_results)
    Registry(settings).record_gate_result(target.name, report.verdict.passed, report.verdict.summary())


def _results_dir(settings: Settings, provider: str, run_id: str) -> Path | None:
    if ".." in (provider, run_id) or "/" in provider or "/" in run_id or not provider or not run_id:
        return None
    ws = settings.workspace
    return ws.storage / "evals" / BASE / run_id if provider == BASE else ws.models / provider / run_id


def load_results(settings: Settings, provider: str, run_id: str) -> GateReport | None:
    """The stored ``evals.json`` of ``<provider>/<run-id>`` (``base/<name>`` for the base model), or None."""
    from secops_ai.config.confine import is_inside

    folder = _results_dir(settings, provider, run_id)
    path = folder / EVALS_FILE if folder else None
    if path is None or not path.is_file() or not is_inside(path, settings.workspace.root):
        return None  # a planted link out of SECOPS_HOME is not a result
    return GateReport.model_validate_json(path.read_text(encoding="utf-8"))


def load_measured(settings: Settings, provider: str, run_id: str, fingerprint: str) -> ModelEval | None:
    """``<provider>/<run-id>``'s cached measurement under the gate settings ``fingerprint`` (a reference model
    measured for another model's gate run has no ``evals.json`` of its own), or None; the newest if several."""
    from secops_ai.config.confine import is_inside

    folder = _results_dir(settings, provider, run_id)
    if folder is None or not re.fullmatch(r"[0-9a-f]{16}", fingerprint) or not (folder / "evals").is_dir():
        return None
    found = sorted((p for p in (folder / "evals").glob(f"{fingerprint}-s{SCORING_VERSION}-*.json")
                    if p.is_file() and is_inside(p, settings.workspace.root)), key=lambda p: p.stat().st_mtime)
    return ModelEval.model_validate_json(found[-1].read_text(encoding="utf-8")) if found else None
