"""Trainer callbacks: a rich progress bar (loss, tokens/s, ETA) and the ``metrics.jsonl`` log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class MetricsLogger(TrainerCallback):
    """Append every log event (loss, learning rate, tokens seen, ...) as one JSON line. Main process only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._t0 = time.monotonic()
        self._tokens0 = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.monotonic()
        self._tokens0 = state.num_input_tokens_seen

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs,
               "tokens_seen": state.num_input_tokens_seen,
               "tokens_per_second": round((state.num_input_tokens_seen - self._tokens0) / elapsed, 2),
               "ts": round(time.time(), 3)}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


class RichProgress(TrainerCallback):
    """One rich progress bar for the run: step, loss, tokens/s and time remaining."""

    def __init__(self, description: str = "training") -> None:
        self.description = description
        self._progress = None
        self._task = None
        self._t0 = 0.0
        self._tokens0 = 0
        self._loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("ETA"), TimeRemainingColumn(), transient=False)
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=state.max_steps, completed=state.global_step,
                                             loss="-", tps="-")
        self._t0 = time.monotonic()
        self._tokens0 = state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is None:
            return
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        tps = (state.num_input_tokens_seen - self._tokens0) / elapsed
        loss = f"{self._loss:.4f}" if self._loss is not None else "-"
        self._progress.update(self._task, completed=state.global_step, loss=loss, tps=f"{tps:,.0f}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])
            if self._progress is not None:  # logs arrive after on_step_end: refresh the shown loss
                self._progress.update(self._task, loss=f"{self._loss:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

