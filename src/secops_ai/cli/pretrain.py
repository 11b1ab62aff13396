"""CLI group ``secops-ai pretrain``: corpus → train → sample / export / score (nanoGPT-style pretraining)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from secops_ai.cli.failure import fail

if TYPE_CHECKING:
    from secops_ai.config import Workspace
    from secops_ai.training.pretrain.export import ExportResult

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")
console = Console(soft_wrap=True)  # paths and log lines stay on one line (greppable)

KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="SECOPS_OBFUSCATION_KEY", show_default=False,
                 help="Pseudonymisation key (the one the corpus was built with). Env: SECOPS_OBFUSCATION_KEY."),
]


def _workspace() -> Workspace:
    from secops_ai.config import get_settings

    return get_settings().workspace.ensure()


@app.command("corpus")
def corpus(
    name: Annotated[str, typer.Argument(help="Corpus name; written to data/nanogpt/<name>-v<N>/.")],
    synthetic_lines: Annotated[int, typer.Option(help="Benign synthetic log lines (auth, web, firewall, IDS).")] = 0,
    kinds: Annotated[str, typer.Option(help="Comma-separated synthetic log kinds.")] = "auth,web,firewall,ids",
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator.")] = 0,
    log: Annotated[list[Path] | None, typer.Option("--log", exists=True, dir_okay=False,
                                                   help="Imported log file, one event a line (repeatable).")] = None,
    text: Annotated[list[Path] | None, typer.Option("--text", exists=True, dir_okay=False,
                                                    help="Plain text file taken as is (repeatable).")] = None,
    tokenizer: Annotated[str, typer.Option(help="'char' (one id per character) or 'bpe' (the base model's).")] = "char",
    obfuscate: Annotated[bool, typer.Option(help="Pseudonymise every line (--no-obfuscate for public text).")] = True,
    key: KeyOption = None,
    version: Annotated[int | None, typer.Option(help="Version to write (default: next free).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of the text held out for validation (the tail).")] = 0.1,
) -> None:
    """Build an immutable tokenised corpus from synthetic and imported security logs."""
    from secops_ai.training.pretrain.corpus import CorpusError, CorpusSpec, build_corpus

    ws = _workspace()
    try:
        spec = CorpusSpec(name=name, tokenizer=tokenizer, synthetic_lines=synthetic_lines,
                          synthetic_kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), seed=seed,
                          logs=log or [], texts=text or [], obfuscate=obfuscate, val_fraction=val_fraction)
        bpe_dir = None
        if tokenizer == "bpe":
            from secops_ai.config import get_settings
            from secops_ai.inference.loader import resolve_base_model

            bpe_dir = resolve_base_model(get_settings())
        path = build_corpus(ws.nanogpt_data, spec, key=key, version=version, bpe_tokenizer_dir=bpe_dir)
    except (CorpusError, ValueError) as exc:
        fail(str(exc))
    meta = json.loads((path / "meta.json").read_text())
    console.print(f"[green]corpus[/green] {path}")
    console.print(f"  {meta['lines']} lines, {meta['tokenizer']['kind']} vocab {meta['vocab_size']}, "
                  f"{meta['train_tokens']} train / {meta['val_tokens']} val tokens, "
                  f"pseudonymised: {meta['obfuscation']['pseudonymised']}")


@app.command("train")
def train_cmd(
    overrides: Annotated[list[str] | None, typer.Argument(
        help="key=value overrides, e.g. max_iters=500 model.rope=true corpus=security-logs-v2.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Run config YAML (configs/pretrain/).")] = None,
    resume: Annotated[str | None, typer.Option(
        help="Run id to resume from its checkpoint (its config.yaml is the default config).")] = None,
    export: Annotated[bool, typer.Option(help="Export to models/nanogpt/<run-id>/ when training ends.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a GPT from scratch on a corpus (also under [bold]torchrun[/bold] for DDP)."""
    from secops_ai.training.pretrain.config import ConfigError
    from secops_ai.training.pretrain.corpus import CorpusError
    from secops_ai.training.pretrain.export import ExportError, export_run
    from secops_ai.training.pretrain.train import run_config, train

    ws = _workspace()
    try:
        cfg = run_config(ws, config, overrides, resume=resume)
        result = train(cfg, ws, resume=resume is not None, progress=progress,
                       on_log=None if progress else lambda r: console.print(json.dumps(r), highlight=False))
    except (ConfigError, CorpusError, FileExistsError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if int(os.environ.get("RANK", 0)) != 0:
        return
    console.print(f"[green]trained[/green] {result.run_id}: {result.iters} iterations, "
                  f"val loss {result.val_loss:.4f}, {result.ms_per_iter:.1f} ms/iter, "
                  f"{result.tokens_per_s:.0f} tokens/s")
    console.print(f"  checkpoint {result.run_dir / 'ckpt.pt'}")
    if export:
        try:
            exported = export_run(ws, result.run_id)
        except (ExportError, FileExistsError) as exc:
            fail(f"export: {exc}")
        _report_export(exported)


def _report_export(exported: ExportResult) -> None:
    if exported.hf_compatible:
        console.print(f"[green]exported[/green] {exported.path} (GPT2LMHeadModel, logits match to "
                      f"{exported.max_logit_diff:.1e})")
    else:
        console.print(f"[yellow]exported native weights only[/yellow] {exported.path}: the experiment blocks "
                      "are not GPT-2 compatible, so transformers and the server cannot load this model")


@app.command("export")
def export_cmd(
    run: Annotated[str, typer.Argument(help="Training run id (storage/pretrain/<run-id>/).")],
    native_only: Annotated[bool, typer.Option(help="Write only the native checkpoint, not the HF folder.")] = False,
) -> None:
    """Export a run to models/nanogpt/<run-id>/ as a Hugging Face GPT2LMHeadModel folder with a model card."""
    from secops_ai.training.pretrain.export import ExportError, export_run

    try:
        exported = export_run(_workspace(), run, native_only=native_only)
    except (ExportError, FileExistsError, FileNotFoundError) as exc:
        fail(str(exc))
    _report_export(exported)


@app.command("sample")
def sample(
    model: Annotated[str, typer.Argument(help="Run id (export or training run) or a folder.")],
    prompt: Annotated[str, typer.Option(help="Text to continue (default: a newline, i.e. a fresh line).")] = "\n",
    num_samples: Annotated[int, typer.Option(min=1, help="How many samples.")] = 3,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens generated per sample.")] = 200,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 is greedy.")] = 0.8,
    top_k: Annotated[int | None, typer.Option(min=1, help="Sample only from the k likeliest tokens.")] = 200,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 1337,
) -> None:
    """Print samples from a pretrained model."""
    import torch

    from secops_ai.training.pretrain.loading import load_model

    try:
        loaded = load_model(_workspace(), model)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    ids = loaded.tokenizer.encode(prompt) or loaded.tokenizer.encode("\n")
    gen = torch.Generator().manual_seed(seed)
    for i in range(num_samples):
        out = loaded.model.generate(torch.tensor([ids]), max_new_tokens, temperature=temperature, top_k=top_k,
                                    generator=gen)
        console.rule(f"sample {i + 1}")
        console.print(loaded.tokenizer.decode(out[0].tolist()), markup=False, highlight=False)


@app.command("score")
def score(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Log file, one event a line.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Run id (export or training run) or a folder.")],
    top: Annotated[int, typer.Option(min=1, help="Lines shown.")] = 20,
    key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every line's score as JSON lines.")] = False,
) -> None:
    """Rank the lines of FILE by per-token loss under a log model, most anomalous first."""
    from secops_ai.training.pretrain.anomaly import corpus_pseudonymizer, score_lines
    from secops_ai.training.pretrain.loading import load_model

    try:
        loaded = load_model(_workspace(), model)
        obfuscate = corpus_pseudonymizer(loaded.corpus_meta, key)  # KeyMismatchError is a ValueError
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        fail(f"{file}: not valid UTF-8 (byte {exc.start})")
    ranking = score_lines(loaded.model, loaded.tokenizer, lines, obfuscate=obfuscate)
    if as_json:
        for s in ranking:
            console.print(json.dumps({"line": s.line_no, "score": round(s.score, 4), "max_nll": round(s.max_nll, 4),
                                      "text": s.text}), highlight=False, markup=False, soft_wrap=True)
        return
    table = Table(title=f"{file.name}: {len(ranking)} lines, most anomalous first (nats/token)")
    table.add_column("rank", justify="right")
    table.add_column("line", justify="right")
    table.add_column("score", justify="right")
    table.add_column("text", overflow="fold")
    for rank, s in enumerate(ranking[:top], start=1):
        table.add_row(str(rank), str(s.line_no), f"{s.score:.3f}", s.text)
    console.print(table)
