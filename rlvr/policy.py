"""The trainable model of a run: policy and frozen reference, LoRA, optimiser and schedule, and the
log-prob modules the update reads (sharded over ranks with `model.fsdp`).

Shared by `rlvr train`, `rlvr sft` and `rlvr rm train`, so the three build a model the same way. It
does not load weights from checkpoints (`rlvr.checkpoint` does) and does not sample.
"""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

import torch

from rlvr import dist, recompute, sharding
from rlvr.config import Config, LoraConfig
from rlvr.models import load_model
from rlvr.update import LogProbModel, use_autocast


def with_lora(model: Any, lora: LoraConfig, task_type: str) -> Any:
    """`model` with peft LoRA adapters as configured (`task_type`: CAUSAL_LM, SEQ_CLS, ...)."""
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    targets = lora.target_modules
    return get_peft_model(model, PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type=task_type,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")]))


def build_policy(cfg: Config, device: torch.device) -> tuple[Any, Any]:
    """(policy, reference or None). The reference exists only when beta > 0 without LoRA (with
    LoRA it is the policy with its adapters disabled)."""
    m = cfg.model
    policy = load_model(m.name, dtype=m.dtype, device=str(device))
    reference = None
    if m.lora.enabled:
        policy = with_lora(policy, m.lora, "CAUSAL_LM")
    elif cfg.grpo.beta > 0:
        reference = copy.deepcopy(policy).eval().requires_grad_(False)
        if use_autocast(cfg, device) and not sharded_run(cfg):
            bf16_linears(reference)
    if m.gradient_checkpointing:  # rlvr's own, which keeps shared prompts and rlvr's attention
        recompute.enable(policy)
    policy.train()
    return policy, reference


def bf16_linears(model: Any) -> None:
    """Store a frozen model's linear layers (not embeddings, norms or a head tied to the embedding)
    in bf16: under bf16 autocast they compute exactly what their fp32 weights compute (autocast
    rounds those to bf16 at every call, the same rounding), in half the memory."""
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in embeddings:
            for name, param in list(module.named_parameters(recurse=False)):
                setattr(module, name, torch.nn.Parameter(param.detach().to(torch.bfloat16), requires_grad=False))


def build_optimizer(cfg: Config, policy: Any) -> tuple[Any, Any]:
    o = cfg.optim
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer_class = torch.optim.AdamW
    if o.name == "adamw_8bit":
        from rlvr.optim8bit import AdamW8bit as optimizer_class
    optimizer = optimizer_class(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    total = max(cfg.steps * cfg.grpo.inner_steps, 1)

    def factor(i: int) -> float:
        if i < o.warmup_steps:
            return (i + 1) / (o.warmup_steps + 1)
        progress = (i - o.warmup_steps) / max(total - o.warmup_steps, 1)
        if o.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if o.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def sharded_run(cfg: Config) -> bool:
    """FSDP is on: asked for, and more than one rank to shard over (one process trains unsharded)."""
    return cfg.model.fsdp and dist.world().size > 1


class Actors(NamedTuple):
    policy: LogProbModel  # the trained policy's log-prob module (its causal LM is `.lm`)
    reference: LogProbModel | None  # the frozen reference's; None: none, or LoRA's adapters-off policy


def build_actors(cfg: Config, policy: Any, reference: Any) -> Actors:
    """The log-prob modules of policy and reference, sharded in place when `sharded_run(cfg)`; build
    the optimiser after this (sharding replaces the parameters)."""
    actors = Actors(LogProbModel(policy), LogProbModel(reference) if reference is not None else None)
    if sharded_run(cfg):
        for root in actors:
            if root is not None:
                sharding.shard(root, root.lm)
    return actors
