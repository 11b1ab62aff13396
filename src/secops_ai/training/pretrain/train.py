"""The pretraining loop, nanoGPT-style: read it top to bottom.

``train(cfg, workspace)`` trains a :class:`GPT` on a corpus from ``data/nanogpt/`` and keeps its state in a
run folder ``storage/pretrain/<run-id>/`` (``ckpt.pt``, ``config.yaml``, ``metrics.jsonl``). The checkpoint
holds everything the next iteration depends on (weights, AdamW moments, iteration, every RNG and each
process' batch sampler), so ``resume=True`` continues exactly as if the run had never stopped. Under
``torchrun`` it trains with DDP (NCCL on GPUs, gloo on CPU); only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from secops_ai.config import Workspace
from secops_ai.config.atomic import atomic_write_bytes, atomic_write_text
from secops_ai.training.pretrain.config import PretrainConfig, dump_config, load_config
from secops_ai.training.pretrain.corpus import CorpusError, load_split, read_meta, resolve_corpus
from secops_ai.training.pretrain.model import GPT

CKPT = "ckpt.pt"


def runs_dir(workspace: Workspace) -> Path:
    """Where in-progress and finished training runs keep their checkpoints (exports go to models/nanogpt/)."""
    return workspace.storage / "pretrain"


def run_config(workspace: Workspace, path: Path | None, overrides: list[str] | None = None, *,
               resume: str | None = None) -> PretrainConfig:
    """The config a run trains with: ``path`` plus ``overrides``.

    Resuming run ``resume`` defaults ``path`` to that run's own ``config.yaml`` and pins ``run_id`` to it, so
    only training settings given as overrides change.
    """
    overrides = list(overrides or [])
    if resume:
        path = path if path is not None else runs_dir(workspace) / resume / "config.yaml"
        overrides.append(f"run_id={resume}")
    return load_config(path, overrides)


class Batches:
    """Random (x, y) windows from a token array, drawn from its own generator so its state can be saved."""

    def __init__(self, data: np.ndarray, block_size: int, batch_size: int, seed: int, device: str) -> None:
        if len(data) <= block_size:
            raise CorpusError(f"split has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}")
        self.data, self.block_size, self.batch_size, self.device = data, block_size, batch_size, device
        self.gen = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(self.data) - self.block_size, (self.batch_size,), generator=self.gen).tolist()
        x = torch.from_numpy(np.stack([self.data[i : i + self.block_size] for i in ix]).astype(np.int64))
        y = torch.from_numpy(np.stack([self.data[i + 1 : i + 1 + self.block_size] for i in ix]).astype(np.int64))
        return x.to(self.device), y.to(self.device)


def get_lr(it: int, cfg: PretrainConfig) -> float:
    """Linear warmup, then cosine decay to ``min_lr`` at ``lr_decay_iters``, then flat."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


@dataclass
class TrainResult:
    run_id: str
    run_dir: Path
    iters: int
    train_loss: float
    val_loss: float
    ms_per_iter: float
    tokens_per_s: float
    ms_median: float = float("nan")  # robust to other processes stealing the CPU now and then
    history: list[dict[str, Any]] = field(default_factory=list)


def _device(name: str, local_rank: int) -> str:
    if name == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return name


@dataclass
class _Processes:
    """This process' place in the run: DDP rank and world size, and the device it trains on."""

    ddp: bool
    rank: int
    local_rank: int
    world: int
    device: str
    own_group: bool  # this call initialised the process group (and destroys it at the end)

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def device_type(self) -> str:
        return "cuda" if self.device.startswith("cuda") else "cpu"


def _setup_processes(cfg: PretrainConfig) -> _Processes:
    """Single process, or one DDP rank under torchrun (NCCL on GPUs, gloo on CPU)."""
    if int(os.environ.get("RANK", -1)) == -1:
        procs = _Processes(False, 0, 0, 1, _device(cfg.device, 0), own_group=False)
    else:
        rank, local_rank, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
        procs = _Processes(True, rank, local_rank, world, _device(cfg.device, local_rank), own_group=False)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if procs.device_type == "cuda" else "gloo")
            procs.own_group = True
        if procs.device_type == "cuda":
            torch.cuda.set_device(procs.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.gradient_accumulation_steps % procs.world:
        raise ValueError(f"gradient_accumulation_steps ({cfg.gradient_accumulation_steps}) must divide by "
                         f"{procs.world}")
    return procs


def _run_folder(workspace: Workspace, cfg: PretrainConfig, corpus_name: str, procs: _Processes, *,
                resume: bool) -> tuple[str, Path]:
    """The run id (every rank agrees on rank 0's) and its folder; resuming needs its checkpoint."""
    run_id = cfg.run_id or f"{corpus_name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if procs.ddp:
        box = [run_id]
        dist.broadcast_object_list(box, src=0)
        run_id = box[0]
    run_dir = runs_dir(workspace) / run_id
    if resume and not (run_dir / CKPT).is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {run_dir / CKPT}")
    if not resume and run_dir.exists():
        raise FileExistsError(f"run {run_id} already exists at {run_dir}; resume it or choose another run_id")
    return run_id, run_dir


def _restore(ckpt_path: Path, procs: _Processes, model: GPT, optimizer: Any, scaler: Any, batches: Batches,
             model_cfg: Any) -> tuple[int, float]:
    """Load weights, optimiser, scaler and this rank's RNG and sampler state; returns (iter_num, best_val)."""
    ckpt = torch.load(ckpt_path, map_location=procs.device, weights_only=False)
    if ckpt["model_config"] != model_cfg.model_dump():
        raise ValueError(f"{ckpt_path}: the model section differs from the checkpoint's; only training "
                         f"settings may change on resume")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    state = ckpt["rng"][procs.rank] if procs.rank < len(ckpt["rng"]) else ckpt["rng"][0]
    batches.gen.set_state(state["sampler"])
    torch.set_rng_state(state["torch"])
    if procs.device_type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], procs.device)
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    return ckpt["iter_num"], ckpt["best_val_loss"]


@torch.no_grad()
def _estimate_loss(model: Any, raw_model: GPT, splits: dict[str, np.ndarray], cfg: PretrainConfig, block_size: int,
                   device: str, autocast: Any) -> dict[str, float]:
    """Mean loss over ``eval_iters`` batches per split, the same fixed batches at every evaluation."""
    out = {}
    model.eval()
    for split, data in splits.items():
        batches = Batches(data, block_size, cfg.batch_size, cfg.seed + 7919, device)
        losses = torch.zeros(cfg.eval_iters)
        for k in range(cfg.eval_iters):
            x, y = batches.next()
            with autocast:
                _, loss = raw_model(x, y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


def _save_checkpoint(path: Path, procs: _Processes, sampler: torch.Generator, state: dict[str, Any]) -> None:
    """Gather every rank's RNG and sampler state; rank 0 writes ``state`` plus them atomically."""
    rng = {
        "sampler": sampler.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(procs.device) if procs.device_type == "cuda" else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    states: list[Any] = [rng]
    if procs.ddp:
        states = [None] * procs.world
        dist.all_gather_object(states, rng)
    if not procs.master:
        return
    buf = io.BytesIO()
    torch.save({**state, "rng": states}, buf)
    atomic_write_bytes(path, buf.getvalue())


def train(
    cfg: PretrainConfig,
    workspace: Workspace,
    *,
    resume: bool = False,
    progress: bool = True,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    # --- processes, data and run folder ----------------------------------------------------------------
    procs = _setup_processes(cfg)
    device, device_type, master, world = procs.device, procs.device_type, procs.master, procs.world
    accum = cfg.gradient_accumulation_steps // world
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
    autocast = (
        contextlib.nullcontext()
        if cfg.dtype == "float32"
        else torch.autocast(device_type=device_type, dtype=ptdtype)
    )
    corpus_dir = resolve_corpus(workspace.nanogpt_data, cfg.corpus)
    meta = read_meta(corpus_dir)
    model_cfg = cfg.model.model_copy(update={"vocab_size": cfg.model.vocab_size or meta["vocab_size"]})
    if model_cfg.vocab_size < meta["vocab_size"]:
        raise ValueError(f"model.vocab_size {model_cfg.vocab_size} < the corpus' {meta['vocab_size']}")
    train_batches = Batches(load_split(corpus_dir, "train"), model_cfg.block_size, cfg.batch_size,
                            cfg.seed + procs.rank, device)
    splits = {"train": train_batches.data, "val": load_split(corpus_dir, "val")}
    run_id, run_dir = _run_folder(workspace, cfg, corpus_dir.name, procs, resume=resume)
    ckpt_path = run_dir / CKPT

    # --- model and optimiser -------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = GPT(model_cfg).to(device)
    optimizer = model.configure_optimizer(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.dtype == "float16")
    iter_num, best_val = 0, float("inf")
    torch.manual_seed(cfg.seed + procs.rank)  # dropout differs per rank
    if resume:
        iter_num, best_val = _restore(ckpt_path, procs, model, optimizer, scaler, train_batches, model_cfg)
    raw_model = model
    if cfg.compile:
        model = torch.compile(model)
    if procs.ddp:
        model = DDP(model, device_ids=[procs.local_rank] if device_type == "cuda" else None)

    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", dump_config(cfg.model_copy(update={"run_id": run_id})))
        history = _read_history(run_dir / "metrics.jsonl", upto=iter_num if resume else 0)
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    else:
        history = []

    def estimate_loss() -> dict[str, float]:
        return _estimate_loss(model, raw_model, splits, cfg, model_cfg.block_size, device, autocast)

    def save_checkpoint() -> None:
        _save_checkpoint(ckpt_path, procs, train_batches.gen, {
            "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "model_config": model_cfg.model_dump(),
            "config": cfg.model_dump(mode="json"),
            "corpus": corpus_dir.name,
            "iter_num": iter_num,
            "best_val_loss": best_val,
            "world_size": world,
            "tokens_seen": iter_num * tokens_per_iter,
        })

    def log(record: dict[str, Any]) -> None:
        if not master:
            return
        history.append(record)
        with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if on_log:
            on_log(record)

    # --- the loop --------------------------------------------------------------------------------------
    tokens_per_iter = accum * world * cfg.batch_size * model_cfg.block_size
    bar = _progress(master and progress)
    task = bar.add_task(run_id, total=cfg.max_iters, completed=iter_num) if bar else None
    train_time, timed_iters, last_loss, last_val = 0.0, 0, float("nan"), float("nan")
    iter_ms: list[float] = []
    start_iter = iter_num
    with bar or contextlib.nullcontext():
        while iter_num < cfg.max_iters:
            t0 = time.perf_counter()
            lr = get_lr(iter_num, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for micro_step in range(accum):
                x, y = train_batches.next()
                if procs.ddp:  # all-reduce gradients only on the last micro-step
                    model.require_backward_grad_sync = micro_step == accum - 1
                with autocast:
                    _, loss = model(x, y)
                    loss = loss / accum
                scaler.scale(loss).backward()
                loss_sum += loss.item()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1
            dt = time.perf_counter() - t0
            last_loss = loss_sum
            if iter_num > start_iter + 3:  # the first iterations pay one-time allocation costs
                train_time, timed_iters = train_time + dt, timed_iters + 1
                iter_ms.append(dt * 1000)
            if iter_num % cfg.log_interval == 0 or iter_num == cfg.max_iters:
                log({"iter": iter_num, "loss": round(loss_sum, 6), "lr": lr, "ms": round(dt * 1000, 2)})
            if bar is not None and task is not None:
                bar.update(task, completed=iter_num,
                           description=f"{run_id} loss {loss_sum:.4f} lr {lr:.2e} {dt * 1000:.0f} ms/it")
            if iter_num % cfg.eval_interval == 0 or iter_num == cfg.max_iters:
                losses = estimate_loss()
                last_val = losses["val"]
                best_val = min(best_val, last_val)
                log({"iter": iter_num, "train_loss": round(losses["train"], 6), "val_loss": round(last_val, 6)})
                save_checkpoint()

    if math.isnan(last_val):  # resumed at or past max_iters: report the checkpoint's model
        last_val = estimate_loss()["val"]
    if procs.own_group:
        # Every rank reaches here before any tears gloo down: a rank that destroys its group while a peer
        # still holds the pair open aborts ("terminate called without an active exception").
        dist.barrier()
        dist.destroy_process_group()
    ms = 1000 * train_time / timed_iters if timed_iters else float("nan")
    return TrainResult(
        run_id=run_id,
        run_dir=run_dir,
        iters=iter_num,
        train_loss=last_loss,
        val_loss=last_val,
        ms_per_iter=ms,
        tokens_per_s=tokens_per_iter / (ms / 1000) if timed_iters else float("nan"),
        ms_median=float(np.median(iter_ms)) if iter_ms else float("nan"),
        history=history,
    )


def _read_history(path: Path, upto: int) -> list[dict[str, Any]]:
    """Metrics up to the checkpoint's iteration (later lines belong to work the resume redoes)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("iter", 0) <= upto]


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def load_checkpoint(run_dir: Path, device: str = "cpu") -> tuple[GPT, dict[str, Any]]:
    """The trained model (in eval mode) and the checkpoint dict of a run folder."""
    from secops_ai.training.pretrain.config import GPTConfig

    path = run_dir / CKPT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    model = GPT(GPTConfig.model_validate(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
