"""The update math against values worked by hand."""

import math

import pytest
import torch

from rlvr import grpo
from rlvr.grpo import BatchNorm


def test_group_advantages_with_std_scaling_matches_hand_values():
    # mean 0.5, unbiased std sqrt(1/3): (1 - 0.5) / 0.57735 = 0.8660
    adv = grpo.group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), eps=0.0)
    assert torch.allclose(adv, torch.tensor([[0.8660254, -0.8660254, -0.8660254, 0.8660254]]))


def test_group_advantages_without_std_scaling_is_centered_reward():
    adv = grpo.group_advantages(torch.tensor([[0.0, 0.0, 1.0, 0.0]]), std="none")
    assert torch.allclose(adv, torch.tensor([[-0.25, -0.25, 0.75, -0.25]]))


def test_degenerate_groups_get_exactly_zero_advantage():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
    for std in ("group", "batch", "none"):
        assert torch.equal(grpo.group_advantages(rewards, std=std), torch.zeros(3, 3))
    assert grpo.zero_std_groups(rewards).tolist() == [True, True, True]


def test_invalid_samples_are_left_out_of_mean_and_std():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 123.0]])
    valid = torch.tensor([[True, True, True, False]])
    adv = grpo.group_advantages(rewards, valid, std="none")
    # mean over the three valid samples is 1/3; the masked one gets 0
    assert torch.allclose(adv, torch.tensor([[2 / 3, -1 / 3, -1 / 3, 0.0]]))
    # one valid sample left: no spread, no signal
    assert grpo.zero_std_groups(torch.tensor([[1.0, 0.0]]), torch.tensor([[True, False]])).item()


def test_batch_std_uses_std_over_all_samples():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # batch mean 0.75, unbiased batch std sqrt(0.25) = 0.5; group 1 centered: +-0.5 -> +-1
    adv = grpo.group_advantages(rewards, std="batch", eps=0.0)
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0], [0.0, 0.0]]))


def test_clipped_surrogate_at_both_ends():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 0.5, 1.5]]))
    adv = torch.tensor([1.0])
    loss, low, high = grpo.clipped_surrogate(logp, old, adv, clip_low=0.2, clip_high=0.28)
    # A > 0: ratio 1.5 is clipped to 1.28; ratio 0.5 is not (min picks 0.5)
    assert torch.allclose(loss[0, [0, 1]], torch.tensor([-1.28, -0.5]))
    assert high[0].tolist() == [True, False, False, True] and not low.any()
    loss, low, high = grpo.clipped_surrogate(logp, old, -adv, clip_low=0.2, clip_high=0.28)
    # A < 0: ratio 0.5 is clipped to 0.8 (loss 0.8); ratio 1.5 is not (loss 1.5)
    assert torch.allclose(loss[0, [0, 1]], torch.tensor([1.5, 0.8]))
    assert low[0].tolist() == [False, True, True, False] and not high.any()


def test_clipped_tokens_get_no_gradient_and_unclipped_get_minus_advantage():
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_(True)
    loss, _, _ = grpo.clipped_surrogate(logp, torch.zeros(1, 2), torch.tensor([2.0]), 0.2, 0.28)
    loss.sum().backward()
    # d(-ratio * A)/dlogp = -ratio * A for the unclipped token, 0 for the clipped one
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -1.1 * 2.0]]))


def test_k3_matches_hand_value_and_is_zero_on_equal_policies():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    # d = ref - logp = ln 0.5: exp(d) - d - 1 = 0.5 + 0.693147 - 1
    assert torch.allclose(grpo.kl_k3(logp, ref), torch.tensor([0.5 + math.log(2) - 1]))
    assert grpo.kl_k3(ref, ref).item() == 0.0
    assert (grpo.kl_k3(torch.randn(100), torch.randn(100)) >= 0).all()


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 5.0, 99.0, 99.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])  # 99s are padding; last real token is the EOS


@pytest.mark.parametrize("mode,expected", [
    ("token-mean", (1 + 2 + 3 + 4 + 5) / 5),
    ("seq-mean-token-mean", ((1 + 2 + 3) / 3 + (4 + 5) / 2) / 2),
    ("seq-mean-token-sum-norm", ((1 + 2 + 3) / 4 + (4 + 5) / 4) / 2),
])
def test_aggregation_modes_match_hand_values_and_ignore_padding(mode, expected):
    norm = BatchNorm(num_seqs=2, num_tokens=5, norm_tokens=4)
    assert grpo.aggregate(PER_TOKEN, MASK, mode, norm).item() == pytest.approx(expected)


@pytest.mark.parametrize("mode", grpo.LOSS_AGGREGATIONS)
def test_micro_batches_sum_to_the_full_batch_loss(mode):
    torch.manual_seed(0)
    per_token = torch.randn(6, 7)
    mask = (torch.rand(6, 7) > 0.3).long()
    mask[:, 0] = 1
    norm = BatchNorm(num_seqs=6, num_tokens=int(mask.sum()), norm_tokens=7)
    full = grpo.aggregate(per_token, mask, mode, norm)
    parts = sum(grpo.aggregate(per_token[s:s + k], mask[s:s + k], mode, norm)
                for s, k in ((0, 1), (1, 3), (4, 2)))
    assert parts.item() == pytest.approx(full.item(), abs=1e-6)


def test_soft_overlong_penalty_ramps_to_minus_one():
    pen = grpo.soft_overlong_penalty(torch.tensor([10, 96, 100, 112, 128]), max_len=128, cache_len=32)
    assert torch.allclose(pen, torch.tensor([0.0, 0.0, -0.125, -0.5, -1.0]))


@pytest.mark.parametrize("head_slice, logit_rows", [(16384, 256), (7, 3)])
def test_selective_log_softmax_equals_full_log_softmax_with_gradients(monkeypatch, head_slice, logit_rows):
    """(7, 3): backward walks the head 7 rows and the logits 3 positions at a time, as it does
    the real head (49,152 rows) in slices."""
    monkeypatch.setattr(grpo, "HEAD_SLICE", head_slice)
    monkeypatch.setattr(grpo, "LOGIT_ROWS", logit_rows)
    torch.manual_seed(0)
    hidden = torch.randn(37, 8, requires_grad=True)
    weight = torch.randn(50, 8, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    lp, ent = grpo.selective_log_softmax(hidden, weight, targets, temperature=0.7, chunk_tokens=5)
    full = torch.log_softmax((hidden @ weight.t()) / 0.7, -1)
    ref = full.gather(-1, targets[:, None]).squeeze(-1)
    assert torch.allclose(lp, ref, atol=1e-5)
    assert torch.allclose(ent, -(full.exp() * full).sum(-1), atol=1e-5)
    g1 = torch.autograd.grad((lp * torch.linspace(-1, 2, 37)).sum(), (hidden, weight))
    g2 = torch.autograd.grad((ref * torch.linspace(-1, 2, 37)).sum(), (hidden, weight))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g1, g2))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_the_heads_fp32_logits_on_cpu_come_from_onednn_and_match_float64():
    """In forward and in backward the fp32 logits come from oneDNN's linear (faster than `mm` for
    the head's shapes); the log-probs and gradients are those of float64 to fp32 rounding."""
    torch.manual_seed(0)
    hidden = torch.randn(300, 64, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1000, 64, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 1000, (300,))
    h32, w32 = (x.detach().float().requires_grad_() for x in (hidden, weight))
    with torch.profiler.profile() as prof:
        lp, _ = grpo.selective_log_softmax(h32, w32, targets, chunk_tokens=128)
        g32 = torch.autograd.grad((lp * torch.linspace(-1, 2, 300)).sum(), (h32, w32))
    assert sum(e.name == "mkldnn::_linear_pointwise" for e in prof.events()) == 6  # 3 chunks, twice
    ref = torch.log_softmax(hidden @ weight.t(), -1).gather(-1, targets[:, None]).squeeze(-1)
    assert torch.allclose(lp.double(), ref, rtol=0, atol=1e-4)
    g64 = torch.autograd.grad((ref * torch.linspace(-1, 2, 300, dtype=torch.float64)).sum(), (hidden, weight))
    assert all(torch.allclose(a.double(), b, rtol=1e-4, atol=1e-4) for a, b in zip(g32, g64))


def test_the_heads_forward_makes_its_logits_a_block_of_positions_at_a_time(monkeypatch):
    """Forward holds (LOGIT_ROWS, V) blocks of logits, never a whole chunk's (chunk_tokens, V)."""
    monkeypatch.setattr(grpo, "LOGIT_ROWS", 16)
    torch.manual_seed(0)
    hidden, weight = torch.randn(128, 32), torch.randn(4096, 32)
    targets = torch.randint(0, 4096, (128,))
    with torch.profiler.profile(profile_memory=True) as prof:
        lp, _ = grpo.selective_log_softmax(hidden, weight, targets, chunk_tokens=128)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest <= 16 * 4096 * 4, largest
    assert torch.allclose(lp, torch.log_softmax(hidden @ weight.t(), -1).gather(-1, targets[:, None]).squeeze(-1),
                          atol=1e-5)


def test_the_heads_log_probs_of_no_position_have_a_zero_gradient():
    hidden = torch.randn(0, 8, requires_grad=True)
    weight = torch.randn(50, 8, requires_grad=True)
    lp, ent = grpo.selective_log_softmax(hidden, weight, torch.zeros(0, dtype=torch.long))
    assert lp.shape == ent.shape == (0,)
    (lp.sum() + (weight ** 2).sum()).backward()
    assert torch.allclose(weight.grad, 2 * weight.detach())


def test_the_heads_backward_in_bf16_keeps_the_log_probs_and_rounds_only_the_gradient():
    """Under autocast the head's two backward products run in bf16, as every other linear layer's
    do: the log-probs are those of fp32, the gradients agree to bf16 rounding (and do differ)."""
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = torch.randn(300, 16, requires_grad=True)
    targets = torch.randint(0, 300, (37,))
    exact, _ = grpo.selective_log_softmax(hidden, weight, targets, temperature=0.7, chunk_tokens=8)
    low, _ = grpo.selective_log_softmax(hidden, weight, targets, temperature=0.7, chunk_tokens=8,
                                        backward_dtype=torch.bfloat16)
    assert torch.equal(exact, low)
    g_exact = torch.autograd.grad(exact.sum(), (hidden, weight))
    g_low = torch.autograd.grad(low.sum(), (hidden, weight))
    for a, b in zip(g_exact, g_low):
        assert b.dtype == torch.float32 and not torch.equal(a, b)
        assert (a - b).norm() < 1e-2 * a.norm()


def test_the_heads_weight_gradient_goes_straight_into_grad_beside_a_tied_embedding():
    """Under `head_grad_into_param` the head adds its weight gradient to `weight.grad` itself, and the
    tied embedding's then adds in place: the gradient autograd gives, accumulated over two backward
    passes. A weight that is not a leaf (here a product) gets its gradient through autograd."""
    torch.manual_seed(0)
    weight = torch.randn(50, 8, requires_grad=True)
    ids, targets = torch.randint(0, 50, (2, 9)), torch.randint(0, 50, (18,))

    def loss(head):
        h = torch.nn.functional.embedding(ids, weight).reshape(-1, 8).tanh()
        lp, _ = grpo.selective_log_softmax(h, head, targets, chunk_tokens=5)
        return (lp * torch.linspace(-1, 2, 18)).sum()

    expected = torch.autograd.grad(loss(weight), weight)[0]
    for _ in range(2):
        with grpo.head_grad_into_param():
            out = loss(weight)
        out.backward()
    assert torch.allclose(weight.grad, 2 * expected, atol=1e-5)
    weight.grad = None
    with grpo.head_grad_into_param():
        out = loss(weight * 1.0)
    out.backward()
    assert torch.allclose(weight.grad, expected, atol=1e-5)


def test_truncated_importance_weight_is_capped_and_detached():
    old = torch.tensor([0.0, 0.0], requires_grad=True)
    w = grpo.truncated_is_weight(old, torch.log(torch.tensor([0.25, 2.0])), cap=2.0)
    assert torch.allclose(w, torch.tensor([2.0, 0.5])) and not w.requires_grad
