"""The evaluation gate with self-correction on: the same suites, items and scoring, replies corrected.

``evals`` may not import ``alignment`` (DESIGN's layering), so the gate option lives here and wraps the
gate's own backend: ``secops-ai eval run <target> --self-correct verified`` calls
:func:`evaluate_self_corrected`, which writes ``evals-<mode>.json`` beside the run's ``evals.json`` (the plain
gate result, which still decides promotion), so the registry can show both numbers.
"""

from __future__ import annotations

from pathlib import Path

from secops_ai.alignment.selfcorrect.backend import SelfCorrectingBackend
from secops_ai.alignment.selfcorrect.corrector import check_mode
from secops_ai.config import Settings
from secops_ai.config.atomic import atomic_write_text


def results_file(mode: str) -> str:
    return f"evals-{check_mode(mode)}.json"


def evaluate_self_corrected(settings: Settings, spec: str, mode: str, gate: str | Path | None = None, *,
                            endpoint: str | None = None, api_key: str | None = None, progress=None,
                            suites: list[str] | None = None, record: bool = True):
    """``spec`` (``base`` | ``production`` | ``<provider>/<run-id>``) measured by the gate with ``mode`` on.

    Returns the :class:`~secops_ai.evals.gate_report.ModelEval` (model named ``<name>+<mode>``); with ``record``,
    also writes it to ``<run folder>/evals-<mode>.json``.
    """
    from secops_ai.evals.gate import load_gate
    from secops_ai.evals.runner import evaluate_model, make_backend, resolve_target

    check_mode(mode)
    config, _ = load_gate(gate)
    target = resolve_target(settings, spec)
    backend = SelfCorrectingBackend(make_backend(settings, target, endpoint=endpoint, api_key=api_key), mode)
    result = evaluate_model(backend, config, f"{target.name}+{mode}", progress=progress, suites=suites)
    if record:
        atomic_write_text(target.out_dir / results_file(mode), result.model_dump_json(indent=1))
    return result
