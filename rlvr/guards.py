"""Reward-hacking guards shared by every verifier: pure functions the training loop calls per step.

A policy that learns to please its scorer rather than to solve the task often gets *longer*
(judges and reward models favour length; padding can hit more rubric items). These functions
make that visible and, optionally, costly:

- `length_by_reward_bucket(rewards, lengths, valid, buckets)`: mean completion length and count
  per reward bucket and the correlation of length with reward, as metrics
  (`guard/len_mean/full`, ...). `buckets="fixed"` is for rewards in [0, 1] (verifiers, rubrics):
  `zero` r <= 0, `low` 0 < r < 0.5, `high` 0.5 <= r < 1, `full` r >= 1. `buckets="quantile"` is
  for continuous rewards on any scale (a reward model): `q1`..`q4`, the quarters of this step's
  rewards from lowest to highest (ties stay in one bucket). A run whose top bucket is much
  longer than its bottom bucket is paying for length.
- `length_penalty(rewards, lengths, target_len, max_len, coef)`: subtract up to `coef`, linearly
  from `target_len` to `max_len` tokens, before advantages (optional; off by default). `coef` is
  in reward units: for a normalised reward model, standard deviations of its reward.
- `length_explosion_warning(history)`: a message when, over the last `window` steps against the
  `window` before, mean reward rose while mean length grew by `length_ratio` or more (any reward
  scale: it compares means, and "rose" means greater, also for negative rewards).

A held-out check scored by something other than the training reward (the rubric verifier with
`deterministic_only: true`, or another judge) belongs beside these in the log; the loop owns it.
This module does not read configs, log or decide to stop a run.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["BUCKETS", "QUANTILE_BUCKETS", "length_by_reward_bucket", "length_penalty",
           "length_explosion_warning"]

BUCKETS = ("zero", "low", "high", "full")
QUANTILE_BUCKETS = ("q1", "q2", "q3", "q4")


def _bucket_masks(rewards: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"zero": rewards <= 0, "low": (rewards > 0) & (rewards < 0.5),
            "high": (rewards >= 0.5) & (rewards < 1), "full": rewards >= 1}


def _quantile_masks(rewards: torch.Tensor) -> dict[str, torch.Tensor]:
    """q1..q4 by the rank of each reward; equal rewards share the bucket of their first rank."""
    n = rewards.numel()
    if n == 0:
        return {name: torch.zeros(0, dtype=torch.bool) for name in QUANTILE_BUCKETS}
    order = torch.sort(rewards, stable=True).values
    first_rank = torch.searchsorted(order, rewards, right=False)  # (N,) rank of the first equal reward
    quarter = (first_rank * 4) // n  # 0..3
    return {name: quarter == i for i, name in enumerate(QUANTILE_BUCKETS)}


def length_by_reward_bucket(rewards: torch.Tensor, lengths: torch.Tensor,
                            valid: torch.Tensor | None = None,
                            buckets: str = "fixed") -> dict[str, float]:
    """Metrics of length per reward bucket over valid samples.

    rewards, lengths, valid: same shape, e.g. (P, G); lengths in tokens; valid False for samples
    masked out (infrastructure errors). `buckets`: "fixed" ([0, 1] rewards) or "quantile"
    (continuous rewards; see the module docstring). Buckets with no sample report a count of 0
    and no mean. `guard/len_reward_corr` is Pearson's r of length and reward (0 when either is
    constant).
    """
    if buckets not in ("fixed", "quantile"):
        raise ValueError(f"buckets must be 'fixed' or 'quantile', not {buckets!r}")
    r, n = rewards.double().flatten(), lengths.double().flatten()
    keep = torch.ones_like(r, dtype=torch.bool) if valid is None else valid.flatten().bool()
    r, n = r[keep], n[keep]
    out: dict[str, float] = {}
    masks = _bucket_masks(r) if buckets == "fixed" else _quantile_masks(r)
    for name, mask in masks.items():
        out[f"guard/count/{name}"] = float(mask.sum())
        if mask.any():
            out[f"guard/len_mean/{name}"] = float(n[mask].mean())
    out["guard/len_mean"] = float(n.mean()) if n.numel() else 0.0
    corr = 0.0
    if n.numel() > 1 and float(r.std()) > 0 and float(n.std()) > 0:
        corr = float(((r - r.mean()) * (n - n.mean())).mean() / (r.std(unbiased=False) * n.std(unbiased=False)))
    out["guard/len_reward_corr"] = corr
    return out


def length_penalty(rewards: torch.Tensor, lengths: torch.Tensor, target_len: int, max_len: int,
                   coef: float) -> torch.Tensor:
    """rewards - coef * clip((L - target_len) / (max_len - target_len), 0, 1), same shape.

    No change at or below `target_len`; the full `coef` at `max_len` and beyond. `coef` 0 is
    the identity. Apply to valid samples only (masked ones are not scored at all).
    """
    if coef < 0 or not 0 <= target_len < max_len:
        raise ValueError("length_penalty needs coef >= 0 and 0 <= target_len < max_len")
    if coef == 0:
        return rewards
    over = ((lengths.to(rewards.dtype) - target_len) / (max_len - target_len)).clamp(0.0, 1.0)
    return rewards - coef * over


def length_explosion_warning(history: Sequence[tuple[float, float]], window: int = 5,
                             length_ratio: float = 1.5) -> str | None:
    """A warning when reward rose while length exploded, else None.

    history: (reward_mean, length_mean) per step, oldest first. Compares the mean of the last
    `window` steps with the mean of the `window` steps before them; needs 2 * window steps.
    """
    if window < 1 or length_ratio <= 1:
        raise ValueError("window >= 1 and length_ratio > 1")
    if len(history) < 2 * window:
        return None
    before, recent = history[-2 * window:-window], history[-window:]
    r0, r1 = (sum(h[0] for h in part) / window for part in (before, recent))
    l0, l1 = (sum(h[1] for h in part) / window for part in (before, recent))
    if any(math.isnan(x) for x in (r0, r1, l0, l1)) or l0 <= 0:
        return None
    if r1 > r0 and l1 >= length_ratio * l0:
        return (f"reward rose {r0:.3f} -> {r1:.3f} while mean length grew {l0:.0f} -> {l1:.0f} "
                f"tokens (x{l1 / l0:.2f}) over the last {window} steps: check for length hacking "
                f"against a held-out score")
    return None
