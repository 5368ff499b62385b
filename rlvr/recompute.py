"""Activation checkpointing of a causal LM's decoder layers that keeps rlvr's update working.

`model.gradient_checkpointing` keeps, of each decoder layer, only its input during a forward with
grad, and runs the layer again in backward for the rest. transformers' own checkpointing cannot
serve the update: it drops the KV cache (so `rlvr.prefix` could not continue shared prompts) and
its recomputation runs after the forward's block, with the model's default attention rather than
`rlvr.attention`'s. Here each layer's replay sees what its first run saw:
- the cache layer as it was before the layer appended its keys and values (its attributes are
  restored first, so the replay appends to the prompt's keys again, not to its own); after the
  replay it is restored again, so the replay's graph is freed with its backward (the first run's
  keys and values stay where its forward left them, for a caller that reads the cache);
- the same attention implementation;
- the same autocast state and RNG (`torch.utils.checkpoint`, non-reentrant).
So gradients equal those of the forward kept whole (the tests hold them to it).

The wrapper sits on each layer's `forward`, inside the module's call, so hooks that gather
parameters around a module's call (FSDP2) stay outside the replay. Forwards without grad (sampling
from the policy in place, the reference pass) run as they are.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint
from transformers.cache_utils import Cache

from rlvr.attention import own_attention, using_own_attention


def autocast(device_type: str, enabled: bool) -> torch.autocast:
    """bf16 autocast for the update's forwards, without autocast's cache of weight casts. Each weight
    is cast once per forward either way. With checkpointing the cache would hold every layer's bf16
    weights until the forward ends (0.2 GB for a 135M model), when backward keeps none of them;
    without checkpointing backward saves the casts anyway."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)


def decoder_layers(lm: Any) -> torch.nn.ModuleList:
    """The decoder layers of a causal LM (through a peft wrapper)."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    layers = getattr(base.get_decoder(), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"{type(base).__name__}: no decoder layers to checkpoint (expected get_decoder().layers)")
    return layers


def enable(lm: Any) -> None:
    """Checkpoint every decoder layer of `lm` in its forwards with grad (idempotent)."""
    if enabled(lm):
        return
    for index, layer in enumerate(decoder_layers(lm)):
        layer.forward = functools.partial(_checkpointed, lm, layer.forward, index)
    lm._rlvr_recompute = True


def enabled(lm: Any) -> bool:
    return bool(getattr(lm, "_rlvr_recompute", False))


def _checkpointed(lm: Any, forward: Any, index: int, *args: Any, **kwargs: Any) -> Any:
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)
    caches = [v for v in kwargs.values() if isinstance(v, Cache)]
    if caches and len(caches[0].layers) <= index:  # a cache that grows its layers as it goes: nothing
        return forward(*args, **kwargs)            # to restore the replay to, so this layer runs whole
    cached = caches[0].layers[index] if caches else None
    before = dict(vars(cached)) if cached is not None else None
    runs = 0
    own = using_own_attention(lm)

    def run(*inputs: Any) -> Any:
        nonlocal runs
        runs += 1
        if cached is not None:
            vars(cached).update(before)
        try:
            with own_attention(lm) if own else contextlib.nullcontext():
                return forward(*inputs, **kwargs)
        finally:  # the replay's keys and values would hold its graph (and every tensor it saved)
            if cached is not None and runs > 1:  # until the whole backward ends: the cache gets back
                vars(cached).update(before)      # what it held before the layer's first run

    return checkpoint(run, *args, use_reentrant=False)
