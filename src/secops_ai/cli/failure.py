"""One way for a command to fail: ``error: <message>`` on stderr and a fixed exit code.

The message is printed without rich markup, so text such as ``pip install 'secops-ai[cuda]'`` or a
scanner's ``[rule]`` reaches the user intact.

Exit codes (the same for every command):

* ``0``: done; for a command that checks something (``eval run``, ``guardrails gate``, ``evolve run``,
  ``agent run``, ``data verify``, ``eval contamination``, ``guardrails validate``), the check passed.
* ``1`` (:data:`EXIT_ERROR`): the command could not do what was asked (bad input file, missing dataset, model
  or run, invalid config or policy, refused operation) or the check it ran did not pass; the message says
  what to fix.
* ``2`` (:data:`EXIT_USAGE`): the command line itself is wrong: an option value outside its choices or range,
  a required option missing (Click uses 2 for its own usage errors too).

Every command fails through :func:`fail`; none has its own error printer.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

EXIT_ERROR = 1
EXIT_USAGE = 2

_err = Console(stderr=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` to stderr (no markup interpretation) and exit with ``code``."""
    _err.print(Text.assemble(("error:", "bold red"), " ", str(message)), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``warning: message`` to stderr (no markup interpretation)."""
    _err.print(Text.assemble(("warning:", "yellow"), " ", str(message)), highlight=False, soft_wrap=True)
