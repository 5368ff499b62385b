"""The Bradley–Terry loss against values worked by hand."""

import math

import pytest
import torch

from rlvr.reward.loss import bradley_terry_loss


def nll(x: float) -> float:
    """-log sigma(x) = log(1 + e^-x), by hand."""
    return math.log(1 + math.exp(-x))


def test_loss_is_mean_negative_log_sigmoid_of_the_reward_difference():
    # differences 2 - 0 = 2 and 0 - 1 = -1: log(1 + e^-2) = 0.126928, log(1 + e^1) = 1.313262
    loss, stats = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx((0.126928 + 1.313262) / 2, abs=1e-5)
    assert stats["accuracy"] == 0.5  # one of two pairs ranked right
    assert stats["margin"] == pytest.approx((2 - 1) / 2)
    assert stats["chosen_mean"] == pytest.approx(1.0) and stats["rejected_mean"] == pytest.approx(0.5)
    assert stats["pairs"] == 2.0


def test_equal_rewards_cost_log_2_and_count_as_wrong():
    loss, stats = bradley_terry_loss(torch.tensor([0.3, -1.0]), torch.tensor([0.3, -1.0]))
    assert loss.item() == pytest.approx(math.log(2))  # sigma(0) = 1/2
    assert stats["accuracy"] == 0.0


def test_margin_is_subtracted_from_the_difference():
    # difference 1, margin 1: -log sigma(0) = log 2; margin 0.5 on the other pair: log(1 + e^-2.5)
    loss, stats = bradley_terry_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.5]),
                                     margin=torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((math.log(2) + nll(2.5)) / 2, abs=1e-6)
    assert stats["accuracy"] == 1.0  # the margin changes the loss, not what counts as ranked right
    assert stats["bt_loss"] == pytest.approx(loss.item())


def test_centring_term_adds_coef_times_mean_squared_sum():
    rc, rr = torch.tensor([2.0, 1.0]), torch.tensor([1.0, -3.0])
    base, _ = bradley_terry_loss(rc, rr)
    loss, stats = bradley_terry_loss(rc, rr, center_coef=0.01)
    # (2 + 1)^2 = 9 and (1 - 3)^2 = 4: 0.01 * 13 / 2 = 0.065
    assert loss.item() - base.item() == pytest.approx(0.065, abs=1e-6)
    assert stats["bt_loss"] == pytest.approx(base.item())  # the stats report the pairwise part


def test_gradient_pushes_chosen_up_and_rejected_down_by_sigma_of_minus_difference():
    rc = torch.tensor([0.0], requires_grad=True)
    rr = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(rc, rr)[0].backward()
    # d/d r_c of -log sigma(r_c - r_r) = -sigma(-(r_c - r_r)) = -1/2 at a tie
    assert rc.grad.item() == pytest.approx(-0.5) and rr.grad.item() == pytest.approx(0.5)


def test_micro_batches_with_the_batch_denominator_sum_to_the_batch_loss_and_gradient():
    torch.manual_seed(0)
    rc, rr, m = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64), torch.rand(6, dtype=torch.float64)
    whole_c = rc.clone().requires_grad_(True)
    whole, _ = bradley_terry_loss(whole_c, rr, m, center_coef=0.1)
    whole.backward()
    parts_c = rc.clone().requires_grad_(True)
    total = sum(bradley_terry_loss(parts_c[i:j], rr[i:j], m[i:j], center_coef=0.1, denominator=6)[0]
                for i, j in ((0, 1), (1, 4), (4, 6)))
    total.backward()
    assert total.item() == pytest.approx(whole.item(), abs=1e-12)
    assert torch.allclose(parts_c.grad, whole_c.grad, atol=1e-12)


def test_large_differences_are_finite():
    loss, _ = bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert loss.item() == pytest.approx(400.0)  # -log sigma(-400) = 400 without overflow


def test_shapes_must_match():
    with pytest.raises(ValueError, match="must both be"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))
