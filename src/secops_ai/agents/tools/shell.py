"""Run a command inside the sandbox (high risk: the loop asks a person before it runs)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from secops_ai.agents.sandbox import SandboxLimits
from secops_ai.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult, untrusted


class RunCommandArgs(ToolArgs):
    command: str | None = Field(default=None, description="Shell command line, run with /bin/sh -c.")
    argv: list[str] | None = Field(default=None, description="Program and arguments, run without a shell.")
    cwd: str = Field(default=".", description="Folder inside the workspace to run in.")
    timeout_s: float = Field(default=60.0, gt=0, le=600, description="Wall-clock limit; the sandbox is killed after.")

    @model_validator(mode="after")
    def _one_of(self) -> RunCommandArgs:
        if (self.command is None) == (self.argv is None):
            raise ValueError("give exactly one of 'command' (a shell line) or 'argv' (a list)")
        if self.argv is not None and not self.argv:
            raise ValueError("argv must not be empty")
        if self.command is not None and not self.command.strip():
            raise ValueError("command must not be empty")
        return self


class RunCommand(Tool):
    name = "run_command"
    description = (
        "Run a command in the sandbox over the workspace copy (no network, read-only system, limited CPU, "
        "memory, processes and time). Needs a person's approval."
    )
    input_model = RunCommandArgs
    risk = "high"
    idempotent = False  # commands may depend on and change the working copy

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        assert isinstance(args, RunCommandArgs)
        base = ctx.sandbox.limits
        limits = SandboxLimits(**{**base.model_dump(), "wall_timeout": min(args.timeout_s, base.wall_timeout)})
        try:
            result = ctx.sandbox.run(args.command if args.command is not None else args.argv, cwd=args.cwd,
                                     root=ctx.workspace, limits=limits)
        except ValueError as exc:
            return ToolResult.failure(str(exc))
        data = result.model_dump(exclude={"stdout", "stderr"})
        text = untrusted("command output", result.summary())
        if result.ok:
            return ToolResult.success(text, data)
        why = result.kill_reason or f"exit code {result.exit_code}"
        err = result.stderr.strip()
        if err:  # the reason a person (or the model) can act on is usually the last lines of stderr
            why += ": " + err[-500:]
        return ToolResult.failure(why, text, data)
