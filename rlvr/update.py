"""The policy update of one GRPO step: token batches, log-probs under the model, accumulation.

`update_policy` runs `grpo.inner_steps` optimiser steps over one batch, accumulating gradients over
micro-batches so that the gradient equals the full batch's for every loss aggregation (the
denominators are those of the whole batch, see `rlvr.grpo.aggregate`). Per-token log-probs come
from the decoder's hidden states and `rlvr.grpo.selective_log_softmax`, never from full-vocabulary
logits of the whole batch.

Under data parallelism each rank passes its own rows: the loss denominators are the global
counts (summed over ranks), gradients are summed over ranks before clipping and the step, and the
returned statistics are global, so every rank takes the same step as one process would over the
whole batch. A rank may hold no rows at all (`batch=None`).

It does not sample, verify or compute advantages: `rlvr.train` does, and hands them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from rlvr import dist, grpo
from rlvr.config import Config
from rlvr.types import Completion


@dataclass
class TokenBatch:
    """Left-padded prompts (width W) followed by right-padded completions (width T)."""

    input_ids: torch.Tensor  # (B, W + T)
    attention_mask: torch.Tensor  # (B, W + T)
    mask: torch.Tensor  # (B, T) completion tokens, EOS included
    sampler_logp: torch.Tensor  # (B, T) log-probs reported by the rollout engine
    prompt_width: int

    def rows(self, idx: torch.Tensor) -> "TokenBatch":
        return TokenBatch(self.input_ids[idx], self.attention_mask[idx], self.mask[idx],
                          self.sampler_logp[idx], self.prompt_width)


def collate(completions: Sequence[Completion], pad_id: int) -> TokenBatch:
    W = max(len(c.prompt_ids) for c in completions)
    T = max(max(len(c.completion_ids) for c in completions), 1)
    B = len(completions)
    ids = torch.full((B, W + T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, W + T), dtype=torch.long)
    lp = torch.zeros((B, T))
    for i, c in enumerate(completions):
        p, n = len(c.prompt_ids), len(c.completion_ids)
        ids[i, W - p:W] = torch.tensor(c.prompt_ids)
        ids[i, W:W + n] = torch.tensor(c.completion_ids, dtype=torch.long)
        attn[i, W - p:W + n] = 1
        lp[i, :len(c.logprobs)] = torch.tensor(c.logprobs)
    return TokenBatch(ids, attn, attn[:, W:].clone(), lp, W)


def sequence_logprobs(model: Any, batch: TokenBatch, temperature: float,
                      autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs and entropies (B, T) of the completion tokens under `model`."""
    device = next(model.parameters()).device
    ids, attn = batch.input_ids.to(device), batch.attention_mask.to(device)
    positions = (attn.cumsum(-1) - 1).clamp(min=0)  # left padding: positions start at each prompt
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        hidden = model.get_decoder()(input_ids=ids, attention_mask=attn,
                                     position_ids=positions).last_hidden_state  # (B, W+T, H)
    W = batch.prompt_width
    h = hidden[:, W - 1:-1]  # (B, T, H): the states that predict completion tokens
    sel = batch.mask.to(device).bool()
    head = model.get_output_embeddings()
    lp, ent = grpo.selective_log_softmax(h[sel], head.weight, ids[:, W:][sel], temperature)
    logp = torch.zeros(sel.shape, device=device, dtype=lp.dtype).masked_scatter(sel, lp)
    entropy = torch.zeros(sel.shape, device=device, dtype=ent.dtype).masked_scatter(sel, ent)
    return logp, entropy


def update_policy(cfg: Config, policy: Any, reference: Any, optimizer: Any, scheduler: Any,
                  batch: TokenBatch | None, advantages: torch.Tensor, loss_rows: torch.Tensor) -> dict[str, float]:
    """grpo.inner_steps optimiser steps on one batch, accumulating gradients over micro-batches.

    advantages: (B,); loss_rows: (B,) bool, the samples that count (valid, not filtered out).
    `batch` None: this rank has no rows this step (it still takes part in the step).
    """
    g, T = cfg.grpo, cfg.rollout.temperature
    autocast = use_autocast(cfg, next(policy.parameters()).device)
    local = [float(loss_rows.sum()), float(batch.mask[loss_rows].sum())] if batch is not None else [0.0, 0.0]
    num_seqs, num_tokens = dist.all_sum(local)  # the whole batch's denominators, over every rank
    norm = grpo.BatchNorm(num_seqs=int(num_seqs), num_tokens=int(num_tokens),
                          norm_tokens=g.loss_norm_tokens or cfg.rollout.max_new_tokens)
    active = loss_rows & ((advantages != 0) | (g.beta > 0))
    idx = active.nonzero().flatten() if batch is not None else torch.zeros(0, dtype=torch.long)
    micro = [idx[s:s + cfg.optim.micro_batch_size] for s in range(0, len(idx), cfg.optim.micro_batch_size)]
    device = next(policy.parameters()).device
    fixed: list[dict[str, torch.Tensor]] = []
    with torch.no_grad():  # pi_old (only when reused across inner steps) and the reference
        for rows in micro:
            mb, extra = batch.rows(rows), {}
            if g.inner_steps > 1:
                extra["old"] = sequence_logprobs(policy, mb, T, autocast)[0]
            if g.beta > 0:
                extra["ref"] = reference_logprobs(policy, reference, mb, T, autocast)
            fixed.append(extra)
    sums = dict(loss=0.0, clip_low=0.0, clip_high=0.0, entropy=0.0, kl_ref=0.0, kl_sampler=0.0, tokens=0.0)
    grad_norm = 0.0
    for _ in range(g.inner_steps):
        optimizer.zero_grad(set_to_none=True)
        for rows, extra in zip(micro, fixed):
            mb = batch.rows(rows)
            mask = mb.mask.to(device).float()
            logp, entropy = sequence_logprobs(policy, mb, T, autocast)
            old = extra.get("old", logp.detach())
            per_token, low, high = grpo.clipped_surrogate(logp, old, advantages[rows].to(device), g.clip_low, g.clip_high)
            sampler = mb.sampler_logp.to(device)
            if g.tis_cap > 0:
                per_token = per_token * grpo.truncated_is_weight(old, sampler, g.tis_cap)
            if g.beta > 0:
                kl = grpo.kl_k3(logp, extra["ref"])
                per_token = per_token + g.beta * kl
                sums["kl_ref"] += float((kl.detach() * mask).sum())
            loss = grpo.aggregate(per_token, mask, g.loss_agg, norm)
            loss.backward()
            n_tok = float(mask.sum())
            sums["loss"] += float(loss.detach())
            sums["clip_low"] += float((low.float() * mask).sum())
            sums["clip_high"] += float((high.float() * mask).sum())
            sums["entropy"] += float((entropy * mask).sum())
            sums["kl_sampler"] += float((grpo.kl_k3(logp.detach(), sampler) * mask).sum())
            sums["tokens"] += n_tok
        params = [p for p in policy.parameters() if p.requires_grad]
        dist.all_reduce_grads(params)
        if cfg.optim.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm))
        optimizer.step()
        scheduler.step()
    keys = list(sums)
    sums = dict(zip(keys + ["sequences"], dist.all_sum([sums[k] for k in keys] + [float(len(idx))])))
    tok = max(sums.pop("tokens"), 1.0)
    mu = g.inner_steps
    return {"loss": sums["loss"] / mu, "clip/low_frac": sums["clip_low"] / tok,
            "clip/high_frac": sums["clip_high"] / tok, "entropy": sums["entropy"] / tok,
            "kl/ref": sums["kl_ref"] / tok if g.beta > 0 else float("nan"),
            "kl/sampler": sums["kl_sampler"] / tok, "grad_norm": grad_norm,
            "lr": scheduler.get_last_lr()[0], "update/sequences": sums["sequences"]}


def skip_update(cfg: Config, optimizer: Any, scheduler: Any) -> dict[str, float]:
    """The update of a step with nothing to learn from: what `update_policy` does when no row is
    active. The schedule advances `grpo.inner_steps` times (so a resumed run and this one stay in
    step); no parameter has a gradient, so AdamW leaves weights and moments as they are rather
    than apply stale momentum that no new sample asked for."""
    for _ in range(cfg.grpo.inner_steps):
        optimizer.zero_grad(set_to_none=True)
        optimizer.step()
        scheduler.step()
    return {"lr": scheduler.get_last_lr()[0], "update/sequences": 0.0}


def use_autocast(cfg: Config, device: torch.device) -> bool:
    """bf16 autocast over fp32 weights: as configured, or ("auto") where bf16 is fast."""
    from rlvr.models import fast_bf16

    setting = cfg.model.train_autocast
    if setting == "auto":
        setting = fast_bf16(str(device))
    return bool(setting) and cfg.model.dtype == "float32"


def reference_logprobs(policy: Any, reference: Any, mb: TokenBatch, T: float, autocast: bool) -> torch.Tensor:
    if reference is None:  # LoRA: the base model is the policy with its adapters switched off
        with policy.disable_adapter():
            return sequence_logprobs(policy, mb, T, autocast)[0]
    return sequence_logprobs(reference, mb, T, autocast)[0]


