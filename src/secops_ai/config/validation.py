"""One wording for invalid configuration files, naming the file and the key (run and pretrain configs)."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """``source: unknown key 'x'`` / ``source: missing required key 'x'`` / ``source: 'x': why (got v)``."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(config)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key {key!r}")
        elif err["type"] == "missing":
            lines.append(f"{source}: missing required key {key!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {key!r}: {msg} (got {err.get('input')!r})")
    return "\n".join(lines)
