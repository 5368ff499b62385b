"""The policy update of one GRPO step: token batches, log-probs under the model, accumulation.

`update_policy` runs `grpo.inner_steps` optimiser steps over one batch, accumulating gradients over
micro-batches so that the gradient equals the full batch's for every loss aggregation (the
denominators are those of the whole batch, see `rlvr.grpo.aggregate`). Per-token log-probs come
from one module forward (`LogProbModel`: the decoder's hidden states, then
`rlvr.grpo.selective_log_softmax` against the output head), never from full-vocabulary logits of
the whole batch. `update_policy` reads explicit `UpdateSettings`, not the run's whole config.

Under data parallelism each rank passes its own rows: the loss denominators are the global
counts (summed over ranks), gradients are summed over ranks before clipping and the step, and the
returned statistics are global, so every rank takes the same step as one process would over the
whole batch. A rank may hold no rows at all (`batch=None`). A sharded policy (FSDP2,
`rlvr.sharding`) reduces gradients inside backward, so there every rank runs as many micro-batches
as the busiest one, padding with zero-weight dummies.

It does not sample, verify or compute advantages: `rlvr.train` does, and hands them in.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from rlvr import dist, grpo, prefix, recompute, sharding
from rlvr.attention import checkpointed, own_attention
from rlvr.config import Config, GRPOConfig
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
        """The rows `idx`, without the columns that are padding in every one of them (the left
        of the prompt block, the right of the completion block): a micro-batch of short
        completions is not computed at the width of the batch's longest."""
        W = self.prompt_width
        attn = self.attention_mask[idx]
        prompt = int(attn[:, :W].sum(-1).max()) if len(idx) else 0
        width = max(int(self.mask[idx].sum(-1).max()) if len(idx) else 0, 1)
        cols = slice(W - prompt, W + width)
        return TokenBatch(self.input_ids[idx, cols], attn[:, cols], self.mask[idx, :width],
                          self.sampler_logp[idx, :width], prompt)


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


class LogProbModel(torch.nn.Module):
    """A causal LM whose `forward` returns the per-token log-probs and entropies of completion
    tokens: decoder hidden states, then the chunked log-softmax of `grpo.selective_log_softmax`
    against the output head, all inside one forward. Wrappers that gather parameters around a
    module's forward (FSDP2) thus see every parameter used, the head included."""

    def __init__(self, lm: Any):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
                mask: torch.Tensor, temperature: float, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each prompt starts at 0
        with recompute.autocast(input_ids.device.type, autocast), own_attention(self.lm):
            hidden = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                           position_ids=positions, use_cache=False).last_hidden_state  # (B, W+T, H)
        W = prompt_width
        h = hidden[:, W - 1:-1]  # (B, T, H): the states that predict completion tokens
        return grpo.masked_token_logprobs(h, self.lm.get_output_embeddings().weight, input_ids[:, W:], mask,
                                          temperature, autocast)


def logprob_model(model: Any) -> LogProbModel:
    return model if isinstance(model, LogProbModel) else LogProbModel(model)


def sequence_logprobs(model: Any, batch: TokenBatch, temperature: float,
                      autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs and entropies (B, T) of the completion tokens under `model` (a causal
    LM or its `LogProbModel`)."""
    device = next(model.parameters()).device
    return logprob_model(model)(batch.input_ids.to(device), batch.attention_mask.to(device),
                                batch.prompt_width, batch.mask.to(device), temperature, autocast)


@dataclass(frozen=True)
class UpdateSettings:
    """What one update reads of the run's configuration, and nothing more."""

    grpo: GRPOConfig
    temperature: float  # the sampling temperature: log-probs are those of the sampled distribution
    norm_tokens: int  # the constant of seq-mean-token-sum-norm
    micro_batch_size: int
    max_grad_norm: float  # 0 = no clipping
    autocast: bool  # bf16 autocast over fp32 weights
    share_prompts: bool = True  # one forward per distinct prompt (rlvr.prefix)

    @classmethod
    def of(cls, cfg: Config, device: torch.device) -> "UpdateSettings":
        return cls(grpo=cfg.grpo, temperature=cfg.rollout.temperature,
                   norm_tokens=cfg.grpo.loss_norm_tokens or cfg.rollout.max_new_tokens,
                   micro_batch_size=cfg.optim.micro_batch_size, max_grad_norm=cfg.optim.max_grad_norm,
                   autocast=use_autocast(cfg, device), share_prompts=cfg.optim.share_prompts)


def update_policy(u: UpdateSettings, policy: Any, reference: Any, optimizer: Any, scheduler: Any,
                  batch: TokenBatch | None, advantages: torch.Tensor, loss_rows: torch.Tensor) -> dict[str, float]:
    """grpo.inner_steps optimiser steps on one batch, accumulating gradients over micro-batches.

    policy, reference: causal LMs or their `LogProbModel`s (sharded ones under FSDP); reference
    None with beta > 0: the policy with its LoRA adapters off. advantages: (B,); loss_rows: (B,)
    bool, the samples that count (valid, not filtered out). `batch` None: this rank has no rows
    this step (it still takes part in the step).
    """
    g = u.grpo
    local = [float(loss_rows.sum()), float(batch.mask[loss_rows].sum())] if batch is not None else [0.0, 0.0]
    num_seqs, num_tokens = dist.all_sum(local)  # the whole batch's denominators, over every rank
    norm = grpo.BatchNorm(num_seqs=int(num_seqs), num_tokens=int(num_tokens), norm_tokens=u.norm_tokens)
    active = loss_rows & ((advantages != 0) | (g.beta > 0))
    idx = active.nonzero().flatten() if batch is not None else torch.zeros(0, dtype=torch.long)
    if len(idx):  # rows of similar length share a micro-batch, which `rows` then trims
        idx = idx[torch.argsort(batch.mask[idx].sum(-1), stable=True)]
    micro: list[torch.Tensor | None] = [idx[s:s + u.micro_batch_size] for s in range(0, len(idx), u.micro_batch_size)]
    sharded, scale = sharding.is_sharded(policy), sharding.loss_scale(policy)
    if sharded:  # FSDP collectives run in every forward/backward: every rank runs as many
        micro += [None] * (int(dist.all_max([len(micro)])[0]) - len(micro))
    device = next(policy.parameters()).device
    clock = PhaseClock(device)
    share = _shared_prompts(u, policy, batch, sharded, device)
    fixed = _fixed_logprobs(u, policy, reference, batch, micro, share, device)
    clock.lap("ref_logprobs")
    sums = dict(loss=0.0, clip_low=0.0, clip_high=0.0, entropy=0.0, kl_ref=0.0, kl_sampler=0.0, tokens=0.0)
    grad_norm = 0.0
    for _ in range(g.inner_steps):
        optimizer.zero_grad(set_to_none=True)
        states = _prompt_states(policy, share, u.autocast)
        for rows, extra in zip(micro, fixed):
            mb = _rows(batch, rows, device)
            mask = mb.mask.to(device).float()
            logp, entropy = _logprobs(policy, mb, rows, share, states, u)
            old = extra.get("old", logp.detach())
            adv = advantages[rows].to(device) if rows is not None else torch.zeros(1, device=device)
            per_token, low, high = grpo.clipped_surrogate(logp, old, adv, g.clip_low, g.clip_high)
            sampler = mb.sampler_logp.to(device)
            if g.tis_cap > 0:
                per_token = per_token * grpo.truncated_is_weight(old, sampler, g.tis_cap)
            if g.beta > 0:
                kl = grpo.kl_k3(logp, extra["ref"])
                per_token = per_token + g.beta * kl
            loss = grpo.aggregate(per_token, mask, g.loss_agg, norm)
            clock.lap("policy_forward")
            if rows is None:  # a dummy: it takes part in FSDP's collectives and adds nothing
                (loss * 0.0).backward()
                clock.lap("backward")
                continue
            (loss * scale).backward() if sharded else loss.backward()
            sums["loss"] += float(loss.detach())
            sums["clip_low"] += float((low.float() * mask).sum())
            sums["clip_high"] += float((high.float() * mask).sum())
            sums["entropy"] += float((entropy * mask).sum())
            sums["kl_sampler"] += float((grpo.kl_k3(logp.detach(), sampler) * mask).sum())
            sums["kl_ref"] += float((kl.detach() * mask).sum()) if g.beta > 0 else 0.0
            sums["tokens"] += float(mask.sum())
            clock.lap("backward")
        if states is not None:
            states.backward()  # the micro-batches' gradients through the prompts' forward, once
            clock.lap("backward")
        params = [p for p in policy.parameters() if p.requires_grad]
        if not sharded:  # FSDP has reduce-scattered the gradients in backward
            dist.all_reduce_grads(params)
        if u.max_grad_norm > 0:
            grad_norm = sharding.grad_norm_value(torch.nn.utils.clip_grad_norm_(params, u.max_grad_norm))
        optimizer.step()
        scheduler.step()
        clock.lap("optimizer")
    optimizer.zero_grad(set_to_none=True)  # not needed past the step: the rollout that follows gets their memory
    keys = list(sums)
    sums = dict(zip(keys + ["sequences"], dist.all_sum([sums[k] for k in keys] + [float(len(idx))])))
    tok = max(sums.pop("tokens"), 1.0)
    mu = g.inner_steps
    return {"loss": sums["loss"] / mu, "clip/low_frac": sums["clip_low"] / tok,
            "clip/high_frac": sums["clip_high"] / tok, "entropy": sums["entropy"] / tok,
            "kl/ref": sums["kl_ref"] / tok if g.beta > 0 else float("nan"),
            "kl/sampler": sums["kl_sampler"] / tok, "grad_norm": grad_norm,
            "lr": scheduler.get_last_lr()[0], "update/sequences": sums["sequences"], **clock.metrics()}


class PhaseClock:
    """Seconds spent in each phase of the update, as `time/<phase>_s` metrics: `ref_logprobs`
    (reference and pi_old log-probs), `policy_forward` (log-probs and loss), `backward` and
    `optimizer` (gradient all-reduce, clipping, AdamW and the schedule). On CUDA each lap waits for
    the device, so a phase is charged with its own kernels."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, defaultdict(float)
        self.last = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self, phase: str) -> None:
        """Charge the time since the last lap to `phase`."""
        now = self._now()
        self.seconds[phase] += now - self.last
        self.last = now

    def metrics(self) -> dict[str, float]:
        return {f"time/{phase}_s": s for phase, s in self.seconds.items()}


def _rows(batch: TokenBatch | None, rows: torch.Tensor | None, device: torch.device) -> TokenBatch:
    """The micro-batch of `rows`, or (None) a one-token dummy for a rank that has run out of rows."""
    if rows is not None:
        return batch.rows(rows)
    one = torch.ones((1, 2), dtype=torch.long)
    return TokenBatch(one, one.clone(), torch.ones((1, 1), dtype=torch.long), torch.zeros((1, 1)), 1)


@dataclass
class SharedPrompts:
    """The batch's distinct prompts (P, W) and each row's prompt index (B,), on the device."""

    ids: torch.Tensor
    attention: torch.Tensor
    index: torch.Tensor


def _shared_prompts(u: UpdateSettings, policy: Any, batch: TokenBatch | None, sharded: bool,
                    device: torch.device) -> SharedPrompts | None:
    """The prompts to forward once each (`rlvr.prefix`), or None where rows run whole: prompt
    sharing off, a sharded policy, transformers' gradient checkpointing (rlvr's own,
    `rlvr.recompute`, keeps sharing), or no prompt that repeats."""
    lm = policy.lm if isinstance(policy, LogProbModel) else policy
    if not u.share_prompts or sharded or batch is None or checkpointed(lm):
        return None
    ids, attention, index = prefix.distinct_prompts(batch.input_ids, batch.attention_mask, batch.prompt_width)
    if len(ids) == len(index):
        return None
    return SharedPrompts(ids.to(device), attention.to(device), index.to(device))


def _prompt_states(model: Any, share: SharedPrompts | None, autocast: bool) -> prefix.PromptStates | None:
    if share is None:
        return None
    lm = model.lm if isinstance(model, LogProbModel) else model
    return prefix.prompt_states(lm, share.ids, share.attention, autocast)


def _logprobs(model: Any, mb: TokenBatch, rows: torch.Tensor | None, share: SharedPrompts | None,
              states: prefix.PromptStates | None, u: UpdateSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies (b, T) of micro-batch `mb` (the batch's `rows`): as continuations
    of the shared prompts' `states`, or from full rows. The head's weight gradient goes straight
    into `.grad` (`grpo.head_grad_into_param`), except a sharded one's, which FSDP takes from autograd."""
    with contextlib.nullcontext() if sharding.is_sharded(model) else grpo.head_grad_into_param():
        if states is None or rows is None:
            return sequence_logprobs(model, mb, u.temperature, u.autocast)
        lm = model.lm if isinstance(model, LogProbModel) else model
        device = states.attention.device
        W = mb.prompt_width
        return prefix.completion_logprobs(lm, states, share.index[rows.to(device)], mb.input_ids[:, W:].to(device),
                                          mb.mask.to(device), u.temperature, u.autocast)


@torch.no_grad()
def _fixed_logprobs(u: UpdateSettings, policy: Any, reference: Any, batch: TokenBatch | None,
                    micro: list[torch.Tensor | None], share: SharedPrompts | None,
                    device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Per micro-batch: pi_old (only when reused across inner steps) and the reference's log-probs."""
    fixed: list[dict[str, torch.Tensor]] = [{} for _ in micro]
    if u.grpo.inner_steps > 1:
        states = _prompt_states(policy, share, u.autocast)
        for extra, rows in zip(fixed, micro):
            extra["old"] = _logprobs(policy, _rows(batch, rows, device), rows, share, states, u)[0]
    if u.grpo.beta > 0:
        lm = policy.lm if isinstance(policy, LogProbModel) else policy
        adapters_off = lm.disable_adapter() if reference is None else contextlib.nullcontext()
        model = policy if reference is None else reference
        with adapters_off:
            states = _prompt_states(model, share, u.autocast)
            for extra, rows in zip(fixed, micro):
                extra["ref"] = _logprobs(model, _rows(batch, rows, device), rows, share, states, u)[0]
    return fixed


def skip_update(inner_steps: int, optimizer: Any, scheduler: Any) -> dict[str, float]:
    """The update of a step with nothing to learn from: what `update_policy` does when no row is
    active. The schedule advances `inner_steps` times (so a resumed run and this one stay in
    step); no parameter has a gradient, so AdamW leaves weights and moments as they are rather
    than apply stale momentum that no new sample asked for."""
    for _ in range(inner_steps):
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
