"""Guardrails policy files: versioned YAML under ``configs/guardrails/``, chosen by ``SECOPS_GUARDRAILS_POLICY``.

A file names *profiles* (what to do per category) and maps model ids or aliases to a profile::

    version: 1
    classifier: latest              # run-id under models/guardrails/, a folder, or latest
    profiles:
      strict:
        harmful_intent: {action: refuse, refuse_at: 0.5, caution_at: 0.3}
        prompt_injection: mark
        malicious_code: block
        secrets: redact
    models:
      production: strict            # the adapter promoted to production
      base: off                     # the bare base model: no screening
      "*": strict                   # anything else

Categories and the actions each accepts are in :data:`CATEGORIES`; a category left out of a profile is
``off``; ``off`` is also a built-in profile. Any unknown key, category, action or option stops the server
at start-up with ``file:line: what is wrong`` (the line of the offending key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

INPUT_CATEGORIES = ("harmful_intent", "prompt_injection")
OUTPUT_CATEGORIES = ("malicious_code", "insecure_code", "toxicity", "secrets", "pseudonym_leak")
_OUTPUT_ACTIONS = ("off", "annotate", "redact", "block")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "harmful_intent": ("off", "annotate", "caution", "refuse"),
    "prompt_injection": ("off", "annotate", "mark", "strip"),
    **{c: _OUTPUT_ACTIONS for c in OUTPUT_CATEGORIES},
}
# options a category accepts: name -> (low, high)
OPTIONS: dict[str, dict[str, tuple[float, float]]] = {
    "harmful_intent": {"refuse_at": (0.0, 1.0), "caution_at": (0.0, 1.0)},
    "toxicity": {"cutoff": (0.0, 1.0)},
}
DEFAULTS: dict[str, dict[str, float]] = {"harmful_intent": {"refuse_at": 0.5, "caution_at": 0.3},
                                         "toxicity": {"cutoff": 0.8}}
OFF = "off"
ANY_MODEL = "*"
POLICY_ENV = "SECOPS_GUARDRAILS_POLICY"


class PolicyError(ValueError):
    """An invalid policy file; the message starts with ``file:line:``."""


@dataclass(frozen=True)
class Rule:
    action: str
    options: dict[str, float] = field(default_factory=dict)

    def option(self, name: str) -> float:
        return self.options[name]


@dataclass(frozen=True)
class Profile:
    name: str
    rules: dict[str, Rule]

    def rule(self, category: str) -> Rule:
        return self.rules.get(category, Rule(OFF))

    @property
    def enabled(self) -> bool:
        return any(r.action != OFF for r in self.rules.values())

    @property
    def needs_classifier(self) -> bool:
        return self.rule("harmful_intent").action != OFF


OFF_PROFILE = Profile(OFF, {})


@dataclass(frozen=True)
class Policy:
    path: Path
    version: int
    classifier: str
    profiles: dict[str, Profile]
    models: dict[str, str]  # model id or alias -> profile name

    def profile_for(self, names: list[str]) -> Profile:
        """The profile of the first of ``names`` (requested id, resolved id, aliases) the file maps, else ``*``."""
        for name in [*names, ANY_MODEL]:
            if name in self.models:
                return self.profiles.get(self.models[name], OFF_PROFILE)
        return OFF_PROFILE

    @property
    def needs_classifier(self) -> bool:
        return any(self.profiles.get(p, OFF_PROFILE).needs_classifier for p in self.models.values())


def policies_dir() -> Path:
    """``configs/guardrails`` of the checkout."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "configs" / "guardrails"
        if candidate.is_dir():
            return candidate
    return Path("configs/guardrails")


def resolve_policy_path(spec: str) -> Path:
    """A path, or a name under ``configs/guardrails/`` (``strict`` -> ``configs/guardrails/strict.yaml``)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    named = policies_dir() / f"{spec}.yaml"
    if not path.suffix and named.is_file():
        return named
    known = ", ".join(p.stem for p in sorted(policies_dir().glob("*.yaml"))) or "none"
    raise PolicyError(f"{spec}: no such guardrails policy file ({POLICY_ENV}; configs/guardrails/ holds: {known})")


def _err(path: Path, node: yaml.Node, msg: str) -> PolicyError:
    return PolicyError(f"{path}:{node.start_mark.line + 1}: {msg}")


def _mapping(path: Path, node: yaml.Node, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, f"{what} must be a mapping")
    seen: set[str] = set()
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise _err(path, k, f"{what}: keys must be plain names")
        if k.value in seen:
            raise _err(path, k, f"{what}: duplicate key {k.value!r}")
        seen.add(k.value)
    return node.value


def _scalar(path: Path, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        raise _err(path, node, f"{what} must be a single value")
    return str(node.value)


def _rule(path: Path, category: str, node: yaml.Node) -> Rule:
    allowed = CATEGORIES[category]
    if isinstance(node, yaml.ScalarNode):
        action, opts = node.value, {}
        action_node = node
    else:
        action, opts, action_node = None, {}, node
        for k, v in _mapping(path, node, f"category {category!r}"):
            if k.value == "action":
                action, action_node = _scalar(path, v, "action"), v
                continue
            known = OPTIONS.get(category, {})
            if k.value not in known:
                raise _err(path, k, f"{category}: unknown option {k.value!r} "
                                    f"(known: {', '.join(['action', *known]) })")
            try:
                value = float(_scalar(path, v, k.value))
            except ValueError:
                raise _err(path, v, f"{category}.{k.value} must be a number") from None
            low, high = known[k.value]
            if not low <= value <= high:
                raise _err(path, v, f"{category}.{k.value} = {value} is outside [{low}, {high}]")
            opts[k.value] = value
        if action is None:
            raise _err(path, node, f"{category}: 'action' is missing (one of {', '.join(allowed)})")
    if action not in allowed:
        raise _err(path, action_node, f"{category}: unknown action {action!r} (one of {', '.join(allowed)})")
    merged = {**DEFAULTS.get(category, {}), **opts}
    if category == "harmful_intent" and merged["caution_at"] > merged["refuse_at"]:
        raise _err(path, node, "harmful_intent: caution_at must not exceed refuse_at")
    return Rule(action, merged)


def parse_policy(text: str, path: Path) -> Policy:
    """Validate ``text`` (the file at ``path``) into a :class:`Policy`; errors name the line."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if root is None:
        raise PolicyError(f"{path}:1: empty policy file")
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in _mapping(path, root, "the policy file"):
        if k.value not in ("version", "classifier", "profiles", "models", "description"):
            raise _err(path, k, f"unknown key {k.value!r} (known: version, classifier, profiles, models, description)")
        fields[k.value] = (k, v)
    for required in ("version", "profiles", "models"):
        if required not in fields:
            raise PolicyError(f"{path}:1: '{required}' is missing")
    vnode = fields["version"][1]
    try:
        version = int(_scalar(path, vnode, "version"))
    except ValueError:
        raise _err(path, vnode, "version must be an integer") from None
    if version < 1:
        raise _err(path, vnode, "version must be >= 1")
    classifier = _scalar(path, fields["classifier"][1], "classifier") if "classifier" in fields else "latest"
    profiles: dict[str, Profile] = {OFF: OFF_PROFILE}
    for pk, pv in _mapping(path, fields["profiles"][1], "profiles"):
        if pk.value == OFF:
            raise _err(path, pk, "'off' is a built-in profile and cannot be redefined")
        rules: dict[str, Rule] = {}
        if not (isinstance(pv, yaml.ScalarNode) and pv.value in ("", "null", "~")):
            for ck, cv in _mapping(path, pv, f"profile {pk.value!r}"):
                if ck.value not in CATEGORIES:
                    raise _err(path, ck, f"profile {pk.value!r}: unknown category {ck.value!r} "
                                         f"(known: {', '.join(CATEGORIES)})")
                rules[ck.value] = _rule(path, ck.value, cv)
        profiles[pk.value] = Profile(pk.value, rules)
    models: dict[str, str] = {}
    for mk, mv in _mapping(path, fields["models"][1], "models"):
        name = _scalar(path, mv, f"models.{mk.value}")
        if name not in profiles:
            raise _err(path, mv, f"models.{mk.value}: unknown profile {name!r} (defined: {', '.join(profiles)})")
        models[mk.value] = name
    return Policy(path=path, version=version, classifier=classifier, profiles=profiles, models=models)


def load_policy(spec: str | Path) -> Policy:
    path = resolve_policy_path(str(spec))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read: {exc}") from None
    return parse_policy(text, path.resolve())


def profile_summary(profile: Profile) -> dict[str, Any]:
    return {c: r.action for c, r in sorted(profile.rules.items()) if r.action != OFF}
