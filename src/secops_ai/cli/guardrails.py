"""CLI group `secops-ai guardrails`: train the harmful-intent classifier, list it, check a policy or a text."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from secops_ai.cli.failure import EXIT_USAGE, fail, warn

app = typer.Typer(no_args_is_help=True, help="Serving-time guardrails: intent classifier, policies, checks.")
console = Console()


def _policy_prompts() -> tuple[list[str], list[str]]:
    from secops_ai.evals.suites.policy import policy_prompts

    harmful, benign, missing = policy_prompts()
    if missing:
        warn(missing)
    return harmful, benign


@app.command("train", help="Build the intent dataset (a versioned dataset), check it against every evaluation "
                           "prompt, train the classifier into models/guardrails/<run-id>/ and measure it on the "
                           "gate's held-out policy items.")
def train_cmd(
    seed: int = typer.Option(0, help="Seed of the paraphrase generator (a new seed is a new dataset version)."),
    run_id: str = typer.Option(None, "--run-id", help="Folder name under models/guardrails/ (default: dated)."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate",
                                  help="Measure on the gate's harmful items and benign FRR prompts afterwards."),
) -> None:
    from secops_ai.config import get_settings
    from secops_ai.data.store import DatasetStore
    from secops_ai.evals.holdout import find_contamination
    from secops_ai.guardrails import intent
    from secops_ai.guardrails.intent_data import store_dataset

    settings = get_settings()
    ws = settings.workspace.ensure()
    ds = store_dataset(DatasetStore(ws), seed)
    records = list(ds.iter_records())
    harmful, benign = _policy_prompts()
    dirty = find_contamination([(ds.ref, records)], harmful + benign)
    if dirty:
        fail(f"{ds.ref} contains evaluation material, refusing to train: "
              + "; ".join(f"line {c.line}: {c.reason}" for c in dirty[:5]))
    console.print(f"dataset {ds.ref}: {len(records)} records, no evaluation prompt in it", highlight=False)
    with console.status("embedding and fitting…"):
        try:
            path = intent.train(records, ws.models, dataset_ref=ds.ref,
                                embedding_model=settings.embedding_model, run_id=run_id)
        except (ValueError, FileExistsError) as exc:
            fail(str(exc))
    metrics = json.loads((path / intent.METRICS_FILE).read_text(encoding="utf-8"))
    cv = metrics["cross_validation"][str(metrics["chosen_c"])]
    console.print(f"classifier {path} (C={metrics['chosen_c']}; grouped CV accuracy {cv['accuracy']}, "
                  f"harmful recall {cv['harmful_recall']}, benign FP {cv['benign_false_positive_rate']})",
                  highlight=False)
    if evaluate:
        _evaluate(path, harmful, benign, settings.embedding_model)


def _evaluate(path, harmful: list[str], benign: list[str], embedding_model: str) -> None:
    from secops_ai.guardrails import intent

    with console.status("measuring on held-out policy items…"):
        clf = intent.IntentClassifier.load(path, embedding_model=embedding_model)
        figures = intent.evaluate(clf, harmful, benign)
    intent.record_held_out(path, figures)
    console.print(f"held out: refused {figures['harmful_refused']:.0%} of {figures['harmful_items']} harmful "
                  f"items (cautioned {figures['harmful_cautioned']:.0%}), {figures['benign_refused']:.1%} of "
                  f"{figures['benign_items']} benign prompts (cautioned {figures['benign_cautioned']:.1%}); "
                  f"recorded in {path / intent.CARD_FILE}", highlight=False)


@app.command("evaluate", help="Measure a trained classifier on the gate's held-out policy items (harmful requests, "
                              "benign FRR prompts) and record the figures in its metrics.json and model card.")
def evaluate_cmd(classifier: str = typer.Argument("latest", help="'latest', a run-id or a folder.")) -> None:
    from secops_ai.config import get_settings
    from secops_ai.guardrails.intent import ClassifierError, resolve_classifier

    settings = get_settings()
    try:
        path = resolve_classifier(settings.workspace.models, classifier)
    except ClassifierError as exc:
        fail(str(exc))
    harmful, benign = _policy_prompts()
    _evaluate(path, harmful, benign, settings.embedding_model)


@app.command("list", help="Trained intent classifiers under models/guardrails/ (newest last).")
def list_cmd() -> None:
    from secops_ai.config import get_settings
    from secops_ai.guardrails.intent import CLASSIFIER_FILE, METRICS_FILE, ClassifierArtefact, list_classifiers

    table = Table("run-id", "dataset", "created", "held-out refused", "benign refused")
    for path in list_classifiers(get_settings().workspace.models):
        a = ClassifierArtefact.model_validate_json((path / CLASSIFIER_FILE).read_text(encoding="utf-8"))
        held = json.loads((path / METRICS_FILE).read_text(encoding="utf-8")).get("held_out") or {}
        table.add_row(a.run_id, a.dataset, a.created_at, str(held.get("harmful_refused", "-")),
                      str(held.get("benign_refused", "-")))
    console.print(table)


@app.command("check", help="Screen a request (or, with --output, an answer) the way the server would; prints "
                           "the guardrails report as JSON. Exit code 0 whatever the decision.")
def check_cmd(
    text: str = typer.Argument(..., help="The text, or '-' to read it from stdin."),
    policy: str = typer.Option(None, "--policy", envvar="SECOPS_GUARDRAILS_POLICY",
                               help="Policy file or name under configs/guardrails/."),
    model: str = typer.Option("production", "--model", help="Model id or alias the policy is looked up for."),
    output: bool = typer.Option(False, "--output", help="Screen TEXT as a model answer instead of a request."),
) -> None:
    from secops_ai.config import get_settings
    from secops_ai.guardrails import Guardrails, GuardrailsUnavailable, PolicyError

    if not policy:
        fail("no policy: pass --policy or set SECOPS_GUARDRAILS_POLICY", EXIT_USAGE)
    body = sys.stdin.read() if text == "-" else text
    settings = get_settings()
    try:
        g = Guardrails.from_env(policy, settings.workspace.models, embedding_model=settings.embedding_model)
    except PolicyError as exc:
        fail(str(exc))
    g.load()
    guard = g.for_model([model])
    try:
        if output:
            report = guard.report(None, [guard.screen_output(body)])
        else:
            verdict = guard.screen_input([{"role": "user", "content": body}])
            report = guard.report(verdict)
            if verdict.refusal:
                report["refusal"] = verdict.refusal
    except GuardrailsUnavailable as exc:
        fail(str(exc))
    console.print_json(json.dumps(report))


@app.command("validate", help="Check a policy file; exit 1 with file:line when it is invalid.")
def validate_cmd(policy: str = typer.Argument(..., help="Policy file or name under configs/guardrails/.")) -> None:
    from secops_ai.guardrails.policy import PolicyError, load_policy, profile_summary

    try:
        p = load_policy(policy)
    except PolicyError as exc:
        fail(str(exc))
    console.print(f"{p.path} v{p.version}: classifier {p.classifier}", highlight=False)
    for name, prof in p.profiles.items():
        console.print(f"  {name}: {profile_summary(prof) or 'off'}", highlight=False)
    for model, prof_name in p.models.items():
        console.print(f"  model {model} -> {prof_name}", highlight=False)


@app.command("gate", help="Run the evaluation gate on a model twice, as is and with its guardrails on; record both "
                          "verdicts in the registry (the model's own verdict is recorded last, so it still decides "
                          "`models promote`). Exit code 0 when the guarded verdict passes, 1 otherwise.")
def gate_cmd(
    target: str = typer.Argument(..., help="'<provider>/<run-id>', 'production' or 'base'."),
    policy: str = typer.Option("strict", "--policy", help="Guardrails policy (file or name in configs/guardrails/)."),
    gate: str = typer.Option(None, "--gate", "-g", help="Gate config (default: default)."),
    record: bool = typer.Option(True, "--record/--no-record", help="Record both verdicts and write the results."),
) -> None:
    from secops_ai.config import get_settings
    from secops_ai.config.atomic import atomic_write_text
    from secops_ai.evals.gate import GateConfigError, decide, load_gate
    from secops_ai.evals.runner import BASE, EvalsError, evaluate_model, make_backend, resolve_target, run_gate
    from secops_ai.guardrails import GuardedBackend, Guardrails, PolicyError

    settings = get_settings()
    try:
        config, _ = load_gate(gate)
        t = resolve_target(settings, target)
        g = Guardrails.from_env(policy, settings.workspace.models, embedding_model=settings.embedding_model)
    except (EvalsError, GateConfigError, PolicyError) as exc:
        fail(str(exc))
    g.load()
    ok, detail = g.status()
    if not ok:
        fail(detail)
    names = [t.name, "base" if t.kind == BASE else None]
    if t.kind != BASE:
        from secops_ai.registry import Registry

        names.append("production" if Registry(settings).production() == t.name else None)
    guard = g.for_model(names)
    with console.status(f"{t.name} with guardrails ({guard.profile.name})…"):
        backend = GuardedBackend(make_backend(settings, t), guard)
        guarded = evaluate_model(backend, config, f"{t.name}+guardrails:{guard.profile.name}")
    verdict = decide(config, guarded.suites)
    summary = {**verdict.summary(), "message": f"with guardrails {g.policy_label} ({guard.profile.name}): "
               f"{verdict.message}", "guardrails": {"policy": g.policy_label, "profile": guard.profile.name,
                                                    "classifier": g.classifier_id}}
    if record:
        atomic_write_text(t.out_dir / "evals-guardrails.json", json.dumps(
            {"target": t.name, "summary": summary, "candidate": guarded.model_dump(mode="json"),
             "decisions": backend.verdicts}, indent=1))
        if t.kind != BASE:
            from secops_ai.registry import Registry

            Registry(settings).record_gate_result(t.name, verdict.passed, summary)
    with console.status(f"{t.name} as is…"):
        raw = run_gate(settings, target, gate, record=record)  # recorded last: the model's own verdict decides
    table = Table("suite", "metric", "as is", "with guardrails")
    for suite, result in guarded.suites.items():
        for metric, value in result.metrics.items():
            before = raw.candidate.suites[suite].metrics.get(metric)
            table.add_row(suite, metric, "-" if before is None else f"{before:.3f}", f"{value:.3f}")
    console.print(table)
    console.print(f"as is: {raw.verdict.message}", highlight=False)
    console.print(summary["message"], highlight=False)
    raise typer.Exit(0 if verdict.passed else 1)
