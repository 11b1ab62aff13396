"""CLI group ``secops-ai data``: import, generate, list, show, verify, export, build-starter, obfuscate.

Commands parse arguments and call ``secops_ai.data``; errors are printed with what to fix (exit codes:
:mod:`secops_ai.cli.failure`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from secops_ai.cli.failure import EXIT_USAGE, fail
from secops_ai.cli.tables import fold_table

app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)

KEY_ENV = "SECOPS_OBFUSCATION_KEY"


def _store():
    from secops_ai.data.store import default_store

    return default_store()


def _run(fn, *args: Any, **kwargs: Any) -> Any:
    from secops_ai.data.store import DatasetError

    try:
        return fn(*args, **kwargs)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))


def _print_manifest(m: Any) -> None:
    console.print(f"[green]created[/green] {m.ref}  kind={m.kind.value}  records={m.record_count}  "
                  f"sha256={m.files['records.jsonl'].sha256[:16]}…", highlight=False)


@app.command("import")
def import_cmd(
    format: str = typer.Argument(..., help="auto | sarif | bandit-json | semgrep-json | cwe | attack | logs | jsonl "
                                           "(auto: detected from the content; a mismatch is an error)"),
    path: Path | None = typer.Argument(None, help="Source file (not for cwe/attack, which read bundled catalogs)."),
    provider: str = typer.Option("imports", help="Provider folder under data/."),
    name: str | None = typer.Option(None, help="Dataset name (default: from the file name or catalog)."),
    version: int | None = typer.Option(None, help="Version to create (default: next free). Existing = error."),
    kind: str | None = typer.Option(None, help="For jsonl: chat | prompt_completion | preference | text."),
    obfuscate: bool | None = typer.Option(
        None, "--obfuscate/--no-obfuscate",
        help="Pseudonymise IPs, hosts, users, emails, secrets in every stored field. Default: on for logs; for "
             "findings and jsonl when a key is set."),
    key: str | None = typer.Option(None, "--key", envvar=KEY_ENV, show_envvar=True,
                                   help="Obfuscation key (never stored; only its fingerprint is recorded)."),
    license: str | None = typer.Option(None, help="License of the source data, recorded in the manifest."),
    description: str | None = typer.Option(None, help="Free text for the manifest."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Store a source with no records (a clean scan)."),
) -> None:
    """Import scanner output, a security catalog, logs or JSONL records as a new dataset version."""
    from secops_ai.data.importers import IMPORT_FORMATS, import_dataset
    from secops_ai.data.importers.detect import detect_format
    from secops_ai.data.obfuscation import Pseudonymizer

    if format not in IMPORT_FORMATS:
        fail(f"unknown format {format!r}; choose one of {', '.join(IMPORT_FORMATS)}", EXIT_USAGE)
    if format == "auto" and path is not None and path.is_file():
        format = detect_format(path) or format  # import_dataset names the problem when undetectable
    if obfuscate is None:
        obfuscate = format == "logs" or (format in ("sarif", "bandit-json", "semgrep-json", "jsonl") and bool(key))
    if obfuscate and format in ("cwe", "attack"):
        fail(f"--obfuscate does not apply to {format}", EXIT_USAGE)
    if obfuscate and not key:
        fail(f"obfuscation needs a key: pass --key or set {KEY_ENV} (or pass --no-obfuscate to keep identifiers)")
    pseudo = Pseudonymizer(key) if obfuscate and key else None
    with console.status(f"importing {format}…"):
        m = _run(import_dataset, _store(), format, path, provider=provider, name=name, kind=kind,
                 pseudonymizer=pseudo, version=version, license=license, description=description,
                 allow_empty=allow_empty)
    _print_manifest(m)
    if pseudo is not None:
        console.print(f"identifiers pseudonymised with key id {pseudo.key_id}", highlight=False)


def _load_config(path: Path | None, sets: list[str]) -> dict[str, Any]:
    """Generator options from a YAML file and ``--set key=value`` overrides, with the grammar and error
    wording every config shares (:mod:`secops_ai.config.overrides`); types are checked here, so a bad value
    is named with its key instead of surfacing as a raw validation dump."""
    import yaml
    from pydantic import ValidationError

    from secops_ai.config.overrides import ConfigError, merge, parse_overrides
    from secops_ai.config.validation import describe_validation_error
    from secops_ai.data.generators import GeneratorConfig

    def check(cfg: dict[str, Any], source: str) -> None:
        try:
            GeneratorConfig.model_validate(cfg)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, source)) from None

    cfg: dict[str, Any] = {}
    try:  # a bad file is bad input (exit 1)
        if path is not None:
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: {exc}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: expected a mapping of generator options")
            check(loaded, str(path))
            cfg = loaded
    except ConfigError as exc:
        fail(str(exc))
    try:  # a bad --set is a wrong command line (exit 2)
        cfg = merge(cfg, parse_overrides(sets, allowed=GeneratorConfig.model_fields, what="generator option"))
        check(cfg, "--set")
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    return cfg


@app.command("generate")
def generate_cmd(
    generator: str = typer.Argument(..., help="finding-triage | cwe-qa | attack-lookup | refusals | security-sft | "
                                              "security-dpo"),
    source: list[str] = typer.Option([], "--source", "-s", help="Source dataset ref (repeatable), e.g. "
                                                                "starter/cwe-catalog@1."),
    provider: str = typer.Option("generated", help="Provider folder under data/."),
    name: str | None = typer.Option(None, help="Dataset name (default: the generator's name)."),
    seed: int = typer.Option(0, help="Seed: same sources + seed + config ⇒ byte-identical records."),
    config: Path | None = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                       help="YAML file of generator options (see configs/data/)."),
    set_: list[str] = typer.Option([], "--set", help="Override one option, e.g. --set cwe_sample=20."),
    version: int | None = typer.Option(None, help="Version to create (default: next free)."),
    license: str | None = typer.Option(None, help="License (default: the sources' licenses)."),
) -> None:
    """Generate a training dataset (chat or preference) from stored source datasets."""
    from secops_ai.data.generators import generate

    cfg = _load_config(config, set_)
    with console.status(f"generating {generator}…"):
        m = _run(generate, _store(), generator, source, provider=provider, name=name, seed=seed, config=cfg,
                 version=version, license=license)
    _print_manifest(m)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print manifests as JSON.")) -> None:
    """List every stored dataset version."""
    manifests = _store().list()
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json", by_alias=True) | {"ref": m.ref} for m in manifests],
                              indent=2, ensure_ascii=False))
        return
    if not manifests:
        console.print("no datasets yet; try [bold]secops-ai data build-starter[/bold]")
        return
    table = Table("dataset", "kind", "records", "generator", "created")
    for m in manifests:
        table.add_row(m.ref, m.kind.value, str(m.record_count), m.generator.name if m.generator else "-", m.created_at)
    console.print(fold_table(table))


@app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="provider/name@version (or provider/name for the latest)."),
    records: int = typer.Option(3, "--records", "-n", min=0, help="How many records to print."),
    as_json: bool = typer.Option(False, "--json", help="Print manifest and records as JSON."),
) -> None:
    """Show a dataset's manifest and its first records."""
    ds = _run(_store().get, ref)
    head = _run(ds.verified_head, records)
    payload = {"manifest": ds.manifest.model_dump(mode="json", by_alias=True), "records": head}
    if as_json:
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    console.print_json(json.dumps(payload["manifest"], ensure_ascii=False))
    for rec in head:
        console.rule()
        console.print_json(json.dumps(rec, ensure_ascii=False))


@app.command("verify")
def verify_cmd(
    ref: str | None = typer.Argument(None, help="Dataset ref; omit with --all."),
    all_: bool = typer.Option(False, "--all", help="Verify every stored version."),
) -> None:
    """Recompute hashes and record counts; exit 1 naming each file that changed."""
    store = _store()
    if not ref and not all_:
        fail("give a dataset ref or --all", EXIT_USAGE)
    refs = [m.ref for m in store.list()] if all_ else [ref]
    bad = 0
    for r in refs:
        problems = _run(store.verify, r)
        if problems:
            bad += 1
            for p in problems:
                err.print(f"[red]{r}[/red]: {p}", highlight=False)
        else:
            console.print(f"[green]ok[/green] {r}", highlight=False)
    if bad:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    ref: str = typer.Argument(..., help="Dataset ref to export."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (LLaMA-Factory dataset_dir)."),
    format: str = typer.Option("llamafactory", help="llamafactory (dataset_info.json + JSONL)."),
    style: str = typer.Option("auto", help="auto | sharegpt | alpaca (chat datasets)."),
    entry: str | None = typer.Option(None, help="Entry name in dataset_info.json (default provider_name_vN)."),
) -> None:
    """Export a dataset for LLaMA-Factory (alpaca, sharegpt, ranking preference)."""
    from secops_ai.data.export import export_llamafactory

    if format != "llamafactory":
        fail(f"unknown export format {format!r}; supported: llamafactory", EXIT_USAGE)
    if style not in ("auto", "sharegpt", "alpaca"):
        fail(f"unknown style {style!r}; choose auto, sharegpt or alpaca", EXIT_USAGE)
    path = _run(export_llamafactory, _store(), ref, out, style=style, entry=entry)
    console.print(f"[green]exported[/green] {ref} → {path} (+ {out / 'dataset_info.json'})", highlight=False)


@app.command("build-starter")
def build_starter_cmd(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Build the starter datasets (CWE, ATT&CK, sample findings, security-sft, security-dpo); skips existing ones."""
    from secops_ai.data.generators.starter import build_starter

    with console.status("building starter datasets…", ) as status:
        results = _run(build_starter, _store(), progress=lambda msg: None if as_json else status.update(msg))
    if as_json:
        typer.echo(json.dumps([{"ref": r.ref, "records": r.records, "created": r.created} for r in results],
                              indent=2))
        return
    table = Table("dataset", "records", "status")
    for r in results:
        table.add_row(r.ref, str(r.records), "created" if r.created else "exists (skipped)")
    console.print(fold_table(table))


@app.command("from-trajectories")
def from_trajectories_cmd(
    name: str = typer.Option("agent-runs", "--name", help="Datasets trajectories/<name>-sft and <name>-pref."),
    run: list[str] = typer.Option(None, "--run", help="Only these run ids (repeatable); default: every run."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Agent runs -> SFT chats (runs with a verified patch) and step preference pairs (runs of the same task)."""
    from secops_ai.alignment.trajectories import build_datasets
    from secops_ai.config import get_settings

    out = _run(build_datasets, _store(), get_settings().workspace.agent_runs, name, run_ids=list(run or []) or None)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    console.print(f"{out['runs']} runs read, {out['successful']} with a verified patch: "
                  f"SFT {out['sft'] or '(none)'} ({out['sft_records']}), pairs {out['pref'] or '(none)'} "
                  f"({out['pairs']})", highlight=False)


@app.command("obfuscate")
def obfuscate_cmd(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Text/log file to pseudonymise."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here (default: stdout). Input is never changed."),
    key: str | None = typer.Option(None, "--key", envvar=KEY_ENV, show_envvar=True, help="Obfuscation key."),
) -> None:
    """Pseudonymise identifiers in a text file line by line (preview what an import would store)."""
    from secops_ai.config.atomic import atomic_write_text
    from secops_ai.data.obfuscation import Pseudonymizer

    if not key:
        fail(f"pass --key or set {KEY_ENV}")
    if out is not None and out.resolve() == path.resolve():
        fail("--out must differ from the input; raw inputs are never modified")
    pseudo = Pseudonymizer(key)
    with path.open(encoding="utf-8", errors="replace") as fh:
        lines = (pseudo.text(line.rstrip("\n")) + "\n" for line in fh)
        if out is None:
            sys.stdout.writelines(lines)
        else:
            atomic_write_text(out, "".join(lines))
