"""Export a pretraining run to ``models/nanogpt/<run-id>/``: a Hugging Face ``GPT2LMHeadModel`` folder.

With every experiment flag off our GPT *is* GPT-2's architecture: the weights map one-to-one, except that
GPT-2 stores its linear layers as ``Conv1D`` (weight transposed, shape ``(in, out)``) and always has
biases (ours are zeros when ``bias: false``). ``AutoTokenizer`` + ``AutoModelForCausalLM.from_pretrained``
then load the folder offline: a char-level corpus gets a ``PreTrainedTokenizerFast`` over a ``WordLevel``
char vocabulary, a BPE corpus the base tokenizer it was encoded with. The export checks that transformers
computes the same logits as our model before anything is written, and the folder appears atomically.

RoPE, SwiGLU and grouped-query attention have no GPT-2 counterpart: such runs are exported with their
native weights (``nanogpt.pt``) only, and the model card says they cannot be served by transformers.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml

from secops_ai.config import Workspace
from secops_ai.config.atomic import atomic_dir
from secops_ai.training.pretrain.config import GPTConfig
from secops_ai.training.pretrain.corpus import UNK, CharTokenizer, read_meta
from secops_ai.training.pretrain.model import GPT
from secops_ai.training.pretrain.train import load_checkpoint, runs_dir

PROVIDER = "nanogpt"
NATIVE = "nanogpt.pt"
CORPUS_META = "corpus_meta.json"
EVALS_START = "<!-- secops:evals:start -->"
EVALS_END = "<!-- secops:evals:end -->"


class ExportError(RuntimeError):
    """The run cannot be exported as asked; nothing was written."""


@dataclass
class ExportResult:
    path: Path
    hf_compatible: bool
    max_logit_diff: float | None


def to_gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under GPT-2's names and layouts (Conv1D weights are (in, out): transpose)."""
    cfg = model.config
    if not cfg.gpt2_compatible:
        raise ExportError(f"experiments {cfg.experiments} have no GPT-2 equivalent")
    sd = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    for name, tensor in sd.items():
        out[name] = tensor.t().contiguous() if name.endswith(conv1d) else tensor.clone()
    if not cfg.bias:  # GPT-2 always has biases: zeros keep the function unchanged
        C = cfg.n_embd
        zero_shapes = {"ln_1.bias": C, "ln_2.bias": C, "attn.c_attn.bias": 3 * C, "attn.c_proj.bias": C,
                       "mlp.c_fc.bias": 4 * C, "mlp.c_proj.bias": C}
        for i in range(cfg.n_layer):
            for suffix, size in zero_shapes.items():
                out[f"transformer.h.{i}.{suffix}"] = torch.zeros(size)
        out["transformer.ln_f.bias"] = torch.zeros(C)
    return out


def gpt2_config(cfg: GPTConfig, **extra: Any) -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=4 * cfg.n_embd,
        activation_function="gelu",  # nn.GELU() is the exact erf GELU, not GPT-2's tanh "gelu_new"
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        **extra,
    )


def to_hf_model(model: GPT, **config_extra: Any) -> Any:
    """A ``GPT2LMHeadModel`` computing the same function as ``model``."""
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(gpt2_config(model.config, **config_extra))
    missing, unexpected = hf.load_state_dict(to_gpt2_state_dict(model), strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]
    if missing or unexpected:
        raise ExportError(f"GPT-2 weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf.eval()


def char_hf_tokenizer(chars: list[str]) -> Any:
    """A ``PreTrainedTokenizerFast`` that splits text into single characters of the corpus vocabulary."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(chars)} | {UNK: len(chars)}
    tok = HFTokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    # <unk> doubles as padding so batched generation (the server, generate_batch) can pad prompts
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=UNK, pad_token=UNK, clean_up_tokenization_spaces=False
    )


def _max_logit_diff(model: GPT, hf: Any, vocab_size: int) -> float:
    idx = torch.randint(0, vocab_size, (2, model.config.block_size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(idx)[0]
        theirs = hf(idx).logits
    return (ours - theirs).abs().max().item()


def _source(workspace: Workspace, run: str) -> Path:
    run_dir = runs_dir(workspace) / run
    if not (run_dir / "ckpt.pt").is_file():
        raise ExportError(f"no training run {run!r} with a checkpoint under {runs_dir(workspace)}")
    return run_dir


def export_run(workspace: Workspace, run: str, *, native_only: bool = False, tolerance: float = 1e-4) -> ExportResult:
    """Write ``models/nanogpt/<run>/`` from the run's checkpoint; refuse to overwrite an existing export."""
    run_dir = _source(workspace, run)
    final = workspace.models / PROVIDER / run
    if final.exists():
        raise ExportError(f"{final} already exists; exports are immutable")
    model, ckpt = load_checkpoint(run_dir)
    cfg = model.config
    corpus_dir = workspace.nanogpt_data / ckpt["corpus"]
    meta = read_meta(corpus_dir)
    hf_ok = cfg.gpt2_compatible and not native_only
    diff = None
    with atomic_dir(final) as tmp:
        torch.save({"model": model.state_dict(), "model_config": cfg.model_dump()}, tmp / NATIVE)
        (tmp / CORPUS_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if meta["tokenizer"]["kind"] == "char":
            hf_tok = char_hf_tokenizer(meta["tokenizer"]["chars"])
            if CharTokenizer(meta["tokenizer"]["chars"]).encode("a\n b") != hf_tok.encode("a\n b"):
                raise ExportError("char tokenizer export does not encode like the corpus tokenizer")
        else:
            from transformers import AutoTokenizer

            hf_tok = AutoTokenizer.from_pretrained(str(corpus_dir / "tokenizer"))
        hf_tok.save_pretrained(tmp)
        if hf_ok:
            # GPT2Config defaults to GPT-2's id 50256, outside a char vocabulary
            extra = {"bos_token_id": hf_tok.bos_token_id, "eos_token_id": hf_tok.eos_token_id,
                     "pad_token_id": hf_tok.pad_token_id}
            hf = to_hf_model(model, **extra)
            diff = _max_logit_diff(model, hf, cfg.vocab_size)
            if diff > tolerance:
                raise ExportError(f"transformers' GPT2LMHeadModel differs from the checkpoint by {diff:.2e} "
                                  f"(tolerance {tolerance:.0e}); nothing exported")
            hf.save_pretrained(tmp)
        shutil.copy2(run_dir / "config.yaml", tmp / "config.yaml")
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        (tmp / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        _plot(rows, tmp / "loss.png", run)
        info = _run_info(run, ckpt, cfg, meta, hf_ok, diff, rows)
        (tmp / "run.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "model_card.md").write_text(_model_card(info), encoding="utf-8")
        # left writable, like every registered run: the eval gates fill in the card's evals section
    return ExportResult(path=final, hf_compatible=hf_ok, max_logit_diff=diff)


def _run_info(run: str, ckpt: dict[str, Any], cfg: GPTConfig, meta: dict[str, Any], hf_ok: bool,
              diff: float | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    evals = [r for r in rows if "val_loss" in r]
    model = GPT(cfg)
    return {
        "name": f"{PROVIDER}/{run}",
        "provider": PROVIDER,
        "run_id": run,
        "kind": "full",
        "stage": "pretrain",
        "base_model": None,
        "architecture": "GPT2LMHeadModel" if hf_ok else "secops-nanogpt",
        "experiments": cfg.experiments,
        "hf_compatible": hf_ok,
        "max_logit_diff_vs_transformers": diff,
        "dataset": f"nanogpt/{meta['name']}-v{meta['version']}",
        "tokenizer": meta["tokenizer"]["kind"],
        "pseudonymised": meta["obfuscation"]["pseudonymised"],
        "model_config": cfg.model_dump(),
        "params": model.num_params(),
        "metrics": {
            "iters": ckpt["iter_num"],
            "tokens_seen": ckpt["tokens_seen"],
            "val_loss": evals[-1]["val_loss"] if evals else None,
            "train_loss": evals[-1]["train_loss"] if evals else None,
            "best_val_loss": ckpt["best_val_loss"],
        },
        "world_size": ckpt["world_size"],
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _model_card(info: dict[str, Any]) -> str:
    metrics = {k: v for k, v in info["metrics"].items() if v is not None}
    front = {
        "library_name": "transformers" if info["hf_compatible"] else "secops-ai",
        "pipeline_tag": "text-generation",
        "tags": ["secops-ai", "pretrain", "nanogpt", "security-logs", *(["gpt2"] if info["hf_compatible"] else [])],
        "datasets": [info["dataset"]],
        "secops": {"run": info["name"], "stage_trained": "pretrain", "architecture": info["architecture"],
                   "experiments": info["experiments"], "model_config": info["model_config"],
                   "metrics": metrics, "evals": None, "overrides": []},
    }
    if info["hf_compatible"]:
        use = f"""```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("models/{info['name']}")
model = AutoModelForCausalLM.from_pretrained("models/{info['name']}")
```
Or `secops-ai pretrain sample {info['run_id']}` and `secops-ai pretrain score {info['run_id']} FILE`."""
        arch = ("GPT-2 architecture (`GPT2LMHeadModel`); transformers reproduces the training checkpoint's "
                f"logits to within {info['max_logit_diff_vs_transformers']:.1e}.")
    else:
        use = (f"`secops-ai pretrain sample {info['run_id']}` and `secops-ai pretrain score {info['run_id']} FILE` "
               "load the native weights (`nanogpt.pt`).")
        arch = (f"**Not GPT-2 compatible** (experiments: {', '.join(info['experiments']) or 'native export asked'}): "
                "only the native checkpoint `nanogpt.pt` is included, so transformers, the server and the evals "
                "cannot load this folder.")
    rows = "\n".join(f"| {k} | {v} |" for k, v in {**info["model_config"], **metrics}.items())
    return f"""---
{yaml.safe_dump(front, sort_keys=False).rstrip()}
---

# {info['name']}

A {info['params']:,}-parameter GPT pretrained from scratch with SecOps AI on `{info['dataset']}`
({info['tokenizer']} tokens{', pseudonymised logs' if info['pseudonymised'] else ''}).

{arch}

| setting | value |
| --- | --- |
{rows}

![loss](loss.png)

## Evaluation

{EVALS_START}
Not evaluated yet.
{EVALS_END}

## Use

{use}

## Limitations

A small language model of log text, not an assistant: it continues text and scores how surprising a log line
is; it has no chat template and no instruction tuning.
"""


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train = [(r["iter"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["iter"], r["val_loss"]) for r in rows if "val_loss" in r]
    if train:
        ax.plot(*zip(*train, strict=True), label="train (batch)")
    if val:
        ax.plot(*zip(*val, strict=True), marker="o", label="val")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def load_export(path: Path, device: str = "cpu") -> tuple[GPT, dict[str, Any]]:
    """The native model of an export folder and its corpus meta (works for every experiment flag)."""
    if not (path / NATIVE).is_file():
        raise ExportError(f"{path} is not a pretraining export (no {NATIVE})")
    blob = torch.load(path / NATIVE, map_location=device, weights_only=True)
    model = GPT(GPTConfig.model_validate(blob["model_config"]))
    model.load_state_dict(blob["model"])
    meta = json.loads((path / CORPUS_META).read_text(encoding="utf-8"))
    return model.to(device).eval(), meta
