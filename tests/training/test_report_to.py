"""`report_to` is passed through to TRL: a tensorboard run leaves its event file in the run folder."""

from __future__ import annotations

import pytest

from secops_ai.config import Workspace
from secops_ai.training.config import ConfigError, RunConfig


def test_tensorboard_logs_land_in_the_run_folder(workspace: Workspace, sft_dataset: str, tiny_config) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from secops_ai.training.runner import train

    result = train(tiny_config(sft_dataset, report_to="tensorboard"), progress=False)
    events = sorted((result.run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, f"no tensorboard event file under {result.run_dir}"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    losses = acc.Scalars("train/loss")
    assert len(losses) == 4  # logging_steps=1, max_steps=4: one loss scalar per step
    assert all(s.value > 0 for s in losses)
    # the default stays silent: nothing is reported anywhere unless a config asks
    assert RunConfig.from_dict({"model_name_or_path": "m", "dataset": "a@1"}).report_to == ["none"]


def test_unknown_tracker_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="report_to"):
        RunConfig.from_dict({"model_name_or_path": "m", "dataset": "a@1", "report_to": "neptune-ish"})
