"""One forward per distinct prompt in the update: the G samples of a group share their prompt.

A GRPO batch holds G completions of each prompt, so a forward over (prompt + completion) rows
computes every prompt G times. Here each distinct prompt goes through the decoder once; its keys
and values (every layer) and its last hidden state (which predicts the first completion token)
are kept, and each micro-batch of completions runs as a continuation of its rows' prompts. The
arithmetic is the same attention over the same keys, so log-probs agree with the row-by-row
forward to float rounding (the tests hold them to it, gradients included).

Gradients cross the prompt/completion boundary as in activation checkpointing: the prompt states
handed to the micro-batches are detached float32 leaves, whose gradients accumulate over every
micro-batch's backward; `PromptStates.backward` then sends that sum through the prompt forward
once. So the prompts' graph is built and walked once per optimiser step, not once per micro-batch.

Not used with a sharded policy (FSDP2 gathers parameters per module call and expects one forward
per backward) nor under transformers' gradient checkpointing (which turns the cache off); the update
then runs full rows as before. rlvr's own checkpointing (`rlvr.recompute`) keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from rlvr import grpo, recompute
from rlvr.attention import cache_keyword, own_attention
from rlvr.recompute import decoder_layers


@dataclass
class PromptStates:
    """The decoder's states of P distinct prompts (left-padded to W): per layer keys and values
    (P, kv_heads, W, head_dim), the last position's final hidden state (P, H), the prompt mask
    (P, W) and lengths (P,). With grad, `leaves` are what the micro-batches read and `roots` the
    tensors of the prompt graph they stand for."""

    leaves: list[torch.Tensor]  # [k_0, v_0, k_1, v_1, ..., last_hidden]
    roots: list[torch.Tensor] | None
    attention: torch.Tensor
    lengths: torch.Tensor
    dtype: torch.dtype

    def backward(self) -> None:
        """Send the gradient accumulated on the leaves through the prompts' forward (to the weights)."""
        if self.roots is None:
            return
        pairs = [(r, leaf.grad.to(r.dtype)) for r, leaf in zip(self.roots, self.leaves) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([r for r, _ in pairs], [g for _, g in pairs])
        self.roots = None


def distinct_prompts(input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From rows of left-padded prompts (B, W) (the first `width` columns): the distinct prompts'
    ids and mask (P, W) and each row's prompt index (B,)."""
    ids, attn = input_ids[:, :width], attention_mask[:, :width]
    key = torch.where(attn.bool(), ids, -1)
    unique, index = torch.unique(key, dim=0, return_inverse=True)
    mask = (unique >= 0).long()
    return unique.clamp(min=0), mask, index


def _decoder(lm: Any) -> Any:
    return lm.get_decoder()


def prompt_states(lm: Any, ids: torch.Tensor, attention: torch.Tensor, autocast: bool) -> PromptStates:
    """Run the decoder over the distinct prompts (P, W) once; grad follows `torch.is_grad_enabled()`."""
    cache = Cache(layers=[DynamicLayer() for _ in decoder_layers(lm)])  # all there: `rlvr.recompute` restores them
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    with recompute.autocast(ids.device.type, autocast), own_attention(lm):
        hidden = _decoder(lm)(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True,
                              **{cache_keyword(_decoder(lm)): cache}).last_hidden_state
    states = [t for layer in cache.layers for t in (layer.keys, layer.values)] + [hidden[:, -1]]
    dtype = states[0].dtype
    if not torch.is_grad_enabled():
        return PromptStates(states, None, attention, attention.sum(-1), dtype)
    leaves = [s.detach().to(torch.promote_types(s.dtype, torch.float32)).requires_grad_() for s in states]
    return PromptStates(leaves, states, attention, attention.sum(-1), dtype)


def completion_logprobs(lm: Any, prompts: PromptStates, rows: torch.Tensor, completion: torch.Tensor,
                        mask: torch.Tensor, temperature: float, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs and entropies (b, T) of completions (b, T) (right-padded, `mask` (b, T))
    continuing prompts `rows` (b,) of `prompts`."""
    *kv, last = [leaf[rows].to(prompts.dtype) for leaf in prompts.leaves]
    cache = Cache(layers=[_filled_layer(kv[i], kv[i + 1]) for i in range(0, len(kv), 2)])
    attention = torch.cat([prompts.attention[rows], mask.to(prompts.attention.dtype)], dim=1)
    positions = prompts.lengths[rows][:, None] + torch.arange(completion.shape[1], device=completion.device)
    with recompute.autocast(completion.device.type, autocast), own_attention(lm):
        hidden = _decoder(lm)(input_ids=completion, attention_mask=attention, position_ids=positions,
                              use_cache=True, **{cache_keyword(_decoder(lm)): cache}).last_hidden_state  # (b, T, H)
    for layer in cache.layers:  # prompt + completion keys and values, not read again: checkpointed layers
        layer.keys = layer.values = None  # keep the cache to replay, which would keep these until backward
    h = torch.cat([last[:, None].to(hidden.dtype), hidden[:, :-1]], dim=1)  # the states predicting each token
    return grpo.masked_token_logprobs(h, lm.get_output_embeddings().weight, completion, mask, temperature,
                                      autocast)


def _filled_layer(keys: torch.Tensor, values: torch.Tensor) -> DynamicLayer:
    """A cache layer holding `keys` and `values` (a prompt's), to which a forward appends."""
    layer = DynamicLayer()
    layer.lazy_initialization(keys, values)
    layer.keys, layer.values = keys, values
    return layer
