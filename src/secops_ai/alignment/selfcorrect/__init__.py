"""Self-correction: intrinsic (draft -> critique -> revise) and verified (catalog/scanner-checked, cited).

    from secops_ai.alignment.selfcorrect import correct
    result = correct(messages, generate, "verified")   # generate(messages) -> str, any model
    result.final          # the answer to show
    result.extension()    # draft, critique, claims, evidence, checks, revisions (the API's extension field)

See docs/self_correction.md.
"""

from secops_ai.alignment.selfcorrect.backend import SelfCorrectingBackend, split_model_suffix
from secops_ai.alignment.selfcorrect.corrector import (
    BatchGenerate,
    Generate,
    ModeError,
    backend_generate,
    check_claims,
    check_mode,
    correct,
    correct_batch,
)
from secops_ai.alignment.selfcorrect.trace import MODES, Correction, Mode

__all__ = ["MODES", "BatchGenerate", "Correction", "Generate", "Mode", "ModeError", "SelfCorrectingBackend",
           "backend_generate", "check_claims", "check_mode", "correct", "correct_batch", "split_model_suffix"]
