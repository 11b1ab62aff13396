"""The bundled SmolLM2-135M fixes a held-out generated repository through the guided workflow (the issue's
target in its small form: one repository; `secops-ai agent eval --n 10` is the full measure)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_bundled_model_fixes_a_held_out_repository(workspace, monkeypatch, bundled_base_dir: Path) -> None:
    from secops_ai.agents.evaluation import evaluate
    from secops_ai.config import get_settings

    monkeypatch.setenv("SECOPS_BASE_MODEL", str(bundled_base_dir))
    get_settings.cache_clear()
    report = evaluate(get_settings(), seeds=[0])  # default budget, mode auto
    (r,) = report.results
    assert report.mode == "guided"
    assert r.succeeded, r
    assert r.fixed and r.original_untouched and r.tests in ("passed", "none")
