"""`rlvr.attention.grouped_attention` against PyTorch's SDPA: values and gradients."""

import pytest
import torch

from rlvr.attention import MAX_SCORES, grouped_attention


def inputs(B=3, H=6, kv=2, q=5, L=9, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = H // kv, True
    return module, make(B, H, q, D), make(B, kv, L, D), make(B, kv, L, D)


def sdpa(query, key, value, mask, scale, causal=False):
    rep = query.shape[1] // key.shape[1]
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1), attn_mask=mask, scale=scale,
        is_causal=causal)
    return out.transpose(1, 2)


@pytest.mark.parametrize("q", [1, 5])
def test_grouped_attention_equals_sdpa_with_padding(q):
    module, query, key, value = inputs(q=q)
    L = key.shape[2]
    mask = torch.ones(3, 1, q, L, dtype=torch.bool).tril(L - q)  # causal, queries last
    mask[0, ..., :3] = False  # a left-padded row
    ours, _ = grouped_attention(module, query, key, value, mask, scaling=0.3)
    expected = sdpa(query, key, value, mask, 0.3)
    assert ours.shape == (3, q, 6, 8)
    assert torch.allclose(ours, expected, atol=1e-10)
    grads = torch.autograd.grad((ours * torch.linspace(-1, 1, ours.numel()).view_as(ours)).sum(), (query, key, value))
    want = torch.autograd.grad((expected * torch.linspace(-1, 1, ours.numel()).view_as(ours)).sum(),
                               (query, key, value))
    for a, b in zip(grads, want):
        assert torch.allclose(a, b, atol=1e-10)


def test_no_mask_means_causal_for_several_queries():
    module, query, key, value = inputs(q=9, L=9)
    ours, _ = grouped_attention(module, query, key, value, None)
    assert torch.allclose(ours, sdpa(query, key, value, None, None, causal=True), atol=1e-10)


def test_a_fully_masked_row_stays_finite():
    """Queries at left-padding positions see no key; their output is never used but must not be NaN
    (a NaN would reach the weights through the backward)."""
    module, query, key, value = inputs(q=4, L=4)
    mask = torch.ones(3, 1, 4, 4, dtype=torch.bool).tril()
    mask[1, :, :2] = False
    ours, _ = grouped_attention(module, query, key, value, mask)
    assert torch.isfinite(ours).all()
    ours.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (query, key, value))


def test_long_inputs_go_to_sdpa():
    module, query, key, value = inputs(B=1, H=2, kv=1, q=300, L=300, D=4)
    assert 300 * 300 > MAX_SCORES
    ours, _ = grouped_attention(module, query, key, value, None)
    assert torch.allclose(ours, sdpa(query, key, value, None, None, causal=True), atol=1e-10)


def test_a_checkpointed_model_keeps_its_attention_for_grad_forwards_only(tiny_model_dir):
    from rlvr.attention import NAME, own_attention
    from rlvr.models import load_model

    model = load_model(str(tiny_model_dir))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    own = model.config._attn_implementation
    with own_attention(model):  # grad on: the recomputation in backward must see the same attention
        assert model.config._attn_implementation == own
    with torch.no_grad(), own_attention(model):  # sampling, reference log-probs
        assert model.config._attn_implementation == NAME
    assert model.config._attn_implementation == own
