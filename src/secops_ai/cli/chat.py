"""`secops-ai chat`: a streaming terminal chat with the configured model, local or remote.

Local mode loads the model in-process (no server needed); with ``--url`` or ``SECOPS_LLM_BASE_URL``
it talks to any OpenAI-compatible server through the official ``openai`` client.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import typer
from rich.console import Console

from secops_ai.cli.failure import fail

console = Console()


def chat(
    url: str = typer.Option(None, help="OpenAI-compatible base URL (default: SECOPS_LLM_BASE_URL, else local)."),
    model: str = typer.Option("default", help="Model id (see /v1/models); 'default' = the configured one."),
    system: str = typer.Option("You are a careful security assistant.", help="System prompt."),
    max_tokens: int = typer.Option(256, help="Most tokens per answer."),
    temperature: float = typer.Option(0.2, help="Sampling temperature (0 = greedy)."),
    api_key: str = typer.Option(None, envvar="SECOPS_LLM_API_KEY", help="Bearer key for the remote server."),
) -> None:
    """Chat in the terminal; answers stream token by token. Type /exit or Ctrl-D to leave, /reset to clear."""
    from secops_ai.config import get_settings

    settings = get_settings()
    url = url or settings.llm_base_url
    if url:
        reply = _remote_reply(url, model, api_key, max_tokens=max_tokens, temperature=temperature)
        console.print(f"[dim]remote model {model} at {url}[/]")
    else:
        reply, name = _local_reply(settings, model, max_tokens=max_tokens, temperature=temperature)
        console.print(f"[dim]local model {name}[/]")
    _converse(reply, system)


Reply = Callable[[list[dict[str, str]]], Iterable[str]]


def _remote_reply(url: str, model: str, api_key: str | None, *, max_tokens: int, temperature: float) -> Reply:
    """Answers streamed by an OpenAI-compatible server through the official client."""
    from openai import OpenAI

    from secops_ai.inference.remote import v1_url

    client = OpenAI(base_url=v1_url(url, ""), api_key=api_key or "none")

    def reply(messages: list[dict[str, str]]) -> Iterator[str]:
        stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                                max_tokens=max_tokens, temperature=temperature)
        for part in stream:
            if part.choices and part.choices[0].delta.content:
                yield part.choices[0].delta.content

    return reply


def _local_reply(settings: Any, model: str, *, max_tokens: int, temperature: float) -> tuple[Reply, str]:
    """Answers streamed by the model loaded in this process (as the server would load it), and its public id."""
    from secops_ai.inference.service import ModelService, UnknownModelError
    from secops_ai.inference.types import GenerationParams

    service = ModelService(settings)
    with console.status("loading the model..."):
        service.load_sync()
    if not service.ready.is_set():
        fail(str(service.load_error))
    try:
        adapter = service.resolve(model)
    except UnknownModelError as exc:
        fail(f"--model: {exc}")
    params = GenerationParams(max_tokens=max_tokens, temperature=temperature)

    def reply(messages: list[dict[str, str]]) -> Iterator[str]:
        return service.stream_sync(service.encode_chat(messages), params, adapter)

    return reply, service.public_id(adapter)


def _converse(reply: Reply, system: str) -> None:
    """Read a line, stream the answer, keep the history; /reset forgets it, /exit or Ctrl-D leaves."""
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            text = console.input("[bold cyan]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        if text.strip() in ("/exit", "/quit"):
            break
        if text.strip() == "/reset":
            history = history[:1] if system else []
            continue
        if not text.strip():
            continue
        history.append({"role": "user", "content": text})
        console.print("[bold green]assistant>[/] ", end="")
        parts = []
        for piece in reply(history):
            parts.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        console.print()
        history.append({"role": "assistant", "content": "".join(parts)})
