"""Reward-hacking guards: values worked by hand."""

import pytest
import torch

from rlvr.guards import length_by_reward_bucket, length_explosion_warning, length_penalty


def test_length_by_bucket_by_hand():
    rewards = torch.tensor([[0.0, 0.25, 1.0], [0.5, 1.0, 0.0]])
    lengths = torch.tensor([[10, 20, 100], [40, 60, 30]])
    valid = torch.tensor([[True, True, True], [True, True, False]])  # the 30-token zero is masked
    m = length_by_reward_bucket(rewards, lengths, valid)
    assert m["guard/count/zero"] == 1 and m["guard/len_mean/zero"] == 10
    assert m["guard/count/low"] == 1 and m["guard/len_mean/low"] == 20
    assert m["guard/count/high"] == 1 and m["guard/len_mean/high"] == 40
    assert m["guard/count/full"] == 2 and m["guard/len_mean/full"] == 80
    assert m["guard/len_mean"] == 46
    # r = [0, .25, 1, .5, 1], L = [10, 20, 100, 40, 60]: Pearson r worked out by hand
    r, n = [0, .25, 1, .5, 1], [10, 20, 100, 40, 60]
    mr, mn = sum(r) / 5, sum(n) / 5
    cov = sum((a - mr) * (b - mn) for a, b in zip(r, n)) / 5
    sr = (sum((a - mr) ** 2 for a in r) / 5) ** 0.5
    sn = (sum((b - mn) ** 2 for b in n) / 5) ** 0.5
    assert m["guard/len_reward_corr"] == pytest.approx(cov / (sr * sn), abs=1e-12)
    assert m["guard/len_reward_corr"] > 0.8


def test_empty_buckets_and_constant_inputs():
    m = length_by_reward_bucket(torch.zeros(4), torch.full((4,), 7))
    assert m["guard/count/full"] == 0 and "guard/len_mean/full" not in m
    assert m["guard/len_reward_corr"] == 0.0


def test_length_penalty_by_hand():
    rewards = torch.tensor([1.0, 1.0, 0.5, 0.0])
    lengths = torch.tensor([50, 150, 300, 400])
    out = length_penalty(rewards, lengths, target_len=100, max_len=300, coef=0.5)
    assert out.tolist() == [1.0, 1.0 - 0.5 * 0.25, 0.5 - 0.5, 0.0 - 0.5]
    assert length_penalty(rewards, lengths, 100, 300, 0.0) is rewards
    with pytest.raises(ValueError):
        length_penalty(rewards, lengths, 300, 100, 0.5)


def test_explosion_warning_needs_both_reward_rise_and_length_growth():
    flat = [(0.2, 100.0)] * 5
    assert length_explosion_warning(flat + [(0.5, 160.0)] * 5) is not None
    assert length_explosion_warning(flat + [(0.5, 140.0)] * 5) is None   # length x1.4 only
    assert length_explosion_warning(flat + [(0.1, 300.0)] * 5) is None   # reward fell
    assert length_explosion_warning(flat + [(0.5, 160.0)] * 4) is None   # not enough steps
    msg = length_explosion_warning([(0.1, 50.0)] * 3 + [(0.2, 100.0)] * 3 + [(0.4, 200.0)] * 3, window=3)
    assert "0.200 -> 0.400" in msg and "x2.00" in msg


def test_quantile_buckets_for_continuous_rewards_on_any_scale():
    # a reward model's normalised rewards: negative and above 1, where fixed buckets say nothing
    rewards = torch.tensor([[-3.0, -1.0, 0.5, 1.5], [2.0, 2.5, 4.0, 5.0]])
    lengths = torch.tensor([[10.0, 20.0, 30.0, 40.0], [50.0, 60.0, 70.0, 80.0]])
    m = length_by_reward_bucket(rewards, lengths, buckets="quantile")
    assert [m[f"guard/count/q{i}"] for i in range(1, 5)] == [2.0, 2.0, 2.0, 2.0]
    assert m["guard/len_mean/q1"] == 15.0 and m["guard/len_mean/q4"] == 75.0
    fixed = length_by_reward_bucket(rewards, lengths)
    assert fixed["guard/count/zero"] == 2 and fixed["guard/count/full"] == 5  # the fixed view: lumped


def test_quantile_buckets_keep_ties_together_and_skip_masked_samples():
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 9.0, -9.0])
    lengths = torch.tensor([5.0, 5.0, 5.0, 5.0, 100.0, 1.0])
    valid = torch.tensor([True, True, True, True, True, False])
    m = length_by_reward_bucket(rewards, lengths, valid, buckets="quantile")
    assert m["guard/count/q1"] == 4 and m["guard/count/q4"] == 1 and m["guard/len_mean/q4"] == 100.0
    assert sum(m[f"guard/count/q{i}"] for i in range(1, 5)) == 5
    with pytest.raises(ValueError):
        length_by_reward_bucket(rewards, lengths, buckets="deciles")


def test_explosion_warning_and_penalty_on_a_continuous_negative_reward_scale():
    # normalised reward-model means, all negative, rising while length triples
    history = [(-2.0 + 0.1 * i, 20.0 if i < 5 else 60.0) for i in range(10)]
    assert "length hacking" in length_explosion_warning(history)
    falling = [(-0.1 * i, 20.0 if i < 5 else 60.0) for i in range(10)]
    assert length_explosion_warning(falling) is None
    shaped = length_penalty(torch.tensor([-1.5, 2.0]), torch.tensor([10, 100]), 10, 50, 0.5)
    assert shaped.tolist() == [-1.5, 1.5]  # up to coef reward units (here: standard deviations)
