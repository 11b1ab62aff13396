"""Small text helpers shared by the data generators, the eval suites and alignment."""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """``text`` on one line (whitespace runs collapsed), cut at a word boundary to at most ``limit`` characters
    with an ellipsis when it was longer."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
