"""Evolve configs: one YAML file in ``configs/evolve/<name>.yaml`` per self-improvement recipe.

Every knob that changes the preference data is here (prompt sources, samples, seeds, rubric, margins), so
the config plus the model is the whole recipe; its hash names the run folder, so rerunning the same config
resumes the same run. Unknown keys are an error, and errors name the file and the field.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from secops_ai.config.validation import describe_validation_error

PromptSource = Literal["refusals", "templated_refusals", "builder_requests", "cwe_choice", "cwe_fix", "attack",
                       "trajectories"]
SAFETY_SUITES = ("policy", "toxicity", "prompt_injection", "insecure_code")


class EvolveConfigError(ValueError):
    """An evolve config is invalid; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptsConfig(_Section):
    sources: list[PromptSource] = Field(default_factory=lambda: ["refusals", "cwe_choice", "cwe_fix"])
    per_source: int = Field(default=16, ge=1, description="At most this many prompts from each built-in source.")
    datasets: list[str] = Field(default_factory=list,
                                description="User-supplied prompt datasets ('provider/name@N'): their user turns.")
    trajectories: str | None = Field(default=None, description="A `data from-trajectories` SFT dataset whose "
                                     "tasks join the prompts (source 'trajectories').")


class ActorConfig(_Section):
    samples: int = Field(default=4, ge=1, le=64, description="Sampled answers per prompt (Meta-Rewarding: N >= 4).")
    temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=96, ge=4, le=2048)
    revise: bool = Field(default=True, description="Add a self-corrected candidate per prompt (its first sample "
                         "through alignment.selfcorrect).")
    revise_mode: Literal["intrinsic", "verified"] = Field(
        default="intrinsic", description="intrinsic: critique -> revise; verified: catalog/scanner-checked.")
    refusal_redirect: bool = Field(default=True, description="For prompts a verifier flags harmful, add an "
                                   "answer written under an explicit refuse-and-redirect instruction.")
    benign_refusal_probe: bool = Field(default=True, description="For benign security prompts, add the same "
                                       "refusal-instructed answer as a known-bad candidate (teaches not to "
                                       "over-refuse).")
    references: bool = Field(default=False, description="Add each prompt's reference answer from its source as a "
                             "candidate (origin 'reference'): the recipe's refusals name the request and offer "
                             "a defensive alternative, where the 135M model's own say 'I'm not sure what you're "
                             "asking' (docs/alignment.md). Ranked like any other candidate.")
    choice_hint: bool = Field(default=False, description="For multiple-choice prompts, add the answer the model "
                              "writes when told the verified option (a 135M model answers 'A' to nearly every "
                              "question, so its samples hold no correct answer for the others). Measured on "
                              "the starter config: task accuracy +1 item of 40, helpfulness -5 of 24 "
                              "(docs/BENCHMARKS.md), so off by default.")


class JudgeConfig(_Section):
    base_url: str | None = Field(default=None, description="Any OpenAI-compatible endpoint; unset: the actor "
                                 "model judges itself through the same engine.")
    model: str | None = Field(default=None, description="Model name at base_url.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the endpoint's key.")
    judgments: int = Field(default=2, ge=1, le=16, description="K judgments per answer, averaged.")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=48, ge=4, le=1024)
    both_positions: bool = Field(default=True, description="Alternate answer-first and question-first layouts "
                                 "across the K judgments (position bias control).")
    verified_sample: int | None = Field(default=None, ge=0, description="None: judge every answer; N: only "
                                        "answers without a verifier verdict plus N verified ones (for agreement "
                                        "and the meta-judge's ground truth): a CPU budget knob.")
    length_penalty: float = Field(default=0.5, ge=0.0, le=5.0, description="Points taken off per 100% of length "
                                  "above the prompt's median answer (verbosity bias control).")


class VerifiersConfig(_Section):
    bandit: bool = Field(default=True, description="Scan code in answers with bandit (static, never executed).")
    ids: bool = True
    injection: bool = True
    relevance: bool = Field(default=True, description="A benign answer must address the request "
                            "(evals.relevance.addresses: English content words; switch off for other languages).")
    redirect: bool = Field(default=True, description="A refusal of a harmful request is verified good only when "
                           "it offers an alternative; a bare refusal is left to the judge (English phrases).")


class MetaJudgeConfig(_Section):
    enabled: bool = True
    max_answers: int = Field(default=64, ge=0, description="Answers whose judgment pairs are meta-judged.")
    max_tokens: int = Field(default=8, ge=1, le=256)


class PairsConfig(_Section):
    length_margin: float = Field(default=0.5, ge=0.0, description="Chosen = shortest answer within this many "
                                 "points of the best score (stops length drift).")
    min_gap: float = Field(default=0.5, gt=0.0, description="Chosen and rejected closer than this: a tie, dropped.")


class TrainSection(_Section):
    stage: Literal["dpo", "orpo"] = "dpo"
    judge_pairs: bool = Field(default=True, description="Train on the judge pairs too (Meta-Rewarding).")
    overrides: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields (learning_rate, "
                                      "max_steps, lora_rank, ...) for the preference run.")


class KeyedSection(_Section):
    """Answer-level SFT on verifier-keyed multiple choice, next to the preference run (``alignment/keyed.py``)."""

    items: int = Field(default=0, ge=0, le=100_000, description="Fresh keyed multiple-choice items per iteration; "
                       "0 (and no catalog or tooling items) turns the stage off (the preference run's adapter is "
                       "the candidate).")
    catalog_items: int = Field(default=0, ge=0, le=100_000, description="Name -> CWE id questions answered "
                               "with a pointer to the catalog, not a number: keeps the drill from teaching "
                               "confident wrong ids (docs/alignment.md).")
    tooling_items: int = Field(default=0, ge=0, le=100_000, description="Defensive tooling requests answered in "
                               "full: keeps the preference run's refusals off benign 'write a script' requests.")
    order: Literal["before", "after"] = Field(
        default="before", description="'before': the drill continues the start model and the preference run "
        "continues the drill's adapter, so the preference run is the last to shape free-form replies. 'after': the "
        "drill continues the preference run's adapter and is the candidate; measured on the 135M model, a drill "
        "trained last left one-word replies (docs/alignment.md).")
    replay: bool = Field(default=False, description="Mix in the chosen answers of the iteration's actor pairs. "
                         "Measured on the 135M model: it taught a generic refusal (docs/alignment.md), so off.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields for the SFT run "
                                      "(learning_rate, max_steps, per_device_train_batch_size, ...).")


class GateSection(_Section):
    gate: str = Field(default="default", description="Gate config (name under configs/gates/ or a path).")
    safety_suites: list[str] = Field(default_factory=lambda: list(SAFETY_SUITES))
    max_regression: float = Field(default=0.0, ge=0.0, description="No safety metric may be worse than the "
                                  "current model's (production, else base) by more than this.")
    promote: bool = Field(default=True, description="Promote the candidate when both checks pass.")
    chain: Literal["promoted", "candidate"] = Field(
        default="promoted", description="What the next iteration improves: the promoted model (a refused "
        "candidate is dropped), or each candidate regardless (to measure several iterations).")


class EvolveConfig(_Section):
    """One self-improvement recipe (paired with :class:`secops_ai.alignment.pipeline.EvolvePipeline`)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,40}$")
    description: str = ""
    seed: int = Field(default=0, ge=0)
    model_name_or_path: str | None = Field(default=None, description="Base model; default: the configured one.")
    start_from: str = Field(default="production", description="'production' (falls back to base when none), "
                            "'base', or '<provider>/<run-id>'.")
    iterations: int = Field(default=1, ge=1, le=20)
    batch_size: int = Field(default=16, ge=1, le=256, description="Generations queued at once on the engine.")
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    actor: ActorConfig = Field(default_factory=ActorConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    verifiers: VerifiersConfig = Field(default_factory=VerifiersConfig)
    meta_judge: MetaJudgeConfig = Field(default_factory=MetaJudgeConfig)
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    train: TrainSection = Field(default_factory=TrainSection)
    keyed: KeyedSection = Field(default_factory=KeyedSection)
    gate: GateSection = Field(default_factory=GateSection)

    @model_validator(mode="after")
    def _check(self) -> EvolveConfig:
        from secops_ai.training.config import RunConfig

        for section, overrides in (("train", self.train.overrides), ("keyed", self.keyed.overrides)):
            unknown = sorted(set(overrides) - set(RunConfig.model_fields))
            if unknown:
                raise ValueError(f"{section}.overrides: unknown RunConfig key(s) {', '.join(unknown)}")
            fixed = {"stage", "dataset", "adapter_name_or_path", "model_name_or_path"} & set(overrides)
            if fixed:
                raise ValueError(f"{section}.overrides: {', '.join(sorted(fixed))} are set by evolve itself")
        if "trajectories" in self.prompts.sources and not self.prompts.trajectories:
            raise ValueError("prompts.trajectories: source 'trajectories' needs a dataset ref")
        return self

    def fingerprint(self) -> str:
        """Hash of everything that changes the data or the training (not description or iterations)."""
        data = self.model_dump(mode="json", exclude={"description", "iterations"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<config>") -> EvolveConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise EvolveConfigError(describe_validation_error(exc, source)) from None

    @classmethod
    def from_yaml(cls, path: Path | str) -> EvolveConfig:
        path = Path(path)
        if not path.is_file():
            raise EvolveConfigError(f"{path}: no such evolve config")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise EvolveConfigError(f"{path}{f' line {mark.line + 1}' if mark else ''}: invalid YAML") from None
        if not isinstance(data, dict):
            raise EvolveConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(data, source=str(path))
