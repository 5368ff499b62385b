"""Supervised fine-tuning on demonstrations: `rlvr sft`, the warm start before GRPO.

Data: JSONL or Parquet rows, either `{prompt, response}` (the prompt a string or a list of chat
messages) or `{messages: [...]}` whose last message is the assistant's answer (the messages before
it are the prompt). The prompt is encoded exactly as the rollout engines encode prompts
(`rlvr.rollout.base.encode_prompt`: the chat template with the generation prompt for messages,
plain tokenization for text), so SFT and GRPO see the same prompt tokens; the response is
tokenized without special tokens and the tokenizer's EOS appended (the model learns to stop, and
GRPO's completion mask includes EOS too). Loss: negative log-likelihood of the response tokens
only (prompt and padding masked out), averaged over the response tokens of the whole batch
(token-mean), accumulated over micro-batches to exactly the full batch's gradient. Log-probs come
from `rlvr.update.sequence_logprobs`, the trainer's own chunked computation.

Batches are length-bucketed, not packed (`rlvr.supervised` says why). A response longer than
`data.max_length` allows is cut (and then has no EOS); a row whose response is empty, or would be
empty after the cut, is a `DataError` naming file and line (`data.on_error: skip` leaves it out
with a warning instead). A held-out split (`data.eval_file`, or `data.eval_fraction` of the train
file, seeded) gives `eval/loss` every `eval_every` steps, before step 1 and at the end.

The run directory is the one of `rlvr train`: `config.yaml`, `metrics.jsonl`, TensorBoard,
trackers, `checkpoints/step-N` (resumable with `--resume`), and `final/` (LoRA merged, the adapter
kept in `final/adapter/`), which `rlvr train --model.name=RUN/final` and `rlvr eval` load.

It does not sample, verify or compute rewards, and it does not pack sequences.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

from rlvr.config import (CheckpointConfig, Config, LogConfig, ModelConfig, OptimConfig, describe, layered,
                         save_config, to_dict)
from rlvr.errors import ConfigError, DataError
from rlvr.types import Completion, Prompt

if TYPE_CHECKING:  # torch loads where it is used: `rlvr sft --help-config` stays instant
    import torch


@dataclass(frozen=True)
class DataConfig:
    train_file: str = ""  # demonstrations, JSONL or Parquet: {prompt, response} or {messages}
    eval_file: str = ""  # held-out demonstrations ("" = hold out eval_fraction of train_file)
    eval_fraction: float = 0.05  # share of train_file held out when there is no eval_file (seeded)
    text_prompts: Literal["plain", "chat"] = "plain"  # a prompt given as a string: plain text, or one user message under the chat template
    max_length: int = 512  # prompt + response tokens; longer responses are cut at the end
    on_error: Literal["raise", "skip"] = "raise"  # a malformed row: stop with its file:line, or skip it with a warning


@dataclass(frozen=True)
class SFTConfig:
    output_dir: str = "runs/sft"  # run directory: config, metrics, checkpoints, final model
    seed: int = 0  # seeds the held-out split, batch order and initialisation
    epochs: int = 3  # passes over the train split (when steps = 0)
    steps: int = 0  # optimiser steps (0 = epochs x batches per epoch)
    batch_size: int = 16  # demonstrations per optimiser step (split into optim.micro_batch_size)
    eval_every: int = 10  # held-out loss every this many steps (0 = only before and after)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, warmup_steps=5, schedule="cosine"))
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


def build_sft_config(file: str | Path | None = None, overrides: Sequence[str] = (),
                     base: Mapping[str, Any] | None = None) -> SFTConfig:
    """Defaults <- `base` (a resumed run's config) <- YAML `file` <- `overrides`."""
    config = layered(SFTConfig, file, overrides, base)
    validate(config)
    return config


def validate(c: SFTConfig) -> None:
    checks = [
        (not c.model.fsdp, "model.fsdp shards rlvr train only; rlvr sft trains in one process"),
        (bool(c.data.train_file), "data.train_file is required (JSONL or Parquet demonstrations)"),
        (c.epochs >= 1 and c.steps >= 0, "epochs must be >= 1 and steps >= 0"),
        (c.batch_size >= 1, "batch_size must be >= 1"),
        (c.eval_every >= 0, "eval_every must be >= 0"),
        (0 <= c.data.eval_fraction < 1, "data.eval_fraction must be in [0, 1)"),
        (c.data.max_length >= 2, "data.max_length must be >= 2"),
        (c.optim.lr > 0, "optim.lr must be > 0"),
        (c.optim.micro_batch_size >= 1, "optim.micro_batch_size must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def describe_sft() -> list[str]:
    """`describe(SFTConfig)` with the defaults SFT gives its sections (e.g. its learning rate)."""
    lines, default = describe(SFTConfig), SFTConfig()
    for section in ("model", "data", "optim", "log", "checkpoint"):
        ours, theirs = getattr(default, section), type(getattr(default, section))()
        for key, value in to_dict(ours).items():
            old = to_dict(theirs)[key]
            if value != old:
                prefix = f"  --{section}.{key}={old!r}"
                lines = [f"  --{section}.{key}={value!r}" + ln[len(prefix):] if ln.startswith(prefix) else ln
                         for ln in lines]
    return lines


# ------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Example:
    """One tokenized demonstration."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]  # the loss is on these (EOS included unless the response was cut)
    where: str  # file:line
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


ROLES = ("system", "user", "assistant")


def _messages(value: Any, where: str, key: str) -> tuple[dict[str, str], ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError(f"{where}: {key!r} must be a non-empty list of chat messages")
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: {key}[{i}] must be a mapping with string 'role' and 'content'")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: {key}[{i}] has role {m['role']!r}; expected one of {', '.join(ROLES)}")
    return tuple({"role": m["role"], "content": m["content"]} for m in value)


def prompt_and_response(row: Mapping[str, Any], where: str, text_prompts: str = "plain") -> tuple[Prompt, str]:
    """The prompt (text or messages, as the rollout engine takes it) and the response of a row."""
    from rlvr.tasks.files import field as required

    if "messages" in row:
        messages = _messages(row["messages"], where, "messages")
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise DataError(f"{where}: the last of 'messages' must be the assistant's answer, after "
                            "at least one prompt message")
        if not messages[-1]["content"].strip():
            raise DataError(f"{where}: the assistant's answer (last of 'messages') is empty")
        return messages[:-1], messages[-1]["content"]
    if "prompt" not in row and "response" not in row:
        raise DataError(f"{where}: expected 'prompt' and 'response', or 'messages' "
                        f"(has: {', '.join(sorted(row)) or 'none'})")
    response = required(row, "response", where)
    prompt = row.get("prompt")
    if isinstance(prompt, (list, tuple)):
        return _messages(prompt, where, "prompt"), response
    prompt = required(row, "prompt", where)
    return (({"role": "user", "content": prompt},) if text_prompts == "chat" else prompt), response


def encode_example(tokenizer: Any, prompt: Prompt, response: str, where: str, max_length: int,
                   eos: bool = True) -> Example:
    """Prompt ids as the rollout engines make them, response ids (+ EOS), cut to `max_length`."""
    from rlvr.rollout.base import encode_prompt

    try:
        prompt_ids = encode_prompt(tokenizer, prompt)
    except ValueError as exc:  # e.g. chat messages for a tokenizer without a chat template
        raise DataError(f"{where}: cannot encode the prompt: {exc}") from exc
    response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    if eos:
        response_ids.append(tokenizer.eos_token_id)
    room = max_length - len(prompt_ids)
    if room < 1:
        raise DataError(f"{where}: the prompt alone has {len(prompt_ids)} tokens, so with "
                        f"data.max_length={max_length} nothing of the response is left to learn")
    return Example(tuple(prompt_ids), tuple(response_ids[:room]), where, truncated=len(response_ids) > room)


def load_examples(path: str, tokenizer: Any, data: DataConfig) -> list[Example]:
    from rlvr.tasks.files import load_file

    def convert(row: dict[str, Any], where: str) -> Example:
        prompt, response = prompt_and_response(row, where, data.text_prompts)
        return encode_example(tokenizer, prompt, response, where, data.max_length)

    return load_file(path, convert, on_error=data.on_error)


def load_splits(data: DataConfig, tokenizer: Any, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held-out) examples: the eval file, or a seeded `eval_fraction` of the train file."""
    train = load_examples(data.train_file, tokenizer, data)
    if data.eval_file:
        return train, load_examples(data.eval_file, tokenizer, data)
    k = round(len(train) * data.eval_fraction)
    if data.eval_fraction > 0 and len(train) >= 2:
        k = min(max(k, 1), len(train) - 1)
    order = random.Random(f"sft-split-{seed}").sample(range(len(train)), len(train))
    held = set(order[:k])
    return [e for i, e in enumerate(train) if i not in held], [train[i] for i in sorted(held)]


# ------------------------------------------------------------------------- the loss


def nll_sum(model: Any, examples: Sequence[Example], pad_id: int, autocast: bool) -> tuple[torch.Tensor, int]:
    """(sum of -log p over the response tokens of `examples`, number of those tokens), in one
    forward pass: prompts left-padded, responses right-padded, as the GRPO update batches them."""
    from rlvr.update import collate, sequence_logprobs

    batch = collate([Completion(text="", prompt_ids=e.prompt_ids, completion_ids=e.response_ids)
                     for e in examples], pad_id)
    logp, _ = sequence_logprobs(model, batch, 1.0, autocast)  # (B, T), 0 off the response
    return -logp.sum(), int(batch.mask.sum())


def micro_batches(examples: Sequence[Example], size: int) -> list[list[Example]]:
    return [list(examples[s:s + size]) for s in range(0, len(examples), size)]


def eval_loss(model: Any, examples: Sequence[Example], pad_id: int, micro: int, autocast: bool) -> float:
    """Token-mean NLL of the held-out responses (sorted by length: little padding)."""
    import torch

    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for mb in micro_batches(sorted(examples, key=len), micro):
            s, n = nll_sum(model, mb, pad_id, autocast)
            total, tokens = total + float(s), tokens + n
    model.train(was_training)
    return total / max(tokens, 1)


# ------------------------------------------------------------------------- the loop


def grpo_view(cfg: SFTConfig, steps: int) -> Config:
    """The trainer's config with SFT's model and optimiser sections, for `rlvr.train`'s builders
    of the policy (LoRA, gradient checkpointing) and of the optimiser and schedule."""
    return Config(output_dir=cfg.output_dir, seed=cfg.seed, steps=steps, model=cfg.model, optim=cfg.optim)


def total_steps(cfg: SFTConfig, batches_per_epoch: int) -> int:
    return cfg.steps or cfg.epochs * batches_per_epoch


def sft(cfg: SFTConfig, resume: bool = False) -> Path:
    """Fine-tune on the demonstrations as configured; returns the run directory."""
    import numpy as np
    import torch

    from rlvr.checkpoint import latest_checkpoint, save_checkpoint, save_final
    from rlvr.components import resolve_device
    from rlvr.metrics import RunLog, say
    from rlvr.models import load_tokenizer
    from rlvr.supervised import BatchCursor, optimizer_step, progress_bar, restore
    from rlvr.policy import build_optimizer, build_policy
    from rlvr.update import use_autocast

    started = time.perf_counter()
    run_dir = Path(cfg.output_dir)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        say(f"sft: no checkpoint in {run_dir}: starting from step 0")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")  # type: ignore[arg-type]  # any config dataclass
    random.seed(cfg.seed), np.random.seed(cfg.seed % 2**32), torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.model.device)
    tokenizer = load_tokenizer(cfg.model.name)
    train_set, eval_set = load_splits(cfg.data, tokenizer, cfg.seed)
    cut = sum(e.truncated for e in train_set + eval_set)
    say(f"sft: {len(train_set)} train and {len(eval_set)} held-out demonstrations"
        + (f"; {cut} responses cut at data.max_length={cfg.data.max_length}" if cut else ""))
    cursor = BatchCursor([len(e) for e in train_set], cfg.batch_size, cfg.seed)
    steps = total_steps(cfg, cursor.batches_per_epoch)
    policy, _ = build_policy(grpo_view(cfg, steps), device)
    optimizer, scheduler = build_optimizer(grpo_view(cfg, steps), policy)
    params = [p for p in policy.parameters() if p.requires_grad]
    autocast = use_autocast(grpo_view(cfg, steps), device)
    pad, micro = tokenizer.pad_token_id, cfg.optim.micro_batch_size
    log = RunLog(run_dir, tensorboard=cfg.log.tensorboard, report_to=cfg.log.report_to,
                 config=to_dict(cfg), project=cfg.log.project)
    try:
        state = restore(checkpoint, policy, optimizer, scheduler, log)
        if checkpoint is not None:
            cursor = BatchCursor(cursor.lengths, cfg.batch_size, cfg.seed, **state["cursor"])
            say(f"sft: resuming {run_dir} after step {state['step']}")
        start = state["step"] + 1
        if start == 1 and eval_set:
            log.metrics(0, {"eval/loss": eval_loss(policy, eval_set, pad, micro, autocast),
                            "time/elapsed_s": time.perf_counter() - started})
        progress = progress_bar(steps, start - 1, "sft", cfg.log.progress,
                                lambda m: {"loss": f"{m['loss']:.3f}", **({"eval": f"{m['eval/loss']:.3f}"}
                                                                          if "eval/loss" in m else {})})
        for step in range(start, steps + 1):
            t0 = time.perf_counter()
            batch = [train_set[i] for i in cursor.take()]
            tokens = sum(len(e.response_ids) for e in batch)  # the whole batch's loss denominator
            loss, grad_norm = optimizer_step(
                params, optimizer, scheduler, micro_batches(batch, micro),
                lambda mb: nll_sum(policy, mb, pad, autocast)[0] / tokens, cfg.optim.max_grad_norm)
            t_step = time.perf_counter() - t0
            metrics = {"loss": loss, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0],
                       "epoch": cursor.position(), "tokens": float(tokens),
                       "sequences": float(len(batch)), "throughput/tokens_per_s":
                       sum(len(e) for e in batch) / max(t_step, 1e-9), "time/step_s": t_step}
            if eval_set and ((cfg.eval_every and step % cfg.eval_every == 0) or step == steps):
                metrics["eval/loss"] = eval_loss(policy, eval_set, pad, micro, autocast)
            metrics["time/elapsed_s"] = time.perf_counter() - started
            log.metrics(step, metrics)
            progress(step, metrics)
            if cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < steps:
                save_checkpoint(run_dir, step, policy, optimizer, scheduler, {"cursor": cursor.state()},
                                keep=cfg.checkpoint.keep, tokenizer=tokenizer)
        save_final(policy, tokenizer, run_dir / "final")
    finally:
        log.close()
    say(f"sft: done: final model in {run_dir / 'final'}")
    return run_dir
