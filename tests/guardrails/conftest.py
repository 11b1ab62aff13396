"""A trained intent classifier, built once from the project's own data and cached between test runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from secops_ai.guardrails.intent_data import DATA_VERSION


@pytest.fixture(scope="session")
def intent_artefact(request: pytest.FixtureRequest) -> Path:
    """``models/guardrails/<run-id>/`` trained on ``intent_records(0)`` (about a minute on 2 cores, once)."""
    from secops_ai.guardrails import intent
    from secops_ai.guardrails.intent_data import intent_records

    cache = Path(request.config.cache.mkdir(f"secops-guardrails-intent-v{DATA_VERSION}"))
    run = cache / "guardrails" / "intent-test"
    if not (run / intent.CLASSIFIER_FILE).is_file():
        shutil.rmtree(run, ignore_errors=True)
        intent.train(intent_records(0), cache, dataset_ref="guardrails/intent@1", c_grid=(3.0,), run_id="intent-test")
    return run


@pytest.fixture
def guarded_home(tmp_path: Path, intent_artefact: Path) -> Path:
    """A workspace whose models/guardrails/ holds the trained classifier."""
    home = tmp_path / "secops-home"
    target = home / "models" / "guardrails" / intent_artefact.name
    shutil.copytree(intent_artefact, target)
    return home
