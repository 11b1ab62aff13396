"""Experimental blocks in the LLMs-from-scratch spirit, each switched on by a ``GPTConfig`` flag.

- ``rope``: rotary position embeddings (Su et al., 2021): q and k are rotated by position-dependent
  angles, so attention sees relative offsets and the learned ``wpe`` table goes away.
- ``swiglu``: a gated MLP, ``c_proj(silu(w_gate x) * w_up x)`` (Shazeer, 2020), with the hidden width
  scaled by 2/3 so the parameter count stays close to the 4x GELU MLP.
- ``n_kv_head``: grouped-query attention (Ainslie et al., 2023): ``n_head`` query heads share
  ``n_kv_head`` key/value heads, shrinking the k/v projection (and a KV cache) by ``n_head / n_kv_head``.

All are off by default; any of them makes the model no longer GPT-2 compatible (``export.py`` says so).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

from secops_ai.training.pretrain.config import GPTConfig


def rope_tables(head_size: int, max_len: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape (max_len, head_size/2) for the rotation angles pos * base^(-2i/d)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, dtype=torch.float32) / head_size))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :d/2], x[..., d/2:]) of ``x`` (B, H, T, d) by the angles of positions 0..T-1."""
    T = x.size(-2)
    cos, sin = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class GroupedQueryAttention(nn.Module):
    """Causal attention with optional RoPE and ``n_kv_head`` key/value heads (= n_head: plain MHA)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.n_kv_head = cfg.n_kv_head or cfg.n_head
        self.head_size = cfg.n_embd // cfg.n_head
        self.dropout = cfg.dropout
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.kv_proj = nn.Linear(cfg.n_embd, 2 * self.n_kv_head * self.head_size, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.rope = cfg.rope
        if self.rope:
            cos, sin = rope_tables(self.head_size, cfg.block_size)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q = self.q_proj(x).view(B, T, self.n_head, self.head_size).transpose(1, 2)
        k, v = self.kv_proj(x).split(self.n_kv_head * self.head_size, dim=2)
        k = k.view(B, T, self.n_kv_head, self.head_size).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_size).transpose(1, 2)
        if self.rope:
            q = apply_rope(q, self.rope_cos, self.rope_sin)
            k = apply_rope(k, self.rope_cos, self.rope_sin)
        if self.n_kv_head != self.n_head:  # each k/v head serves n_head / n_kv_head query heads
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


def swiglu_hidden(n_embd: int, multiple_of: int = 16) -> int:
    """2/3 of the 4x MLP width, rounded up, so SwiGLU's three matrices ≈ the GELU MLP's two."""
    hidden = int(2 * 4 * n_embd / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        hidden = swiglu_hidden(cfg.n_embd)
        self.w_gate = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.w_up = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.c_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.silu(self.w_gate(x)) * self.w_up(x)))
