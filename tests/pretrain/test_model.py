"""The GPT and the experiments/ blocks: shapes, causality, the RoPE identity, parameter groups, learning."""

from __future__ import annotations

import pytest
import torch

from secops_ai.training.pretrain.blocks import GroupedQueryAttention, SwiGLU, apply_rope, rope_tables
from secops_ai.training.pretrain.config import GPTConfig
from secops_ai.training.pretrain.model import GPT, CausalSelfAttention

VARIANTS = {
    "baseline": {},
    "rope": {"rope": True},
    "swiglu": {"swiglu": True},
    "gqa": {"n_kv_head": 1},
    "all": {"rope": True, "swiglu": True, "n_kv_head": 2},
}


def tiny(**flags: object) -> GPTConfig:
    return GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, **flags)


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_and_causality(name: str) -> None:
    torch.manual_seed(0)
    model = GPT(tiny(**VARIANTS[name])).eval()
    idx = torch.randint(0, 11, (2, 16))
    logits, loss = model(idx, idx)
    assert logits.shape == (2, 16, 11) and loss is not None and loss.ndim == 0
    # changing token 10 must leave the logits of positions 0..9 unchanged, and change later ones
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 11
    after = model(changed)[0]
    assert torch.allclose(logits[:, :10], after[:, :10], atol=1e-6)
    assert not torch.allclose(logits[:, 10:], after[:, 10:], atol=1e-4)
    with pytest.raises(ValueError, match="longer than block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_flags_swap_in_the_experiment_blocks() -> None:
    base, rope, swiglu, gqa = (GPT(tiny(**VARIANTS[n])) for n in ("baseline", "rope", "swiglu", "gqa"))
    assert isinstance(base.transformer.h[0].attn, CausalSelfAttention) and "wpe" in base.transformer
    assert isinstance(rope.transformer.h[0].attn, GroupedQueryAttention) and "wpe" not in rope.transformer
    assert isinstance(swiglu.transformer.h[0].mlp, SwiGLU)
    # GQA with one k/v head: k/v projection is 2*head_size wide instead of 2*n_embd
    assert gqa.transformer.h[0].attn.kv_proj.weight.shape == (2 * 8, 32)
    assert gqa.num_params() < base.num_params()
    assert base.config.gpt2_compatible and not any(m.config.gpt2_compatible for m in (rope, swiglu, gqa))


def test_rope_scores_depend_only_on_relative_position() -> None:
    cos, sin = rope_tables(8, 32)
    q, k = torch.randn(8), torch.randn(8)

    def score(m: int, n: int) -> float:
        qs = torch.zeros(1, 1, 32, 8)
        ks = torch.zeros(1, 1, 32, 8)
        qs[0, 0, m], ks[0, 0, n] = q, k
        return (apply_rope(qs, cos, sin)[0, 0, m] @ apply_rope(ks, cos, sin)[0, 0, n]).item()

    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    assert score(0, 0) == pytest.approx((q @ k).item(), abs=1e-5)  # position 0 is not rotated


def test_gqa_with_all_heads_equals_multi_head_attention() -> None:
    """n_kv_head = n_head is plain multi-head attention: same function as the fused GPT-2 block."""
    cfg = tiny(n_kv_head=4)
    torch.manual_seed(0)
    mha, gqa = CausalSelfAttention(cfg), GroupedQueryAttention(cfg)
    with torch.no_grad():
        q, k, v = mha.c_attn.weight.split(32, dim=0)
        gqa.q_proj.weight.copy_(q)
        gqa.kv_proj.weight.copy_(torch.cat([k, v]))
        gqa.c_proj.weight.copy_(mha.c_proj.weight)
    x = torch.randn(2, 16, 32)
    assert torch.allclose(mha(x), gqa(x), atol=1e-6)


def test_weight_decay_applies_to_matrices_only() -> None:
    model = GPT(tiny(bias=True))
    opt = model.configure_optimizer(0.1, 1e-3, (0.9, 0.99), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
    assert model.lm_head.weight is model.transformer.wte.weight  # tied, counted once


@pytest.mark.parametrize("name", VARIANTS)
def test_each_variant_learns_a_tiny_sequence(name: str) -> None:
    """60 AdamW steps on one repeating pattern take every variant from chance (ln 11 = 2.4) to near zero."""
    torch.manual_seed(0)
    model = GPT(tiny(**VARIANTS[name]))
    pattern = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 3, 2, 9, 10, 1, 2, 3, 4, 5, 6]])
    x, y = pattern[:, :-1], pattern[:, 1:]
    opt = model.configure_optimizer(0.0, 1e-2, (0.9, 0.99), "cpu")
    first = model(x, y)[1].item()
    for _ in range(60):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 2.0 and loss.item() < 0.3


def test_generate_extends_and_greedy_is_deterministic() -> None:
    torch.manual_seed(0)
    model = GPT(tiny()).eval()
    start = torch.tensor([[1, 2]])
    a = model.generate(start, 20, temperature=0)
    assert a.shape == (1, 22) and torch.equal(a, model.generate(start, 20, temperature=0))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    sampled = model.generate(start, 20, top_k=5, generator=g1)
    assert torch.equal(sampled, model.generate(start, 20, top_k=5, generator=g2))
