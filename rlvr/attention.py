"""Attention for short sequences on CPU, registered with transformers' attention interface.

PyTorch's CPU SDPA kernel (flash attention, blocked for long sequences) is slow where rlvr's
sequences are short: one query token while sampling, and a few hundred tokens in the update. There
`grouped_attention` computes attention as two batched matrix products, the query heads that share
a key/value head stacked against that head's keys (grouped-query attention without repeating the
keys), softmax in float32 (at least). It holds the (queries x keys) scores of each head, so it is used only
while queries x keys <= `MAX_SCORES`; longer inputs go to SDPA. On the speed benchmark's update
it takes a third of SDPA's time, forward and backward (benchmarks/README.md).

`own_attention(model)` switches a model to it for the duration of a block, so nothing of it is
saved with the model.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "rlvr_grouped"
MAX_SCORES = 1 << 16  # queries x keys per head above which SDPA's blocked kernel is used


def grouped_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query (B, H, q, D), key/value (B, KV, L, D), mask (B, 1, q, L) bool (True: attend) or
    additive, or None (causal, the queries being the last q positions). Returns (B, q, H, D)."""
    B, H, q, D = query.shape
    kv, L = key.shape[1], key.shape[2]
    if (q * L > MAX_SCORES or dropout or H % kv or kwargs.get("softcap") is not None
            or kwargs.get("s_aux") is not None or query.device.type != "cpu"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    g = H // kv
    scale = scaling if scaling is not None else D ** -0.5
    grouped = query.reshape(B, kv, g * q, D)  # head h reads key head h // g; rows (head in group, query)
    scores = torch.matmul(grouped, key.transpose(-1, -2))  # (B, KV, g*q, L), softmax in float32 at least
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32)) * scale
    scores = scores.view(B, kv, g, q, L)
    if attention_mask is None:
        if q > 1 and getattr(module, "is_causal", True):
            future = torch.ones(q, L, dtype=torch.bool, device=query.device).triu(L - q + 1)
            scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
    elif attention_mask.dtype == torch.bool:  # a fully masked row (left padding) stays finite
        scores = scores.masked_fill(~attention_mask[:, :, None], torch.finfo(scores.dtype).min)
    else:
        scores = scores + attention_mask[:, :, None]
    probs = torch.softmax(scores, dim=-1).to(value.dtype).view(B, kv, g * q, L)
    out = torch.matmul(probs, value).view(B, kv, g, q, -1)  # (B, KV, g, q, D)
    return out.reshape(B, H, q, -1).transpose(1, 2), None


AttentionInterface.register(NAME, grouped_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)


def _text_configs(model: Any) -> list[Any]:
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return list({id(c): c for c in (config, text)}.values())


def supported(model: Any) -> bool:
    """A decoder-only model whose attention goes through transformers' attention interface."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return (not getattr(model.config, "is_encoder_decoder", False)
            and bool(getattr(base, "_supports_attention_backend", False)))


def checkpointed(model: Any) -> bool:
    """Whether activation checkpointing is on in `model` (transformers marks the modules it wraps)."""
    return any(getattr(m, "gradient_checkpointing", False) for m in model.modules())


def cache_keyword(model: Any) -> str:
    """The keyword under which `model.forward` takes a KV cache: `cache` in newer transformers,
    `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def using_own_attention(model: Any) -> bool:
    """Whether `model` runs `grouped_attention` now (inside `own_attention`)."""
    return any(c._attn_implementation == NAME for c in _text_configs(model))


@contextlib.contextmanager
def own_attention(model: Any) -> Iterator[None]:
    """`grouped_attention` in `model`'s attention layers while the block runs, where `supported`;
    not for a forward with grad under activation checkpointing (its recomputation in backward
    would run after the block, with the model's own attention)."""
    if not supported(model) or (torch.is_grad_enabled() and checkpointed(model)):
        yield
        return
    saved = [(c, c._attn_implementation) for c in _text_configs(model)]
    try:
        for c, _ in saved:
            c._attn_implementation = NAME
        yield
    finally:
        for c, impl in saved:
            c._attn_implementation = impl
