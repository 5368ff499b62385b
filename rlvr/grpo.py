"""The math of the GRPO update, as pure functions on tensors.

Shapes: B sequences (= prompts x G), T completion tokens (right-padded), V vocabulary, H hidden.
`mask` (B, T) is 1 on completion tokens, the EOS token included, and 0 on padding; prompt tokens
never appear in these tensors. Everything here is deterministic and has no state.

How this differs from the GRPO paper (DeepSeekMath): the advantage may skip the std division
(Dr. GRPO) or use the batch std; the clip may be asymmetric (DAPO clip-higher); the KL term (k3,
only when beta > 0) is added per token, not folded into the reward; tokens may be aggregated three
ways; truncated completions may be filtered or softly penalised (DAPO); and a truncated importance
weight may correct for a rollout engine whose log-probs differ from the trainer's.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator

import torch

LOSS_AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def group_advantages(rewards: torch.Tensor, valid: torch.Tensor | None = None,
                     std: str = "group", eps: float = 1e-6) -> torch.Tensor:
    """A_i = (r_i - mean(r_group)) / (std + eps), over valid samples only.

    rewards: (P, G) rewards of P groups of G samples. valid: (P, G) bool, False for samples whose
    verification failed (infrastructure): they get advantage 0 and do not enter mean or std.
    std: "group" (GRPO; unbiased std of the group), "batch" (std over all valid samples),
    "none" (Dr. GRPO: no scaling). A group whose valid rewards are all equal gets all zeros.
    Returns (P, G).
    """
    rewards = rewards.double()
    valid = torch.ones_like(rewards, dtype=torch.bool) if valid is None else valid.bool()
    w = valid.double()
    count = w.sum(-1, keepdim=True)
    mean = (rewards * w).sum(-1, keepdim=True) / count.clamp(min=1)
    centered = (rewards - mean) * w
    if std == "group":
        var = (centered**2).sum(-1, keepdim=True) / (count - 1).clamp(min=1)
        adv = centered / (var.sqrt() + eps)
    elif std == "batch":
        n = w.sum()
        batch_mean = (rewards * w).sum() / n.clamp(min=1)
        batch_std = ((((rewards - batch_mean) * w) ** 2).sum() / (n - 1).clamp(min=1)).sqrt()
        adv = centered / (batch_std + eps)
    elif std == "none":
        adv = centered
    else:
        raise ValueError(f"unknown advantage std mode {std!r}")
    spread = (rewards.masked_fill(~valid, float("-inf")).amax(-1, keepdim=True)
              - rewards.masked_fill(~valid, float("inf")).amin(-1, keepdim=True))
    adv = torch.where(spread > 0, adv, torch.zeros_like(adv))  # equal rewards: no signal, exactly 0
    return adv.float()


def zero_std_groups(rewards: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(P,) bool: groups whose valid rewards are all equal (or that have < 2 valid samples)."""
    valid = torch.ones_like(rewards, dtype=torch.bool) if valid is None else valid.bool()
    hi = rewards.masked_fill(~valid, float("-inf")).amax(-1)
    lo = rewards.masked_fill(~valid, float("inf")).amin(-1)
    return (valid.sum(-1) < 2) | ~(hi > lo)


def soft_overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the reward. lengths: (B,) completion tokens.

    0 while length <= max_len - cache_len, then linear down to -1 at max_len (and below beyond).
    """
    start = max_len - cache_len
    return -((lengths.float() - start).clamp(min=0) / cache_len)


def selective_log_softmax(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          temperature: float = 1.0, chunk_tokens: int = 256,
                          backward_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) and entropy at each position, without materialising all logits at once.

    hidden: (N, H) final hidden states at the positions that predict `targets` (N,);
    weight: (V, H) output embedding. Logits are made LOGIT_ROWS positions at a time (at least fp32)
    and, when grad is enabled, made again in backward (`_HeadLogProb`), whose gradient with respect
    to them is formed `chunk_tokens` positions at a time: peak memory is two (LOGIT_ROWS, V) blocks
    in forward, and one (chunk_tokens, V) gradient beside one such block in backward, instead of
    (N, V). Returns (logp (N,), entropy (N,) detached).
    `backward_dtype` (bf16 under autocast): the dtype of backward's two products with the head,
    as autocast computes every other linear layer's backward; the log-probs, and the softmax that
    backward forms, stay at least fp32.
    """
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _HeadLogProb.apply(hidden, weight, targets, temperature, chunk_tokens, backward_dtype)
    logp, entropy, _ = _chunked_logp(hidden, weight, targets, temperature, chunk_tokens)
    return logp, entropy


def masked_token_logprobs(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                          temperature: float, autocast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs and entropies (B, T), 0 where `mask` (B, T) is 0: h (B, T, H) are the
    states predicting `targets` (B, T), `weight` (V, H) the output head (`selective_log_softmax`,
    its backward products in bf16 under `autocast`)."""
    sel = mask.bool()
    lp, ent = selective_log_softmax(h[sel], weight, targets[sel], temperature,
                                    backward_dtype=torch.bfloat16 if autocast else None)
    logp = torch.zeros(sel.shape, device=lp.device, dtype=lp.dtype).masked_scatter(sel, lp)
    entropy = torch.zeros(sel.shape, device=ent.device, dtype=ent.dtype).masked_scatter(sel, ent)
    return logp, entropy


def _logits(h: torch.Tensor, weight: torch.Tensor, temperature: float) -> torch.Tensor:
    """A new (n, V) tensor of logits (at least fp32), which callers may overwrite. On CPU the fp32
    product goes to oneDNN's linear: torch's fp32 `mm` there is MKL's sgemm, 25-30% slower for the
    head's shapes. The arithmetic is fp32 either way (the sums in another order)."""
    if _onednn_fp32(h, weight):
        logits = torch.ops.mkldnn._linear_pointwise(h, weight, None, "none", [], "")
    else:
        logits = h @ weight.t()  # (n, V)
    logits = logits.to(_logit_dtype(h))
    return logits.div_(temperature) if temperature != 1.0 else logits


def _logit_dtype(h: torch.Tensor) -> torch.dtype:
    """The dtype of `_logits` of hidden states `h`: at least fp32."""
    return torch.promote_types(h.dtype, torch.float32)


def _onednn_fp32(h: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `_logits` can take oneDNN's fp32 linear: CPU fp32 matrices, nothing to differentiate."""
    return (h.device.type == "cpu" and h.dtype == weight.dtype == torch.float32 and h.dim() == 2
            and h.is_contiguous() and weight.is_contiguous() and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and not (torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)))


def _chunk_logp(h: torch.Tensor, weight: torch.Tensor, t: torch.Tensor, temperature: float):
    """(logp (n,), entropy (n,), logsumexp (n,)) of one chunk, LOGIT_ROWS positions at a time: their
    logits, their log-softmax (one fused kernel, a second block) and the probabilities, written
    over the logits. Two (LOGIT_ROWS, V) blocks at once, never the chunk's (n, V) logits."""
    logp, entropy, lse = (h.new_empty(len(h), dtype=_logit_dtype(h)) for _ in range(3))
    for r in range(0, len(h), LOGIT_ROWS):
        rows, target = slice(r, r + LOGIT_ROWS), t[r:r + LOGIT_ROWS, None]
        logits = _logits(h[rows], weight, temperature)
        logsoftmax = torch.log_softmax(logits, dim=-1)
        logp[rows] = logsoftmax.gather(-1, target).squeeze(-1)
        lse[rows] = logits.gather(-1, target).squeeze(-1) - logp[rows]
        probs = torch.exp(logsoftmax, out=logits)
        entropy[rows] = -torch.bmm(probs.unsqueeze(1), logsoftmax.unsqueeze(2)).view(-1)  # row-wise dots
        del logits, logsoftmax, probs  # before the next rows' are made
    return logp, entropy, lse


def _chunked_logp(h: torch.Tensor, weight: torch.Tensor, t: torch.Tensor, temperature: float, chunk: int):
    """`_chunk_logp` of all positions, `chunk` at a time (empty tensors for no position)."""
    if len(h) == 0:
        empty = h.new_zeros(0, dtype=_logit_dtype(h))
        return empty, empty, empty
    parts = [_chunk_logp(h[s:s + chunk], weight, t[s:s + chunk], temperature) for s in range(0, len(h), chunk)]
    return tuple(torch.cat(x) for x in zip(*parts))


class _HeadLogProb(torch.autograd.Function):
    """log p(target) of all positions, chunk by chunk, with a hand-written backward: it keeps
    (h, weight, targets, lse), not the (n, V) logits, and in backward makes each chunk's logits once
    more and forms d logp / d logits = onehot(target) - softmax directly (activation checkpointing
    of the head, without re-running the forward's log-sum-exp and entropy). One function for all
    chunks, so backward casts the head once and sums the chunks' weight gradients in place into one
    buffer. The entropy is returned detached."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, t: torch.Tensor, temperature: float, chunk: int,
                backward_dtype: torch.dtype | None):
        with torch.no_grad():
            logp, entropy, lse = _chunked_logp(h, weight, t, temperature, chunk)
        ctx.save_for_backward(h, weight, t, lse)
        ctx.temperature, ctx.chunk, ctx.backward_dtype = temperature, chunk, backward_dtype or h.dtype
        ctx.into_grad = _INTO_GRAD.get() and weight.is_leaf and weight.requires_grad
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp: torch.Tensor, _grad_entropy: torch.Tensor):
        h, weight, t, lse = ctx.saved_tensors
        T, chunk, low = ctx.temperature, ctx.chunk, ctx.backward_dtype
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = acc = None  # what autograd gets; where the chunks' weight gradients are summed
        if need_w and len(h) and ctx.into_grad:
            if weight.grad is None:
                weight.grad = torch.zeros_like(weight)
            acc = weight.grad
        elif need_w and len(h):
            acc = grad_w = torch.zeros_like(weight)
        for s in range(0, len(h), chunk):
            grad = _logit_grad(h[s:s + chunk], weight, t[s:s + chunk], lse[s:s + chunk], grad_logp[s:s + chunk],
                               T, low)  # (n, V)
            hs = h[s:s + chunk].to(low)
            gh = h.new_zeros(len(hs), h.shape[1]) if need_h else None  # the slices' sum, in h's dtype
            for v in range(0, weight.shape[0], HEAD_SLICE):  # head rows a slice at a time: no (V, H) copies
                gv = grad[:, v:v + HEAD_SLICE]
                if need_h:
                    gh.add_(gv @ weight[v:v + HEAD_SLICE].to(low))
                if need_w:
                    acc[v:v + HEAD_SLICE].add_(gv.t() @ hs)
            if need_h:
                grad_h[s:s + chunk] = gh
            del grad, gh
        return grad_h, grad_w, None, None, None, None  # grad_w None (no positions): zero


_INTO_GRAD = contextvars.ContextVar("rlvr_head_grad_into_param", default=False)


@contextlib.contextmanager
def head_grad_into_param() -> Iterator[None]:
    """Heads made within add their weight gradient straight into `weight.grad` in backward, as
    `loss.backward()` would, instead of handing it to autograd. Autograd would hold it until the
    tied input embedding's gradient arrives, at the end of backward, and then sum the two in a new
    buffer: two (V, H) fp32 buffers less at the peak of every micro-batch. Only for a leaf weight
    whose gradient is accumulated by `backward()`: not under `torch.autograd.grad`, with hooks on
    the weight, or for a sharded (FSDP) weight, which expects its gradient from autograd."""
    token = _INTO_GRAD.set(True)
    try:
        yield
    finally:
        _INTO_GRAD.reset(token)


HEAD_SLICE = 16384  # rows of the head per product in `_HeadLogProb.backward`
LOGIT_ROWS = 128  # positions whose fp32 logits `_chunk_logp` and `_logit_grad` make at once


def _logit_grad(h: torch.Tensor, weight: torch.Tensor, t: torch.Tensor, lse: torch.Tensor, g: torch.Tensor,
                temperature: float, dtype: torch.dtype) -> torch.Tensor:
    """d loss / d logits (n, V) in `dtype`: g * (onehot(t) - softmax) / T, from fp32 logits made
    LOGIT_ROWS positions at a time (a chunk of at most LOGIT_ROWS positions is its one block)."""
    if len(h) <= LOGIT_ROWS:
        return _logit_grad_block(h, weight, t, lse, g, temperature).to(dtype)
    out = h.new_empty(len(h), weight.shape[0], dtype=dtype)
    for r in range(0, len(h), LOGIT_ROWS):
        rows = slice(r, r + LOGIT_ROWS)
        out[rows] = _logit_grad_block(h[rows], weight, t[rows], lse[rows], g[rows], temperature)
    return out


def _logit_grad_block(h: torch.Tensor, weight: torch.Tensor, t: torch.Tensor, lse: torch.Tensor, g: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """`_logit_grad` of one block of positions, in the logits' dtype (at least fp32), in place over them."""
    grad = _logits(h, weight, temperature).sub_(lse[:, None]).exp_().mul_(-g[:, None])
    grad.scatter_add_(-1, t[:, None], g[:, None].to(grad.dtype))
    return grad.div_(temperature) if temperature != 1.0 else grad


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1 >= 0. (B, T)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip_low: float, clip_high: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped objective as a per-token loss to minimise.

    logp, old_logp: (B, T); advantages: (B,). rho = exp(logp - old_logp);
    loss = -min(rho * A, clip(rho, 1 - clip_low, 1 + clip_high) * A).
    Returns (loss (B, T), clipped_low (B, T) bool, clipped_high (B, T) bool), where clipped_*
    marks tokens whose gradient the clip removed (rho < 1 - eps_low with A < 0, rho > 1 + eps_high
    with A > 0).
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    with torch.no_grad():
        low = (ratio < 1.0 - clip_low) & (adv < 0)
        high = (ratio > 1.0 + clip_high) & (adv > 0)
    return loss, low, high


def truncated_is_weight(old_logp: torch.Tensor, sampler_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """min(pi_old / pi_sampler, cap) per token, detached: corrects for rollout-engine mismatch."""
    return torch.exp(old_logp - sampler_logp).clamp(max=cap).detach()


@dataclass(frozen=True)
class BatchNorm:
    """Denominators of the whole batch, so that micro-batches sum to the full-batch loss."""

    num_seqs: int  # valid sequences in the whole batch
    num_tokens: int  # valid (masked-in) tokens in the whole batch
    norm_tokens: int  # constant normaliser of seq-mean-token-sum-norm


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, norm: BatchNorm) -> torch.Tensor:
    """Reduce a (B, T) per-token loss of one micro-batch to its share of the batch loss.

    token-mean:              sum_i sum_t l_it / (valid tokens in batch)        (DAPO)
    seq-mean-token-mean:     sum_i (sum_t l_it / |o_i|) / (sequences in batch)  (GRPO paper)
    seq-mean-token-sum-norm: sum_i (sum_t l_it / norm_tokens) / (sequences)    (Dr. GRPO)
    Summing the result over micro-batches gives exactly the loss of the whole batch.
    """
    mask = mask.to(per_token.dtype)
    if mode == "token-mean":
        return (per_token * mask).sum() / max(norm.num_tokens, 1)
    if mode == "seq-mean-token-mean":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / max(norm.num_seqs, 1)
    if mode == "seq-mean-token-sum-norm":
        return (per_token * mask).sum() / norm.norm_tokens / max(norm.num_seqs, 1)
    raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {LOSS_AGGREGATIONS}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    mask = mask.to(x.dtype)
    return float((x * mask).sum() / mask.sum().clamp(min=1))
