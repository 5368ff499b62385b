"""`rlvr rm train`: a Bradley–Terry reward model from a causal LM, on preference pairs.

    rlvr rm train --config rm.yaml [--resume RUN_DIR | --overwrite] [--section.key=value ...]

The loop reads top to bottom: batch (whole prompts) -> rewards of chosen and rejected -> loss
(`rlvr.reward.loss`) -> update -> log -> held-out eval -> checkpoint; at the end the statistics of
the rewards of the training pairs are computed and the model is written in the reward model
format of `rlvr.reward.model` to `OUTPUT/final`. The run directory is that of `rlvr train`:
`config.yaml`, `metrics.jsonl` (one line per step; held-out `eval/accuracy` and `eval/loss` at each
eval), TensorBoard and trackers, `checkpoints/` (atomic, resumable with `--resume`), `final/`.

How this differs from TRL's RewardTrainer: a prompt's pairs are never split across steps, and the
held-out split is by prompt; pairs longer than `data.max_length` are cut from the left (the end,
where the reward is read, is kept) instead of being dropped. It does not generate pairs
(`rlvr rm pairs`, `rlvr rm synth` do) and does not score rollouts (`rlvr.reward.scorer` does).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from rlvr.config import (CheckpointConfig, LogConfig, ModelConfig, OptimConfig, describe, layered,
                         save_config, to_dict)
from rlvr.errors import ConfigError

TAKES_OVERRIDES = True


@dataclass(frozen=True)
class RmDataConfig:
    train_file: str = ""  # JSONL or Parquet of {prompt, chosen, rejected[, margin]} rows
    eval_file: str = ""  # held-out pairs; "" = hold out eval_fraction of train_file's prompts
    eval_fraction: float = 0.1  # share of the prompts held out when eval_file is "" (0 = no eval)
    max_length: int = 512  # tokens of prompt + response; longer ones are cut from the left
    chat_template: bool = True  # encode with the tokenizer's chat template (when it has one)
    use_margin: bool = True  # subtract a row's margin (when it has one) inside the loss
    on_error: Literal["raise", "skip"] = "raise"  # a malformed row: stop, or skip it with a warning


@dataclass(frozen=True)
class RmEvalConfig:
    every: int = 20  # held-out accuracy and loss every this many steps (0 = only at the end)
    at_start: bool = True  # also before the first step (the untrained head: about 50%)
    max_pairs: int = 0  # held-out pairs scored (0 = all)
    batch_size: int = 32  # sequences per forward pass when scoring


@dataclass(frozen=True)
class RmConfig:
    output_dir: str = "runs/rm"  # run directory: config, metrics, checkpoints, final reward model
    seed: int = 0  # seeds the held-out split, batch order and the head's initialisation
    steps: int = 0  # optimizer steps (0 = `epochs` passes over the training pairs)
    epochs: int = 1  # passes over the training pairs when steps is 0
    batch_pairs: int = 16  # pairs per optimizer step; a prompt's pairs are never split over steps
    center_coef: float = 0.0  # reward centring: + coef * mean((r_c + r_r)^2); 0.01 is usual
    stats_max_pairs: int = 500  # training pairs scored for the saved mean/std (0 = all)
    model: ModelConfig = field(default_factory=ModelConfig)  # (rollout_dtype is not used here)
    data: RmDataConfig = field(default_factory=RmDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)  # micro_batch_size counts sequences (2 per pair)
    eval: RmEvalConfig = field(default_factory=RmEvalConfig)
    log: LogConfig = field(default_factory=LogConfig)  # (sample_every, num_samples are not used here)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


def build_config(file: str | None = None, overrides: Sequence[str] = (), base: dict | None = None) -> RmConfig:
    """Defaults <- `base` (a resumed run's config) <- YAML `file` <- `overrides`, then checks."""
    cfg = layered(RmConfig, file, overrides, base)
    checks = [
        (not cfg.model.fsdp, "model.fsdp shards rlvr train only; rlvr rm train trains in one process"),
        (bool(cfg.data.train_file), "data.train_file is required (JSONL or Parquet of {prompt, chosen, rejected})"),
        (cfg.steps >= 0 and cfg.epochs >= 1, "steps must be >= 0 and epochs >= 1"),
        (cfg.batch_pairs >= 1, "batch_pairs must be >= 1"),
        (0 <= cfg.data.eval_fraction < 1, "data.eval_fraction must be in [0, 1)"),
        (cfg.data.max_length >= 8, "data.max_length must be >= 8"),
        (cfg.center_coef >= 0, "center_coef must be >= 0"),
        (cfg.optim.lr > 0, "optim.lr must be > 0"),
        (cfg.optim.micro_batch_size >= 2, "optim.micro_batch_size must be >= 2 (one pair is two sequences)"),
        (cfg.eval.every >= 0 and cfg.eval.batch_size >= 1, "eval.every must be >= 0 and eval.batch_size >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return cfg


# ------------------------------------------------------------------------- set-up


@dataclass
class Encoded:
    """The token ids of pairs: chosen[i] and rejected[i] of pair i, and its margin."""

    chosen: list[list[int]]
    rejected: list[list[int]]
    margin: list[float]

    def __len__(self) -> int:
        return len(self.chosen)


def encode_pairs(tokenizer: Any, pairs: Sequence[Any], use_margin: bool) -> Encoded:
    from rlvr.reward.model import encode

    return Encoded([encode(tokenizer, p.prompt, p.chosen) for p in pairs],
                   [encode(tokenizer, p.prompt, p.rejected) for p in pairs],
                   [p.margin if use_margin else 0.0 for p in pairs])


def load_data(cfg: RmConfig) -> tuple[list[Any], list[Any]]:
    """(train pairs, held-out pairs) as the config says; no training pairs is a DataError."""
    from rlvr.errors import DataError
    from rlvr.reward.data import load_pairs, split_by_prompt

    d = cfg.data
    pairs = load_pairs(d.train_file, on_error=d.on_error)
    if d.eval_file:
        held = load_pairs(d.eval_file, on_error=d.on_error)
        train_keys = {p.key for p in pairs}
        shared = sum(p.key in train_keys for p in held)
        if shared:
            note(f"{shared} of {len(held)} held-out pairs have a prompt that is also in the training pairs")
        return pairs, held
    train_pairs, held = split_by_prompt(pairs, d.eval_fraction, cfg.seed)
    if not train_pairs:
        raise DataError(f"{d.train_file}: no training pairs left after holding out prompts")
    return train_pairs, held


def build_model(cfg: RmConfig, device: Any) -> tuple[Any, Any]:
    """(model in train mode, tokenizer prepared for the reward model format)."""
    from rlvr.reward.model import build_reward_model, prepare_tokenizer

    m = cfg.model
    model, tokenizer = build_reward_model(m.name, dtype=m.dtype, device=str(device))
    prepare_tokenizer(tokenizer, chat_template=cfg.data.chat_template and bool(tokenizer.chat_template),
                      max_length=cfg.data.max_length)
    if m.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if m.lora.enabled:  # SEQ_CLS: peft also trains (and saves) the score head
        from rlvr.policy import with_lora

        model = with_lora(model, m.lora, "SEQ_CLS")
    return model.train(), tokenizer


def total_steps(cfg: RmConfig, batches: Any) -> int:
    return cfg.steps or sum(len(batches.plan(e)) for e in range(cfg.epochs))


def trainer_view(cfg: RmConfig, steps: int) -> Any:
    """The GRPO trainer's config with this run's model and optimiser sections, for `rlvr.train`'s
    optimiser and schedule builder and `rlvr.update`'s autocast rule."""
    from rlvr.config import Config

    return Config(output_dir=cfg.output_dir, seed=cfg.seed, steps=steps, model=cfg.model, optim=cfg.optim)


# ------------------------------------------------------------------------- one step, one eval


def update(cfg: RmConfig, model: Any, optimizer: Any, scheduler: Any, data: Encoded, batch: Sequence[int],
           pad_id: int, autocast: bool) -> dict[str, float]:
    """One optimizer step over the pairs `batch`, accumulated over micro-batches (the loss of each
    is divided by the whole batch's pair count, so the gradient is the whole batch's)."""
    import torch

    from rlvr.reward.loss import bradley_terry_loss
    from rlvr.reward.model import pad, rewards
    from rlvr.supervised import optimizer_step

    per_micro = max(cfg.optim.micro_batch_size // 2, 1)
    totals: dict[str, float] = {}

    def loss_share(idx: list[int]) -> torch.Tensor:
        ids, mask = pad([data.chosen[i] for i in idx] + [data.rejected[i] for i in idx], pad_id)
        with torch.autocast(device_type(model), dtype=torch.bfloat16, enabled=autocast):
            r = rewards(model, ids, mask)  # (2m,): chosen then rejected
        margin = torch.tensor([data.margin[i] for i in idx]) if any(data.margin[i] for i in idx) else None
        loss, stats = bradley_terry_loss(r[:len(idx)], r[len(idx):], margin, cfg.center_coef,
                                         denominator=len(batch))
        for k in ("accuracy", "margin", "chosen_mean", "rejected_mean", "bt_loss"):
            totals[k] = totals.get(k, 0.0) + stats[k] * len(idx)
        return loss

    micro = [list(batch[lo:lo + per_micro]) for lo in range(0, len(batch), per_micro)]
    loss, grad_norm = optimizer_step([p for p in model.parameters() if p.requires_grad], optimizer, scheduler,
                                     micro, loss_share, cfg.optim.max_grad_norm)
    return {**{f"train/{k}": v / len(batch) for k, v in totals.items()}, "train/loss": loss,
            "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0], "train/pairs": float(len(batch))}


def score_sequences(model: Any, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int,
                    autocast: bool = False):
    """Raw rewards (N,) of token sequences, in eval mode and without gradients (similar lengths
    batched together); the model's train/eval mode is restored afterwards."""
    import torch

    from rlvr.reward.model import score_encoded

    was_training = model.training
    model.eval()
    try:
        with torch.autocast(device_type(model), dtype=torch.bfloat16, enabled=autocast):
            return score_encoded(model, seqs, pad_id, batch_size)
    finally:
        model.train(was_training)


def evaluate_pairs(cfg: RmConfig, model: Any, data: Encoded, pad_id: int, autocast: bool) -> dict[str, float]:
    """Held-out pairwise accuracy, loss (without centring) and reward margin."""
    import torch

    from rlvr.reward.loss import bradley_terry_loss

    t0 = time.perf_counter()
    n = len(data) if not cfg.eval.max_pairs else min(cfg.eval.max_pairs, len(data))
    r = score_sequences(model, data.chosen[:n] + data.rejected[:n], pad_id, cfg.eval.batch_size, autocast)
    margin = torch.tensor(data.margin[:n]) if any(data.margin[:n]) else None
    _, stats = bradley_terry_loss(r[:n], r[n:], margin)
    return {"eval/accuracy": stats["accuracy"], "eval/loss": stats["bt_loss"], "eval/margin": stats["margin"],
            "eval/chosen_mean": stats["chosen_mean"], "eval/rejected_mean": stats["rejected_mean"],
            "eval/pairs": float(n), "time/eval_s": time.perf_counter() - t0}


def reward_stats(cfg: RmConfig, model: Any, data: Encoded, pad_id: int) -> dict[str, float]:
    """Mean and std of the raw rewards of (a seeded sample of `stats_max_pairs`) training pairs,
    chosen and rejected together: the normalisation saved with the model. Scored in the saved
    model's own precision, without the training autocast, as `rlvr.reward.model.score_texts` will
    score with it (under bf16 autocast the mean was off by 4e-4 on a CPU with bf16 units)."""
    k = len(data) if not cfg.stats_max_pairs else min(cfg.stats_max_pairs, len(data))
    idx = sorted(random.Random(f"rm-stats/{cfg.seed}").sample(range(len(data)), k))
    r = score_sequences(model, [data.chosen[i] for i in idx] + [data.rejected[i] for i in idx], pad_id,
                        cfg.eval.batch_size, autocast=False)
    std = float(r.std()) if len(r) > 1 else 1.0
    return {"mean": float(r.mean()), "std": std if std > 0 and math.isfinite(std) else 1.0, "stats_pairs": k}


# ------------------------------------------------------------------------- the loop


def train(cfg: RmConfig, resume: bool = False) -> Path:
    """Train the reward model as configured; returns the run directory."""
    import torch

    from rlvr.checkpoint import latest_checkpoint, save_checkpoint, save_final
    from rlvr.components import resolve_device
    from rlvr.metrics import RunLog
    from rlvr.reward.data import PairBatches, group_by_prompt
    from rlvr.reward.model import write_stats
    from rlvr.supervised import progress_bar, restore
    from rlvr.policy import build_optimizer
    from rlvr.update import use_autocast

    started = time.perf_counter()
    run_dir = Path(cfg.output_dir)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    random.seed(cfg.seed), np.random.seed(cfg.seed % 2**32), torch.manual_seed(cfg.seed)
    train_pairs, held_pairs = load_data(cfg)
    device = resolve_device(cfg.model.device)
    model, tokenizer = build_model(cfg, device)
    pad_id = tokenizer.pad_token_id
    train_data = encode_pairs(tokenizer, train_pairs, cfg.data.use_margin)
    held_data = encode_pairs(tokenizer, held_pairs, cfg.data.use_margin)
    batches = PairBatches(group_by_prompt(train_pairs), cfg.batch_pairs, cfg.seed)
    steps = total_steps(cfg, batches)
    view = trainer_view(cfg, steps)
    optimizer, scheduler = build_optimizer(view, model)
    autocast = use_autocast(view, device)
    note(f"{len(train_pairs)} training pairs ({len(batches)} batches an epoch), {len(held_pairs)} held out; "
         f"{steps} steps")
    with contextlib.ExitStack() as stack:
        log = RunLog(run_dir, tensorboard=cfg.log.tensorboard, report_to=cfg.log.report_to,
                     config=to_dict(cfg), project=cfg.log.project)
        stack.callback(log.close)
        state = restore(checkpoint, model, optimizer, scheduler, log)
        if checkpoint is not None:
            batches.seek(**state["cursor"])
            note(f"resuming after step {state['step']}")
        start = state["step"] + 1
        progress = progress_bar(steps, start - 1, "rm", cfg.log.progress, _bar_fields)
        if start == 1 and cfg.eval.at_start and len(held_data):
            log.metrics(0, {**evaluate_pairs(cfg, model, held_data, pad_id, autocast),
                            "time/elapsed_s": time.perf_counter() - started})
        for step in range(start, steps + 1):
            t0 = time.perf_counter()
            batch = batches.next()
            metrics = update(cfg, model, optimizer, scheduler, train_data, batch, pad_id, autocast)
            t_step = time.perf_counter() - t0
            metrics.update({"epoch": float(batches.epoch), "time/step_s": t_step,
                            "throughput/pairs_per_s": len(batch) / max(t_step, 1e-9)})
            if len(held_data) and ((cfg.eval.every and step % cfg.eval.every == 0) or step == steps):
                metrics.update(evaluate_pairs(cfg, model, held_data, pad_id, autocast))
                note(f"step {step}: held-out accuracy {metrics['eval/accuracy']:.3f}, "
                     f"loss {metrics['eval/loss']:.4f} ({len(held_data)} pairs)")
            metrics["time/elapsed_s"] = time.perf_counter() - started
            log.metrics(step, metrics)
            progress(step, metrics)
            if cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < steps:
                save_checkpoint(run_dir, step, model, optimizer, scheduler, {"cursor": batches.state()},
                                keep=cfg.checkpoint.keep, tokenizer=tokenizer)
        stats = reward_stats(cfg, model, train_data, pad_id)
        save_final(model, tokenizer, run_dir / "final")
        write_stats(run_dir / "final", {
            **stats, "chat_template": bool(tokenizer.chat_template), "max_length": cfg.data.max_length,
            "base_model": cfg.model.name, "pairs": len(train_pairs), "steps": steps})
    note(f"done: reward model in {run_dir / 'final'} (reward mean {stats['mean']:.3f}, std {stats['std']:.3f})")
    return run_dir


def device_type(model: Any) -> str:
    return next(model.parameters()).device.type


def note(message: str) -> None:
    from rlvr.metrics import say

    say(f"rm: {message}")


def _bar_fields(m: dict[str, float]) -> dict[str, str]:
    post = {"loss": f"{m['train/loss']:.3f}", "acc": f"{m['train/accuracy']:.2f}", "s/step": f"{m['time/step_s']:.1f}"}
    if "eval/accuracy" in m:
        post["eval"] = f"{m['eval/accuracy']:.3f}"
    return post


# ------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rlvr.commands import add_run_arguments

    parser.description = ("Train a Bradley-Terry reward model on preference pairs. Settings come from "
                          "the defaults, then --config FILE, then --section.key=value overrides.")
    add_run_arguments(parser, "Any other --section.key=value (or --section.key value) overrides a config key.")


def run(args: argparse.Namespace) -> int:
    from rlvr.models import check_model
    from rlvr.supervised import config_layers
    from rlvr.trackers import check as check_trackers

    if args.help_config:
        print("Config keys (defaults shown):")
        print("\n".join(describe(RmConfig)))
        return 0
    base, overrides = config_layers(args.resume, args.overwrite, list(getattr(args, "overrides", [])))
    cfg = build_config(args.config, overrides, base=base)
    check_model(cfg.model.name)
    check_trackers(cfg.log.report_to)
    from rlvr.checkpoint import prepare_run_dir

    prepare_run_dir(cfg.output_dir, resume=bool(args.resume), overwrite=args.overwrite, command="rm train")
    train(cfg, resume=bool(args.resume))
    return 0
