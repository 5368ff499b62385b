"""FSDP2 for policies too big for one device: shard, gather full weights, checkpoint through DCP.

With `model.fsdp: true` under `torchrun`, `shard` applies `torch.distributed.fsdp.fully_shard` to
every transformer block of the model (the classes its `_no_split_modules` names) and then to the
`LogProbModel` around it, so each rank keeps 1/world of every parameter, gradient and AdamW moment,
and a block's weights exist in full only while it runs. The output head lives in the root group:
it is gathered by the root's forward, which is why the update reads log-probs through one module
`forward` (`rlvr.update.LogProbModel`) and never touches `model.lm_head` outside it.

FSDP averages gradients over ranks; the loss of each rank is already divided by the *global*
sequence and token counts (as in plain data parallelism), so the update scales it by the world
size (`loss_scale`) and the average is the sum it needs. (Setting FSDP's divide factor to 1 asks
for a pre-multiplied sum, which gloo does not have.)
FSDP's collectives run inside forward and backward, so every rank must run the same number of
them: `rlvr.update` pads a rank's micro-batches with zero-weight dummies to the most any rank has.

Checkpoints: `save_state` / `load_state` write and read model and optimizer state through
`torch.distributed.checkpoint` (each rank its shards, into one directory); DCP re-shards on load, so
a run saved at world size W resumes at any other size, sharded or not. `full_state_dict` gathers
full tensors (the rollout engine's weight sync, `final/`, a checkpoint's loadable `model/`).

This module does not decide which runs shard (`rlvr.train` does), does not offload to CPU, and
does not mix precision through FSDP (the update's bf16 autocast does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlvr.errors import ConfigError


def is_sharded(module: Any) -> bool:
    """True when `module`'s parameters are DTensor shards (FSDP2 has wrapped it)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())


def _block_classes(lm: Any) -> tuple[type, ...]:
    names = set(getattr(lm, "_no_split_modules", None) or ())
    base = getattr(lm, "get_base_model", None)  # peft: the transformer inside
    if not names and base is not None:
        names = set(getattr(base(), "_no_split_modules", None) or ())
    classes = {type(m) for m in lm.modules() if type(m).__name__ in names}
    if not classes:
        raise ConfigError(f"model.fsdp: cannot tell the transformer blocks of {type(lm).__name__} "
                          "(it names no _no_split_modules)")
    return tuple(classes)


def shard(root: torch.nn.Module, lm: Any) -> torch.nn.Module:
    """Shard `lm`'s transformer blocks, then `root` (the module whose forward runs `lm`), in place
    over the default process group; returns `root`."""
    from torch.distributed.fsdp import fully_shard

    blocks = _block_classes(lm)
    for m in list(lm.modules()):
        if isinstance(m, blocks):
            fully_shard(m)
    return fully_shard(root)


def loss_scale(module: Any) -> float:
    """What a sharded module's loss is multiplied by so FSDP's gradient average is the sum over ranks."""
    import torch.distributed as tdist

    return float(tdist.get_world_size()) if is_sharded(module) else 1.0


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole of `t` on every rank (a collective when `t` is a shard; every rank must call it)."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def full_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """`model`'s state dict with full tensors, on every rank (a collective when sharded). A tensor
    tied to an earlier one (the output head to the input embedding) appears once, under its first
    name, as `save_pretrained` writes an unsharded model."""
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}  # tied: once
    return {k: full_tensor(v) for k, v in model.state_dict().items() if k in names}


def grad_norm_value(norm: torch.Tensor) -> float:
    return float(full_tensor(norm))


def _state(model: Any, optimizer: Any) -> tuple[dict, dict]:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer)


def save_state(path: Path, model: Any, optimizer: Any) -> None:
    """Model and optimizer state of this rank into `path` (DCP format; every rank must call it)."""
    import torch.distributed.checkpoint as dcp

    model_state, optim_state = _state(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(path))


def load_state(path: Path, model: Any, optimizer: Any) -> None:
    """Load what `save_state` wrote, re-sharded for this run's world size (sharded or not)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    model_state, optim_state = _state(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
