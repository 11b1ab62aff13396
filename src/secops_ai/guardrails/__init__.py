"""Serving-time guardrails: harmful-intent screening of requests, injection marking of untrusted text,
output checks (malware-like and insecure code, toxicity, secrets, pseudonym leaks), per-model policies.

See docs/guardrails.md. Entry points: :class:`Guardrails` (one per server), :func:`screen_untrusted`
(for agents' tool output), :class:`GuardedBackend` (a model with its guardrails on, for the gate).
"""

from secops_ai.guardrails.backend import GuardedBackend
from secops_ai.guardrails.injection import screen_untrusted
from secops_ai.guardrails.policy import POLICY_ENV, Policy, PolicyError, load_policy
from secops_ai.guardrails.screen import Guardrails, GuardrailsUnavailable, InputVerdict, ModelGuard, OutputVerdict

__all__ = ["POLICY_ENV", "GuardedBackend", "Guardrails", "GuardrailsUnavailable", "InputVerdict", "ModelGuard",
           "OutputVerdict", "Policy", "PolicyError", "load_policy", "screen_untrusted"]
