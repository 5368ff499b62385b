"""The Bradley–Terry loss of a reward model, as a pure function on tensors.

P(chosen ≻ rejected) = σ(r_c − r_r) (Bradley–Terry); the loss is its negative log-likelihood,

    L = mean_pairs[ −log σ(r_c − r_r − m) ] + c · mean_pairs[ (r_c + r_r)² ]

with an optional per-pair margin m (how much better the chosen answer is said to be: the pair
then counts as learned only once r_c − r_r clears m) and an optional reward-centring coefficient
c (Eisenstein et al. 2023; 0.01 is the usual value), which keeps rewards near 0 so that their
scale does not drift where the loss does not care.

How this differs from InstructGPT: pairs are weighted equally, not 1/C(K, 2) per prompt; the
training loop keeps a prompt's pairs in one batch instead. This module has no state and does
not know about models or tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None,
                       center_coef: float = 0.0, denominator: int | None = None
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, stats) of N pairs.

    chosen, rejected: (N,) raw rewards r_c, r_r. margin: (N,) or None (no margin).
    center_coef: c of the centring term. denominator: the number of pairs the means are taken
    over (default N); pass the whole batch's count when the batch is split into micro-batches,
    so that the micro-batch losses sum to the batch loss and their gradients to its gradient.

    stats (over these N pairs, not divided by `denominator`): "accuracy" (share of pairs with
    r_c > r_r; a tie counts as wrong), "margin" (mean r_c − r_r), "chosen_mean", "rejected_mean",
    "bt_loss" (mean −log σ(r_c − r_r − m)), "pairs" (N).
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} must both be (N,)")
    diff = chosen - rejected  # (N,)
    logits = diff if margin is None else diff - margin.to(diff)
    nll = -F.logsigmoid(logits)  # (N,)
    n = chosen.numel() if denominator is None else denominator
    loss = nll.sum() / n
    if center_coef:
        loss = loss + center_coef * ((chosen + rejected) ** 2).sum() / n
    with torch.no_grad():
        N = chosen.numel()
        stats = {
            "accuracy": float((diff > 0).float().mean()) if N else float("nan"),
            "margin": float(diff.mean()) if N else float("nan"),
            "chosen_mean": float(chosen.mean()) if N else float("nan"),
            "rejected_mean": float(rejected.mean()) if N else float("nan"),
            "bt_loss": float(nll.mean()) if N else float("nan"),
            "pairs": float(N),
        }
    return loss, stats
