"""Log anomaly scoring: rank lines by how surprising a log model finds them (mean per-token loss).

A model pretrained on a site's normal logs predicts routine lines well; an injected command, an odd URL
or a forged account breaks its expectations, so those lines cost more nats per token. Each line is scored
in the context it had during training (preceded by a newline, followed by one), after the same
pseudonymisation as the corpus, so identifiers never decide the score by themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from secops_ai.training.pretrain.corpus import Tokenizer
from secops_ai.training.pretrain.model import GPT


class KeyMismatchError(ValueError):
    """The key given cannot reproduce the corpus' pseudonyms (missing, or another key)."""


def corpus_pseudonymizer(corpus_meta: dict[str, Any], key: str | None) -> Callable[[str], str] | None:
    """The pseudonymisation the model's corpus went through, to apply to lines before scoring them.

    ``None`` when the corpus was not pseudonymised. A pseudonymised corpus needs the same key: lines with
    pseudonyms the model never saw would all look anomalous, so another key (or none) is refused.
    """
    obf = corpus_meta.get("obfuscation", {})
    if not obf.get("pseudonymised"):
        return None
    if not key:
        raise KeyMismatchError("the model's corpus was pseudonymised: pass the same key "
                               "(--key or SECOPS_OBFUSCATION_KEY)")
    from secops_ai.data.obfuscation import Pseudonymizer

    pseudo = Pseudonymizer(key)
    if pseudo.key_id != obf.get("key_id"):
        raise KeyMismatchError(f"key id {pseudo.key_id} is not the corpus' key id {obf.get('key_id')}: "
                               "scores would reflect unfamiliar pseudonyms")
    return pseudo.text


@dataclass
class LineScore:
    line_no: int  # 1-based, in the input
    text: str  # the line as given (before pseudonymisation)
    score: float  # mean negative log-likelihood per token, in nats
    max_nll: float  # the single most surprising token
    tokens: int


@torch.no_grad()
def token_nll(model: GPT, ids: list[int]) -> torch.Tensor:
    """Negative log-likelihood of ``ids[1:]`` given the tokens before; long inputs use overlapping windows."""
    block = model.config.block_size
    device = next(model.parameters()).device
    x = torch.tensor(ids, dtype=torch.long, device=device)
    out = torch.empty(len(ids) - 1, device=device)
    done = 0  # targets scored so far: ids[1 : done + 1]
    while done < len(ids) - 1:
        # keep up to half a block of context before the first unscored target
        start = max(0, done + 1 - block // 2) if done else 0
        end = min(len(ids), start + block + 1)
        window = x[start:end]
        logits = model(window[None, :-1])[0][0]
        nll = F.cross_entropy(logits, window[1:], reduction="none")
        first = done - start  # index in this window of target ids[done + 1]
        out[done : end - 1] = nll[first:]
        done = end - 1
    return out


@torch.no_grad()
def score_lines(
    model: GPT,
    tokenizer: Tokenizer,
    lines: list[str],
    *,
    obfuscate: Callable[[str], str] | None = None,
    batch_size: int = 32,
) -> list[LineScore]:
    """Every non-empty line's score, most anomalous first."""
    model.eval()
    device = next(model.parameters()).device
    prefix = tokenizer.encode("\n")
    items = []
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        seen = obfuscate(line) if obfuscate else line
        items.append((no, line, prefix + tokenizer.encode(seen + "\n")))
    scores: list[LineScore] = []
    short = [it for it in items if len(it[2]) <= model.config.block_size + 1]
    for it in items:
        if len(it[2]) > model.config.block_size + 1:
            nll = token_nll(model, it[2])
            scores.append(_score(it[0], it[1], nll[len(prefix) - 1 :]))
    # short lines in right-padded batches: causal attention never looks at the padding after them
    for i in range(0, len(short), batch_size):
        chunk = short[i : i + batch_size]
        width = max(len(ids) for _, _, ids in chunk)
        x = torch.zeros(len(chunk), width, dtype=torch.long, device=device)
        for row, (_, _, ids) in enumerate(chunk):
            x[row, : len(ids)] = torch.tensor(ids, device=device)
        logits = model(x[:, :-1])[0]
        nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        for row, (no, line, ids) in enumerate(chunk):
            scores.append(_score(no, line, nll[row, len(prefix) - 1 : len(ids) - 1]))
    scores.sort(key=lambda s: s.score, reverse=True)
    return scores


def _score(no: int, line: str, nll: torch.Tensor) -> LineScore:
    return LineScore(line_no=no, text=line, score=nll.mean().item(), max_nll=nll.max().item(), tokens=nll.numel())
